"""Saving and loading models: the shipped bundle folder and the trainer's checkpoint file.

A bundle is what the app loads: a folder with ``model.pt`` (half-precision weights and a format
number), ``config.json``, ``vocab.json`` and ``meta.json``.  A training checkpoint is one ``.pt``
file holding everything needed to resume: config, vocabulary, full-precision weights, optimizer
and scheduler state, step and meta.  Files are always read with ``torch.load(weights_only=True)``
so a model file from elsewhere cannot run code, and written to a temporary file that replaces
the target only when complete.

A model file may come from anywhere, so everything read is checked before use and every flaw
becomes one ``CheckpointError`` sentence naming the file: JSON files are size-limited and may
not nest absurdly, configuration numbers must have the right type and a sane range, a
vocabulary may not list a token twice, and weights must fit the network and be finite.
(``tests/test_hostile_checkpoints.py`` tries the ways a file can be hostile.)
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from .config import InputSpec, ModelConfig
from .errors import CheckpointError, ModelNotFoundError
from .network import Im2LatexModel, meta_model
from .atomic import atomic_write
from .vocab import Vocab, write_json_atomic

FORMAT_VERSION = 1
BUNDLE_FILES = ("model.pt", "config.json", "vocab.json", "meta.json")
TRAINING_KIND = "im2latex-training-checkpoint"
BUNDLE_KIND = "im2latex-bundle-weights"
_CODE_SIGNS = ("GLOBAL", "Can only create new object", "Can only build")
HOW_TO_GET = ("train one with `im2latex train ...` or set IM2LATEX_MODEL to a model folder")
MAX_JSON_BYTES = 32 * 2**20  # config, vocabulary and meta are kilobytes; more is not ours
MAX_LEN_LIMIT = 100_000      # a decoder this long is no formula reader


@dataclass
class LoadedModel:
    model: Im2LatexModel
    config: ModelConfig
    vocab: Vocab
    meta: dict
    state: dict = field(default_factory=dict)  # optimizer / scheduler / step of a training checkpoint


# ----------------------------------------------------------------------------- writing


def _torch_save_atomic(path: Path, payload: dict) -> None:
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)


def _half_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights in float16 to halve the download; BatchNorm statistics stay float32 (tiny, and
    a running variance can fall below float16's precision)."""
    out = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point() and not name.endswith(("running_mean", "running_var")):
            tensor = tensor.half()
        out[name] = tensor.clone()
    return out


def save_bundle(directory: str | Path, model: torch.nn.Module, config: ModelConfig, vocab: Vocab,
                meta: dict) -> Path:
    """Write the folder the app loads; returns it."""
    directory = Path(directory)
    _check_vocab(config, vocab)
    directory.mkdir(parents=True, exist_ok=True)
    _torch_save_atomic(directory / "model.pt",
                       {"format": FORMAT_VERSION, "kind": BUNDLE_KIND, "state_dict": _half_state_dict(model)})
    write_json_atomic(directory / "config.json", config.to_dict())
    vocab.save(directory / "vocab.json")
    write_json_atomic(directory / "meta.json", dict(meta))
    return directory


def save_training_checkpoint(path: str | Path, model: torch.nn.Module, config: ModelConfig, vocab: Vocab, *,
                             optimizer=None, scheduler=None, step: int = 0, meta: dict | None = None) -> Path:
    """Write one resumable file; returns its path.  ``optimizer`` may be an optimizer or the
    state dict of one (carried over from another checkpoint)."""
    path = Path(path)
    _check_vocab(config, vocab)
    payload = {
        "format": FORMAT_VERSION,
        "kind": TRAINING_KIND,
        "config": config.to_dict(),
        "vocab": list(vocab.tokens),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer if optimizer is None or isinstance(optimizer, dict) else optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "meta": dict(meta or {}),
    }
    _torch_save_atomic(path, payload)
    return path


# ----------------------------------------------------------------------------- reading


