"""The small configuration saved with every model: network shape and input geometry.

The input geometry belongs to the model because preprocessing must put every snip on the
scale the model was trained at; a model trained at another glyph size carries its own.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields


@dataclass
class InputSpec:
    glyph_height: float = 12.0  # median ink-component height after rescaling, in pixels
    margin: int = 4             # blank pixels kept around the ink on every side
    grid: int = 16              # height and width are padded up to multiples of this
    max_height: int = 256       # larger inputs are downscaled to fit
    max_width: int = 1024
    min_ink_pixels: int = 4     # fewer dark pixels than this: a blank snip
    # Inference reads each snip with its glyphs at glyph_height times each of these and keeps
    # the most confident reading; a model lists the scales measured to help it (training and
    # a model that lists none use 1.0 alone).
    reading_scales: tuple[float, ...] = (1.0,)
    # With several reading scales: a first reading (at the first scale) whose least probable
    # token is at least this probable is kept; only a snip with a less sure token is read again
    # at the other scales, so most snips cost one reading.  None: every scale is read, always.
    reread_below: float | None = None
    # On a GPU (CUDA or Apple MPS) a snip's readings decode side by side for about the price of
    # one, so a model may list more scales to read at there; None: the same scales as the CPU.
    gpu_reading_scales: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        self.reading_scales = checked_scales(self.reading_scales)  # JSON gives a list
        if self.gpu_reading_scales is not None:
            self.gpu_reading_scales = checked_scales(self.gpu_reading_scales)
        if self.reread_below is not None and not 0.0 <= float(self.reread_below) <= 1.0:
            raise ValueError("reread_below must be a token probability between 0 and 1 (or null)")


@dataclass
class ModelConfig:
    vocab_size: int = 0
    encoder_stages: int = 3     # ResNet-18 stages kept (1-4); their stride is 2 ** (stages + 1)
    # Stride of the image features; 0 = the stages' own.  Smaller (8 with 3 stages): the last
    # stages keep the resolution, so a 12-px glyph spans more than one feature cell (same
    # weights, about 13 % more training time).
    encoder_stride: int = 0
    d_model: int = 256
    nhead: int = 8
    decoder_layers: int = 3
    dim_feedforward: int = 1024
    dropout: float = 0.1
    max_len: int = 256          # longest token sequence the decoder can emit (BOS included)
    input: InputSpec = field(default_factory=InputSpec)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Build from saved values; unknown keys are refused so a mismatch is caught early."""
        data = dict(data)
        spec = InputSpec(**data.pop("input", {}))
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data, input=spec)


def scales_on(spec: InputSpec, device: str) -> tuple[float, ...]:
    """The glyph scales a snip is read at on ``device`` ("cpu", "cuda", "cuda:1", "mps")."""
    if device != "cpu" and spec.gpu_reading_scales:
        return spec.gpu_reading_scales
    return spec.reading_scales


def checked_scales(scales) -> tuple[float, ...]:
    """Reading scales as a tuple of floats; ValueError unless one or more, each in [0.25, 4]."""
    scales = tuple(float(s) for s in scales)
    if not scales or not all(0.25 <= s <= 4.0 for s in scales):
        raise ValueError("reading scales must be one or more glyph scales between 0.25 and 4")
    return scales


def scales_argument(text: str) -> tuple[float, ...]:
    """``1,1.3`` as (1.0, 1.3): the command-line form of reading scales (export, evaluate)."""
    try:
        return checked_scales(text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
