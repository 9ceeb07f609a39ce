"""Read formulas from images with a trained model: the one entry point the app and the CLI use.

``Recognizer`` loads lazily (the first ``recognize`` or an explicit ``load()`` off the UI thread),
picks CUDA, then Apple MPS, then the CPU unless told otherwise, and serializes model use with a
lock so a worker thread can call it while the UI thread asks for its device.  Images go through
``model.preprocess`` with the model's own input spec, so a model trained at another scale still
gets its inputs the way it saw them in training; each is read at the model's
``input.reading_scales`` (``input.gpu_reading_scales`` on a GPU, where more readings cost about
nothing; the later scales only when the first reading is unsure, with ``input.reread_below``)
and the most confident reading wins.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .batching import pad_batch
from .checkpoint import LoadedModel, load_model
from .config import checked_scales, scales_on
from .decoding import DEFAULT_GUARD, Decoded, RepetitionGuard, beam_search, greedy_decode, most_confident, unsure
from .errors import Im2LatexError
from .images import load_image
from .memory import release_unused_memory
from .preprocess import preprocess, preprocess_at_scales
from .resources import bundled_model_dir
from .syntax import SyntaxRules
from .tokenizer import detokenize

# Seconds one recognize call may take, preprocessing included; decoding stops there and marks the
# result (``Recognition.stopped == "time"``).  A normal snip takes well under a second.
DEFAULT_TIME_BUDGET = 10.0

GPU_FALLBACK_WARNING = ("The GPU ran out of memory, so this formula was read on the CPU "
                        "(and later ones will be too).")


class DeviceError(Im2LatexError):
    """The requested compute device does not exist on this machine."""


@dataclass
class Alternative:
    latex: str
    confidence: float


@dataclass
class Recognition:
    latex: str
    confidence: float
    alternatives: list[Alternative] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    warning: str | None = None  # e.g. the GPU ran out of memory and the CPU took over
    stopped: str | None = None  # None: complete; else the bound that cut it short ("length", "time", "repetition")


def default_model_path() -> Path:
    """``$IM2LATEX_MODEL`` if set, else the bundled model: ``resources/model/`` in a checkout or a
    frozen app, ``im2latex_resources/model/`` in an installed wheel (see ``model.resources``)."""
    env = os.environ.get("IM2LATEX_MODEL")
    if env:
        return Path(env).expanduser()
    return bundled_model_dir()


def choose_device(requested: str | None = None) -> str:
    """``requested`` checked against this machine; None or "auto": CUDA, then MPS, then CPU."""
    name = (requested or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "mps":
        if not mps_ok:
            raise DeviceError("The device 'mps' was requested but Apple's Metal (MPS) is not available here.")
        return "mps"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"The device '{requested}' was requested but no CUDA GPU is available here.")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DeviceError(f"The device '{requested}' does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA GPU(s).")
        return name
    raise DeviceError(f"Unknown device '{requested}'; use auto, cpu, cuda, cuda:N or mps.")


# More threads than this buy nothing for one snip (the decoder's matrices are small) and take
# cores from the rest of the desktop.  Measured on 2 cores (benchmarks/RESULTS.md): 1 thread beat
# 2 for every length, greedy and beam, so the default leaves half the cores to the desktop.
MAX_DEFAULT_THREADS = 4
# Dynamic int8 quantization of the Linear layers by default on the CPU (measured: benchmarks/RESULTS.md).
INT8_DEFAULT = False


def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads counted once), at least 1."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        package = ""
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    package = value.strip()
                elif key == "core id":
                    cores.add((package, value.strip()))
    except OSError:
        pass
    return max(1, min(allowed, len(cores) or allowed))


_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # what torch picked, before anyone changed it


def default_threads() -> int:
    """torch threads for recognition when none are asked for: half the physical cores, 1 to 4."""
    return max(1, min(physical_cores() // 2, MAX_DEFAULT_THREADS))


def quantize_linear_int8(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every ``nn.Linear`` swapped for a dynamically quantized int8 one (CPU only).

    Weights become int8 once; activations are quantized on the fly.  Convolutions and the tied
    output projection stay float.  torch marks this API deprecated, so its warnings are silenced
    here rather than shown to the user.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False).eval()


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


class Recognizer:
    def __init__(self, model_path: str | Path | None = None, device: str | None = None, *,
                 threads: int | None = None, warmup: bool = False,
                 time_budget: float | None = DEFAULT_TIME_BUDGET, max_tokens: int | None = None,
                 int8: bool | None = None, scales: tuple[float, ...] | None = None):
        """``time_budget``: seconds per recognize call (None: unbounded); ``max_tokens``: at most this
        many tokens per formula (None: the model's own limit); ``threads``: torch's CPU threads
        (None: ``default_threads()`` unless the caller already set a count); ``int8``: dynamic int8 Linear
        layers on the CPU (None: ``INT8_DEFAULT``); ``scales``: glyph scales each image is read at,
        the most confident reading wins (None: the model's ``input.reading_scales``, or on a GPU
        its ``input.gpu_reading_scales`` when it lists them, re-read as its ``input.reread_below``
        says; given scales are each read, always; ``(1.0,)``: one reading)."""
        self.time_budget = time_budget
        self.max_tokens = max_tokens
        self._scales = None if scales is None else checked_scales(scales)
        self.guard: RepetitionGuard | None = DEFAULT_GUARD  # the loop guard; None turns it off
        self.well_formed = True  # decode with the model's SyntaxRules (False: the model's raw argmax)
        self._syntax: SyntaxRules | None = None
        self.model_path = Path(model_path).expanduser() if model_path else default_model_path()
        self._requested_device = device
        self._device: str | None = None
        self._threads = threads
        self._warmup = warmup
        self._int8_requested = INT8_DEFAULT if int8 is None else bool(int8)
        self.int8 = False  # True once the loaded model's Linear layers are int8
        self._loaded: LoadedModel | None = None
        self._lock = threading.RLock()
        self._call_budget: float | None = None  # the running call's time budget (set under the lock)
        self._warning: str | None = None  # the running call's warning (set under the lock)

    # ------------------------------------------------------------------ loading

    @property
    def device(self) -> str:
        """Where the model runs (known before loading; "cpu" after a GPU out-of-memory fallback)."""
        with self._lock:
            if self._device is None:
                self._device = choose_device(self._requested_device)
            return self._device

    @property
    def scales(self) -> tuple[float, ...]:
        """The glyph scales each image is read at (the model's own for this device unless set);
        loads the model if needed."""
        return self._scales if self._scales is not None else scales_on(self.load().config.input, self.device)

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    @property
    def meta(self) -> dict:
        """What the model's trainer recorded (data, scores, date); loads the model if needed."""
        return dict(self.load().meta)

    def load(self) -> LoadedModel:
        """Load the model now (slow: call it off the UI thread); later calls return at once."""
        with self._lock:
            if self._loaded is None:
                if self._threads:
                    torch.set_num_threads(int(self._threads))
                elif torch.get_num_threads() == _TORCH_DEFAULT_THREADS:
                    torch.set_num_threads(default_threads())  # a count the caller set stays
                loaded = load_model(self.model_path, device=self.device)
                self._syntax = SyntaxRules(loaded.vocab)
                if self._int8_requested and self.device == "cpu":
                    loaded.model = quantize_linear_int8(loaded.model)
                    self.int8 = True
                self._loaded = loaded
                if self._warmup:
                    self.warm_up()
                release_unused_memory(self.device)
            return self._loaded

    def warm_up(self) -> None:
        """One dummy recognition, so the first real snip does not pay for lazy initialization."""
        loaded = self.load()
        canvas = Image.new("L", (96, 40), 255)
        draw = ImageDraw.Draw(canvas)
        draw.rectangle((10, 12, 14, 28), fill=0)
        draw.rectangle((22, 18, 40, 21), fill=0)
        draw.rectangle((50, 12, 54, 28), fill=0)
        try:
            array = preprocess(canvas, loaded.config.input)
        except Im2LatexError:
            array = np.zeros((loaded.config.input.grid * 2, loaded.config.input.grid * 4), np.float32)
            array[4:20, 4:8] = 1.0
        with self._lock:
            images, sizes = pad_batch([array])
            greedy_decode(loaded.model, images, sizes, max_len=4)

    # ------------------------------------------------------------------ recognizing

    def recognize(self, image, beam: int = 1, *, time_budget: float | None = None) -> Recognition:
        """LaTeX of one formula image (path, bytes or PIL image); raises ImageError/BlankImageError.

        ``time_budget``: seconds for this call (None: ``self.time_budget``; math.inf: unbounded)."""
        return self.recognize_batch([image], beam=beam, time_budget=time_budget)[0]

    def prepare(self, image) -> list[np.ndarray]:
        """One image (path, bytes or PIL image) as the model's inputs, one per reading scale;
        raises ImageError/BlankImageError.

        For callers that want to sort or filter images before ``recognize_batch(..., prepared=True)``."""
        return preprocess_at_scales(load_image(image), self.load().config.input, self.scales)

    def recognize_batch(self, images: list, beam: int = 1, *, time_budget: float | None = None,
                        prepared: bool = False) -> list[Recognition]:
        """Several images decoded as one batch; ``seconds`` is the batch time shared out evenly.

        The time budget (as in ``recognize``) covers the whole call.  ``prepared``: the images are
        already ``prepare``'s arrays (or single arrays, read at the scale they were made at).
        Every reading of every image decodes in one batch (with the model's ``input.reread_below``:
        first readings in one batch, then the other scales of the unsure ones in a second); per
        image the most confident reading wins and the others become alternatives."""
        if beam < 1:
            raise ValueError("beam must be at least 1")
        if not images:
            return []
        self.load()
        start = time.perf_counter()
        budget = self.time_budget if time_budget is None else time_budget
        readings = list(images) if prepared else [self.prepare(image) for image in images]
        readings = [[r] if isinstance(r, np.ndarray) else list(r) for r in readings]
        reread_below = self._loaded.config.input.reread_below if self._scales is None else None
        with self._lock:
            self._warning = None
            if reread_below is None:
                every = self._decode_arrays([a for item in readings for a in item], beam, budget, start)
                decoded, k = [], 0
                for item in readings:
                    decoded.append(every[k:k + len(item)])
                    k += len(item)
            else:
                decoded = [[d] for d in self._decode_arrays([item[0] for item in readings], beam, budget, start)]
                again_at = [i for i, d in enumerate(decoded) if len(readings[i]) > 1 and unsure(d[0], reread_below)]
                if again_at:
                    again = self._decode_arrays([a for i in again_at for a in readings[i][1:]], beam, budget, start)
                    k = 0
                    for i in again_at:
                        decoded[i] += again[k:k + len(readings[i]) - 1]
                        k += len(readings[i]) - 1
            device, warning = self.device, self._warning
        seconds = (time.perf_counter() - start) / len(images)
        return [self._recognition(most_confident(d), seconds, device, warning) for d in decoded]

    def _decode_arrays(self, arrays: list[np.ndarray], beam: int, budget: float | None, start: float) -> list[Decoded]:
        """One batch of model inputs decoded (under the lock), within what is left of ``budget``;
        on a GPU out of memory, again on the CPU (``self._warning`` says so)."""
        batch, sizes = pad_batch(arrays)
        self._call_budget = _remaining(budget, start)  # read by _decode
        try:
            return self._decode(batch, sizes, beam)
        except Exception as error:  # noqa: BLE001 - only an out-of-memory on a GPU is retried
            if self.device == "cpu" or not _is_out_of_memory(error):
                raise
            self._move_to_cpu()
            self._call_budget = budget
            self._warning = GPU_FALLBACK_WARNING
            return self._decode(batch, sizes, beam)

    def _decode(self, images: torch.Tensor, sizes: torch.Tensor, beam: int) -> list[Decoded]:
        loaded = self._loaded
        time_budget = self._call_budget
        max_len = loaded.config.max_len
        if self.max_tokens is not None:
            max_len = min(max_len, int(self.max_tokens) + 1)  # max_len counts the BOS position
        bounds = dict(time_budget=time_budget, guard=self.guard, syntax=self._syntax if self.well_formed else None)
        if beam == 1:
            return greedy_decode(loaded.model, images, sizes, max_len, **bounds)
        return beam_search(loaded.model, images, sizes, beam, max_len, **bounds)

    def _move_to_cpu(self) -> None:
        """After a GPU out-of-memory error: free the GPU and stay on the CPU from now on."""
        self._loaded.model.to("cpu")
        self._device = "cpu"
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _recognition(self, decoded: Decoded, seconds: float, device: str, warning: str | None) -> Recognition:
        vocab = self._loaded.vocab
        latex = detokenize(vocab.decode(decoded.ids))
        alternatives, seen = [], {latex}
        for ids, confidence in decoded.alternatives:
            text = detokenize(vocab.decode(ids))
            if text not in seen:
                seen.add(text)
                alternatives.append(Alternative(text, confidence))
        return Recognition(latex, decoded.confidence, alternatives, seconds, device, warning, decoded.stopped)


def _remaining(budget: float | None, start: float) -> float | None:
    """What is left of ``budget`` seconds since ``start`` (never quite zero: one step always runs)."""
    if budget is None:
        return None
    return max(budget - (time.perf_counter() - start), 1e-3)