def _torch_load(path: Path) -> dict:
    """``torch.load`` with weights only, its many failure modes turned into one clear sentence each."""
    try:
        with warnings.catch_warnings():  # torch's note on old pickle protocols means nothing to a user
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # The weights-only unpickler names the class or function a payload wanted to call;
        # anything else it rejects is broken bytes.
        if any(sign in str(error) for sign in _CODE_SIGNS):
            raise CheckpointError(
                f"The model file {path} was refused because it contains code that could run when "
                "loaded; use a model file written by im2latex.") from None
        raise CheckpointError(f"The model file {path} is truncated or corrupt; download or save it again.") from None
    except OSError as error:
        if not path.is_file():
            raise ModelNotFoundError(f"No model file at {path}; {HOW_TO_GET}.") from None
        raise CheckpointError(f"The model file {path} cannot be read ({error.strerror or error}).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, IndexError, TypeError):
        raise CheckpointError(f"The model file {path} is truncated or corrupt; download or save it again.") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"The file {path} is not an im2latex model file.")
    version = payload.get("format")
    if not isinstance(version, int):
        raise CheckpointError(f"The file {path} is not an im2latex model file (it has no format number).")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"The model file {path} uses format {version}, newer than this program reads "
            f"(format {FORMAT_VERSION}); update im2latex to use it.")
    return payload


