"""Fuzz the whole reading path: seeded odd images through load_image -> preprocess -> recognize.

A snipping tool reads whatever is on the screen or the clipboard, so every input must end in a
result or in one typed error (``model.errors.Im2LatexError``) whose message is a sentence a
person understands; any other exception is a bug.  ``make fuzz`` runs 10,000 cases with the tiny
model of ``tests/tiny_model.py`` and writes the counts to ``benchmarks/fuzz.json``;
``tests/test_fuzz.py`` runs a few hundred of the same cases in CI.

Every case is made from ``(seed, index)`` alone, so ``--case N`` rebuilds and reruns one of them.
Kinds: sizes from 1x1 to 20000x40 and 40x20000; every PIL mode (1, L, P, RGB, RGBA, I;16, F and
the rarer LA, I, CMYK, YCbCr, ...); all white, all black, noise, transparent, one pixel of ink,
1-bit checkerboards, NaN/inf float images; encoded PNG/JPEG/BMP/GIF/TIFF/WebP bytes, truncated
or corrupted; garbage and empty bytes; decompression bombs (a forged header and a real one);
given as a PIL image, as bytes, or as a file path.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model.errors import Im2LatexError  # noqa: E402

MODES = ("1", "L", "P", "RGB", "RGBA", "I;16", "F")            # the list: most cases
RARE_MODES = ("LA", "I", "CMYK", "YCbCr", "RGBX", "PA", "La", "RGBa", "HSV", "I;16B", "LAB")
ENCODINGS = {  # format -> modes it can store (others are converted first)
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"),
    "JPEG": ("L", "RGB", "CMYK"),
    "BMP": ("1", "L", "P", "RGB"),
    "GIF": ("L", "P"),
    "TIFF": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"),
    "WEBP": ("RGB", "RGBA"),
}
EXTREME_SIZES = ((1, 1), (20000, 40), (40, 20000), (1, 20000), (20000, 1), (2, 2), (3, 400), (5000, 5))


@dataclass
class Case:
    index: int
    kind: str
    source: object                 # a PIL image, bytes, or a path (str)
    mode: str = ""
    size: tuple[int, int] = (0, 0)
    carrier: str = "image"         # image, bytes or path
    beam: int = 1


@dataclass
class Outcome:
    index: int
    kind: str
    mode: str
    size: tuple[int, int]
    carrier: str
    outcome: str                   # result, result:<stopped>, <ErrorClass>, crash:<Type>, bad-message:<ErrorClass>
    seconds: float
    message: str = ""
    trace: str = ""
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- content


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _formula_like(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Black-on-white text or strokes at a random scale: something a snip could really hold."""
    width, height = size
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.6 and min(size) >= 8:
        text = "".join(rng.choice(list("xyzab+-=()^_12345\u03b1\u03c0/")) for _ in range(int(rng.integers(1, 12))))
        font_size = int(max(4, min(height * rng.uniform(0.3, 0.9), 400)))
        draw.text((int(rng.integers(0, max(1, width // 4))), int(rng.integers(0, max(1, height // 4)))),
                  text, fill=0, font=_font(font_size))
    else:
        for _ in range(int(rng.integers(1, 20))):
            x0, x1 = sorted(rng.integers(0, max(1, width), 2).tolist())
            y0, y1 = sorted(rng.integers(0, max(1, height), 2).tolist())
            draw.line((x0, y0, x1, y1), fill=int(rng.integers(0, 120)), width=int(rng.integers(1, 6)))
    return image


def _random_size(rng: np.random.Generator) -> tuple[int, int]:
    if rng.random() < 0.25:
        return tuple(int(v) for v in EXTREME_SIZES[int(rng.integers(len(EXTREME_SIZES)))])
    while True:  # log-uniform sides, at most 800k pixels (the area of 20000x40)
        width, height = (int(round(10 ** rng.uniform(0, np.log10(20000)))) for _ in range(2))
        if width * height <= 800_000:
            return width, height


def _content(rng: np.random.Generator, kind: str, size: tuple[int, int]) -> Image.Image:
    width, height = size
    if kind == "formula":
        return _formula_like(rng, size)
    if kind == "all-white":
        return Image.new("L", size, 255)
    if kind == "all-black":
        return Image.new("L", size, 0)
    if kind == "uniform-colour":
        return Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    if kind == "noise":
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if kind == "sparse-noise":
        array = np.full((height, width), 255, np.uint8)
        array[rng.random((height, width)) < rng.uniform(0.001, 0.2)] = 0
        return Image.fromarray(array)
    if kind == "one-pixel":
        image = Image.new("L", size, 255)
        image.putpixel((int(rng.integers(width)), int(rng.integers(height))), 0)
        return image
    if kind == "checkerboard-1bit":
        cell = int(rng.integers(1, 5))
        yy, xx = np.indices((height, width))
        return Image.fromarray(((yy // cell + xx // cell) % 2).astype(bool)).convert("1")
    if kind == "gradient":
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
        return Image.fromarray(ramp.astype(np.uint8))
    if kind == "transparent":
        inner = _formula_like(rng, size).convert("RGBA")
        alpha = np.zeros((height, width), np.uint8) if rng.random() < 0.5 else \
            np.where(np.asarray(inner.convert("L")) < 128, 255, 0).astype(np.uint8)
        inner.putalpha(Image.fromarray(alpha))
        return inner
    if kind == "float-special":
        values = rng.normal(0, 1, (height, width)).astype(np.float32) * float(10.0 ** int(rng.integers(-3, 38)))
        mask = rng.random((height, width))
        values[mask < 0.05] = np.nan
        values[(mask >= 0.05) & (mask < 0.08)] = np.inf
        values[(mask >= 0.08) & (mask < 0.1)] = -np.inf
        return Image.fromarray(values)
    if kind == "i16-narrow":
        base = int(rng.integers(0, 65000))
        values = (base + rng.integers(0, 400, (height, width))).astype(np.uint16)
        return Image.fromarray(values)  # uint16: mode I;16
    raise ValueError(kind)


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode``, by the route PIL supports (float and 16-bit through numpy)."""
    if image.mode == mode:
        return image
    try:
        if mode == "F":
            return Image.fromarray(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
        if mode in ("I;16", "I;16B"):
            values = np.asarray(image.convert("L"), dtype=np.uint16) * 257
            return Image.fromarray(values) if mode == "I;16" else \
                Image.frombytes("I;16B", image.size, values.astype(">u2").tobytes())
        if mode == "I":
            return image.convert("L").convert("I")
        if mode == "P":
            return image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=int(16))
        if mode == "PA":
            return image.convert("RGBA").convert("PA")
        if mode == "La":
            return image.convert("LA").convert("La")
        if mode == "RGBa":
            return image.convert("RGBA").convert("RGBa")
        if mode == "HSV":
            return image.convert("RGB").convert("HSV")
        if mode == "LAB":
            return image.convert("RGB").convert("LAB")
        if mode in ("LA", "RGBA") and image.mode in ("F", "I;16", "I"):
            return image.convert("L").convert(mode)
        if image.mode in ("F", "I;16", "I;16B"):
            return image.convert("L").convert(mode)
        return image.convert(mode)
    except (ValueError, OSError):
        return image.convert("RGB") if image.mode not in ("F", "I;16", "I;16B", "I") else image


# ----------------------------------------------------------------------------- encoded bytes


def _encode(image: Image.Image, fmt: str, rng: np.random.Generator) -> bytes:
    if image.mode not in ENCODINGS[fmt]:
        image = _to_mode(image, ENCODINGS[fmt][int(rng.integers(len(ENCODINGS[fmt])))])
    if fmt == "GIF" and max(image.size) > 65535:
        fmt = "PNG"
    buffer = io.BytesIO()
    options = {"quality": int(rng.integers(5, 95))} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "WEBP" and max(image.size) > 16383:
        fmt, options = "PNG", {}
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def forged_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with a little data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    rows = zlib.compress(b"\x00" * min(1 << 20, (width // 8 + 2) * 64), 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


_REAL_BOMB: bytes | None = None


def real_bomb() -> bytes:
    """A complete, valid 1-bit PNG of 9000x9000 (81 Mpx) that compresses to a few kilobytes."""
    global _REAL_BOMB
    if _REAL_BOMB is None:
        buffer = io.BytesIO()
        Image.new("1", (9000, 9000), 1).save(buffer, format="PNG", optimize=True)
        _REAL_BOMB = buffer.getvalue()
    return _REAL_BOMB


# ----------------------------------------------------------------------------- the cases

CONTENT_KINDS = ("snip", "snip", "snip", "formula", "formula", "all-white", "all-black", "uniform-colour", "noise",
                 "sparse-noise", "one-pixel", "checkerboard-1bit", "gradient", "transparent",
                 "float-special", "i16-narrow")
BYTE_KINDS = ("truncated", "corrupt", "garbage", "empty", "forged-bomb", "real-bomb", "text")


def make_case(seed: int, index: int, work_dir: Path | None = None) -> Case:
    """Case ``index`` of run ``seed``: the same arguments always give the same case."""
    rng = np.random.default_rng([seed, index])
    beam = 3 if rng.random() < 0.1 else 1
    if rng.random() < 0.18:
        return _byte_case(rng, index, beam)
    content = CONTENT_KINDS[int(rng.integers(len(CONTENT_KINDS)))]
    size = _random_size(rng)
    if content == "snip":  # a formula at an everyday snip size
        content, size = "formula", (int(rng.integers(60, 1500)), int(rng.integers(24, 300)))
    image = _content(rng, content, size)
    if content not in ("float-special", "i16-narrow", "checkerboard-1bit", "transparent"):
        modes = MODES if rng.random() < 0.85 else RARE_MODES
        image = _to_mode(image, modes[int(rng.integers(len(modes)))])
    kind = f"{content}"
    carrier = "image" if rng.random() < 0.6 else "bytes" if rng.random() < 0.75 else "path"
    if carrier == "image":
        return Case(index, kind, image, image.mode, image.size, "image", beam)
    fmt = list(ENCODINGS)[int(rng.integers(len(ENCODINGS)))]
    try:
        data = _encode(image, fmt, rng)
    except (OSError, ValueError):  # a size or mode the format cannot store: keep the image
        return Case(index, kind, image, image.mode, image.size, "image", beam)
    kind = f"{content}/{fmt}"
    if carrier == "path" and work_dir is not None:
        path = work_dir / f"case-{index}.{fmt.lower()}"
        path.write_bytes(data)
        return Case(index, kind, str(path), image.mode, image.size, "path", beam)
    return Case(index, kind, data, image.mode, image.size, "bytes", beam)


def _byte_case(rng: np.random.Generator, index: int, beam: int) -> Case:
    kind = BYTE_KINDS[int(rng.integers(len(BYTE_KINDS)))]
    if kind == "empty":
        return Case(index, kind, b"", carrier="bytes", beam=beam)
    if kind == "garbage":
        return Case(index, kind, rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes(),
                    carrier="bytes", beam=beam)
    if kind == "text":
        text = rng.choice(["<svg xmlns='http://www.w3.org/2000/svg'/>", "%PDF-1.4\n", "x^2+y^2", "GIF89a", "\x89PNG\r\n",
                           "BM", "II*\x00", "RIFF\x00\x00\x00\x00WEBPVP8 "])
        return Case(index, kind, str(text).encode("latin-1"), carrier="bytes", beam=beam)
    if kind == "forged-bomb":
        width, height = (int(v) for v in rng.integers(9000, 2 ** 31 - 1, 2))
        return Case(index, kind, forged_bomb(width, height), size=(width, height), carrier="bytes", beam=beam)
    if kind == "real-bomb":
        return Case(index, kind, real_bomb(), "1", (9000, 9000), "bytes", beam)
    fmt = list(ENCODINGS)[int(rng.integers(len(ENCODINGS)))]
    size = _random_size(rng)
    if size[0] * size[1] > 200_000:
        size = (min(size[0], 2000), min(size[1], 100))
    image = _formula_like(rng, size)
    data = bytearray(_encode(image, fmt, rng))
    if kind == "truncated":
        data = data[: int(rng.integers(1, max(2, len(data))))]
    else:  # corrupt: flip bytes, mostly past the signature so the decoder gets to run
        for _ in range(int(rng.integers(1, 20))):
            at = int(rng.integers(min(8, len(data) - 1), len(data)))
            data[at] = int(rng.integers(0, 256))
    return Case(index, f"{kind}/{fmt}", bytes(data), image.mode, image.size, "bytes", beam)


def cases(seed: int, count: int, work_dir: Path | None = None, start: int = 0) -> Iterator[Case]:
    for index in range(start, start + count):
        yield make_case(seed, index, work_dir)


# ----------------------------------------------------------------------------- running


def is_sentence(message: str) -> bool:
    """One line, starting with a capital letter, ending with a full stop, no traceback."""
    return (bool(message) and message == message.strip() and "\n" not in message and len(message) <= 400
            and message[0].isupper() and message.endswith((".", "?", "!")) and "Traceback" not in message)


def run_case(recognize: Callable, case: Case) -> Outcome:
    """One case through ``recognize(source, beam=...)``; never raises."""
    start = time.perf_counter()
    message = trace = ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = recognize(case.source, beam=case.beam)
            stopped = getattr(result, "stopped", None)
            outcome = "result" if stopped is None else f"result:{stopped}"
            if not isinstance(result.latex, str):
                outcome = "crash:latex-not-str"
        except Im2LatexError as error:
            message = str(error)
            outcome = type(error).__name__ if is_sentence(message) else f"bad-message:{type(error).__name__}"
        except Exception as error:  # noqa: BLE001 - the point: any other exception is a finding
            message = f"{type(error).__name__}: {error}"
            outcome = f"crash:{type(error).__name__}"
            trace = "".join(traceback.format_exception(error)[-6:])
    seconds = time.perf_counter() - start
    found = sorted({f"{w.category.__name__}: {str(w.message)[:120]}" for w in caught})
    return Outcome(case.index, case.kind, case.mode, tuple(case.size), case.carrier, outcome, seconds, message,
                   trace, found)


def summarize(outcomes: list[Outcome], seed: int, seconds: float, model: str) -> dict:
    by_outcome = Counter(o.outcome for o in outcomes)
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for o in outcomes:
        by_kind[o.kind.split("/")[0]][o.outcome] += 1
    failures = [o for o in outcomes if o.outcome.startswith(("crash:", "bad-message:"))]
    times = np.array([o.seconds for o in outcomes])
    slowest = max(outcomes, key=lambda o: o.seconds)
    warned = Counter(w for o in outcomes for w in o.warnings)
    return {
        "cases": len(outcomes),
        "seed": seed,
        "model": model,
        "failures": len(failures),
        "outcomes": dict(by_outcome.most_common()),
        "outcomes_by_kind": {k: dict(v.most_common()) for k, v in sorted(by_kind.items())},
        "modes": dict(Counter(o.mode or "-" for o in outcomes).most_common()),
        "carriers": dict(Counter(o.carrier for o in outcomes).most_common()),
        "seconds_total": round(seconds, 1),
        "seconds_median": round(float(np.median(times)), 4),
        "seconds_p99": round(float(np.percentile(times, 99)), 4),
        "slowest": {"index": slowest.index, "kind": slowest.kind, "mode": slowest.mode, "size": slowest.size,
                    "carrier": slowest.carrier, "outcome": slowest.outcome, "seconds": round(slowest.seconds, 3)},
        "example_messages": _examples(outcomes),
        "warnings": dict(warned.most_common(20)),
        "failure_examples": [{"index": o.index, "kind": o.kind, "mode": o.mode, "size": o.size,
                              "outcome": o.outcome, "message": o.message[:300], "trace": o.trace[-1500:]}
                             for o in failures[:20]],
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }


def _examples(outcomes: list[Outcome]) -> dict[str, list[str]]:
    """Up to five distinct messages per error class, as the user would read them."""
    seen: dict[str, list[str]] = defaultdict(list)
    for o in outcomes:
        if o.message and not o.outcome.startswith("crash:"):
            generic = o.message.split("(")[0].strip()
            if generic not in (m.split("(")[0].strip() for m in seen[o.outcome]) and len(seen[o.outcome]) < 5:
                seen[o.outcome].append(o.message[:200])
    return dict(seen)


def _train_tiny(out_dir: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import train_tiny_model

    return train_tiny_model(out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20240610)
    parser.add_argument("--model", type=Path, help="a model bundle (default: train the tiny test model)")
    parser.add_argument("--case", type=int, help="rerun one case and print its outcome")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "fuzz.json")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    from model.inference import Recognizer

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="im2latex-fuzz-") as tmp:
        tmp_dir = Path(tmp)
        bundle = args.model or _train_tiny(tmp_dir / "tiny")
        recognizer = Recognizer(bundle, "cpu", threads=args.threads)
        recognizer.load()
        work = tmp_dir / "files"
        work.mkdir()
        if args.case is not None:
            outcome = run_case(recognizer.recognize, make_case(args.seed, args.case, work))
            print(json.dumps(outcome.__dict__, indent=1, default=str))
            return 0
        outcomes: list[Outcome] = []
        start = time.perf_counter()
        from tqdm import tqdm

        for case in tqdm(cases(args.seed, args.cases, work), total=args.cases, mininterval=10, file=sys.stderr):
            outcomes.append(run_case(recognizer.recognize, case))
            if case.carrier == "path":
                Path(case.source).unlink(missing_ok=True)
        summary = summarize(outcomes, args.seed, time.perf_counter() - start,
                            "tiny test model (tests/tiny_model.py)" if args.model is None else str(args.model))
    args.out.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: summary[k] for k in ("cases", "failures", "outcomes", "slowest", "seconds_total")}, indent=1))
    print(f"written to {args.out}")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