def _read_json(path: Path) -> object:
    """A small JSON file; too big, too deeply nested or not JSON is a CheckpointError."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise CheckpointError(f"The file {path} is too large ({path.stat().st_size / 2**20:.0f} MiB) "
                                  "to be part of an im2latex model.")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
        raise CheckpointError(f"The file {path} is unreadable or not valid JSON.") from None


def _check_vocab(config: ModelConfig, vocab: Vocab, where: Path | None = None) -> None:
    if config.vocab_size != len(vocab):
        place = f" in {where}" if where is not None else ""
        raise CheckpointError(
            f"The vocabulary has {len(vocab)} tokens but the model{place} is configured for "
            f"{config.vocab_size}; the model files do not belong together.")


# (low, high) bounds of each configuration number; ints must be ints, floats may be ints.
_CONFIG_RANGES = {
    "vocab_size": (5, 10**7), "encoder_stages": (1, 4), "encoder_stride": (0, 32), "d_model": (4, 2**16), "nhead": (1, 1024),
    "decoder_layers": (1, 1000), "dim_feedforward": (1, 2**20), "dropout": (0.0, 0.99),
    "max_len": (2, MAX_LEN_LIMIT),
}
_INPUT_RANGES = {
    "glyph_height": (1.0, 1000.0), "margin": (0, 1000), "grid": (1, 1024), "max_height": (1, 100_000),
    "max_width": (1, 100_000), "min_ink_pixels": (0, 10**8),
}


def _config_from(data: object, where: Path) -> ModelConfig:
    try:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if not isinstance(data.get("input", {}), dict):
            raise TypeError("its input section is not a JSON object")
        config = ModelConfig.from_dict(data)
        _check_numbers(config, _CONFIG_RANGES, ModelConfig)
        _check_numbers(config.input, _INPUT_RANGES, InputSpec)
        if config.d_model % 4 or config.d_model % config.nhead:
            raise ValueError("d_model must be a multiple of 4 and of nhead")
        if config.input.max_height < config.input.grid or config.input.max_width < config.input.grid:
            raise ValueError("the largest input must hold at least one grid cell")
        return config
    except (TypeError, ValueError) as error:
        detail = str(error).rstrip(".") or type(error).__name__
        raise CheckpointError(f"The model configuration in {where} is not valid ({detail}).") from None


def _check_numbers(obj: object, ranges: dict[str, tuple], kind: type) -> None:
    """Every number of ``obj`` of the right type and within ``ranges``; else ValueError naming it."""
    defaults = kind()
    for f in fields(kind):
        if f.name not in ranges:
            continue
        value, default = getattr(obj, f.name), getattr(defaults, f.name)
        wants_int = isinstance(default, int) and not isinstance(default, bool)
        if isinstance(value, bool) or not isinstance(value, int if wants_int else (int, float)):
            raise ValueError(f"{f.name} must be {'an integer' if wants_int else 'a number'}, not {value!r}")
        low, high = ranges[f.name]
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"{f.name} = {value!r} is outside {low}..{high}")


def _vocab_from(tokens: object, where: Path) -> Vocab:
    try:
        if isinstance(tokens, dict):
            if not isinstance(tokens.get("format", 1), int):
                raise ValueError("its format is not a number")
            vocab = Vocab.from_json(tokens)
        elif isinstance(tokens, list):
            vocab = Vocab([str(t) for t in tokens])
        else:
            raise ValueError("not a token list")
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"The vocabulary in {where} is not valid ({str(error).rstrip('.')}).") from None
    if len(vocab.index) != len(vocab.tokens):
        twice = next(t for i, t in enumerate(vocab.tokens) if vocab.index[t] != i)
        raise CheckpointError(f"The vocabulary in {where} is not valid: it lists the token {twice!r} twice.")
    return vocab


def _build(config: ModelConfig, vocab: Vocab, state_dict: object, where: Path, device: str) -> Im2LatexModel:
    _check_vocab(config, vocab, where)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"The weights in {where} are not a state dictionary.")
    embedding = state_dict.get("tok_emb.weight")
    if embedding is not None and embedding.ndim >= 1 and embedding.shape[0] != len(vocab):
        raise CheckpointError(
            f"The weights in {where} are for a vocabulary of {embedding.shape[0]} tokens, but the "
            f"vocabulary has {len(vocab)}; the model files do not belong together.")
    try:
        model = meta_model(config)
    except (ValueError, TypeError, ZeroDivisionError, RuntimeError) as error:
        raise CheckpointError(f"The model configuration in {where} is not valid ({error}).") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"The weights in {where} do not fit this network ({detail}); "
                              "they were saved by a different model version.")
    for name, tensor in state_dict.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"The weights in {where} do not match the model configuration ({name} has shape "
                f"{tuple(tensor.shape)}, expected {tuple(expected[name].shape)}).")
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"The weights in {where} are damaged: {name} holds numbers that are not "
                                  "finite (NaN or infinity).")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()}, assign=True)
    return model.to(device).eval()


def _load_bundle(directory: Path, device: str) -> LoadedModel:
    missing = [name for name in BUNDLE_FILES if not (directory / name).is_file()]
    if missing:
        if len(missing) == len(BUNDLE_FILES):
            raise ModelNotFoundError(f"No model found in {directory} (no model.pt there); {HOW_TO_GET}.")
        raise CheckpointError(f"The model folder {directory} is incomplete: {', '.join(missing)} missing.")
    payload = _torch_load(directory / "model.pt")
    if payload.get("kind") not in (BUNDLE_KIND, TRAINING_KIND):  # a training file copied in works too
        raise CheckpointError(f"The file {directory / 'model.pt'} is not an im2latex model file.")
    config = _config_from(_read_json(directory / "config.json"), directory / "config.json")
    vocab = _vocab_from(_read_json(directory / "vocab.json"), directory / "vocab.json")
    meta = _read_json(directory / "meta.json")
    if not isinstance(meta, dict):
        raise CheckpointError(f"The file {directory / 'meta.json'} does not hold a JSON object.")
    model = _build(config, vocab, payload.get("state_dict"), directory / "model.pt", device)
    return LoadedModel(model, config, vocab, meta)


def _load_training_file(path: Path, device: str) -> LoadedModel:
    payload = _torch_load(path)
    if payload.get("kind") != TRAINING_KIND:
        if payload.get("kind") == BUNDLE_KIND:
            raise CheckpointError(f"The file {path} is the weights of a model folder; load the folder "
                                  f"{path.parent} instead.")
        raise CheckpointError(f"The file {path} is not an im2latex training checkpoint.")
    config = _config_from(payload.get("config"), path)
    vocab = _vocab_from(payload.get("vocab"), path)
    model = _build(config, vocab, payload.get("state_dict"), path, device)
    meta = payload.get("meta") or {}
    state = {key: payload[key] for key in ("optimizer", "scheduler", "step") if payload.get(key) is not None}
    return LoadedModel(model, config, vocab, dict(meta), state)


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a bundle folder (or its ``model.pt``) or a training checkpoint file, in eval mode."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _load_bundle(path, device)
    if path.is_file():
        if path.name == "model.pt" and (path.parent / "config.json").is_file():
            return _load_bundle(path.parent, device)
        return _load_training_file(path, device)
    raise ModelNotFoundError(f"No model found at {path}; {HOW_TO_GET}.")
