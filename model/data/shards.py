"""Rendered samples on disk: tar shards of PNGs with a JSON-lines index, and the training Dataset.

Layout of one split (``<data>/shards/<split>/``):

* ``shard-00000.tar``: uncompressed tar of 8-bit grayscale PNGs (black ink on white);
* ``shard-00000.jsonl``: one line per sample, ``{"name", "offset", "size", "latex", "font",
  "style", "dpi", "renderer", "width", "height"}``, where offset/size locate the PNG bytes in
  the tar (random access without reading the tar index) and width/height are those of the
  preprocessed clean image (for width bucketing);
* ``skipped.jsonl``: formulas the renderer refused, with the reason (so a resumed render does
  not try them again);
* ``manifest.json``: counts, rewritten atomically after every batch.

Crash safety: a sample's PNG is appended to the tar before its index line, both flushed per
sample and synced per batch, so after a crash the index never points past the data.  On
restart the writer drops a torn last index line and any tar bytes after the last indexed
sample, then appends.
"""

from __future__ import annotations

import fcntl
import json
import os
import tarfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from ..errors import BlankImageError, Im2LatexError
from ..vocab import write_json_atomic

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SKIPPED = "skipped.jsonl"
LOCK = ".writer.lock"
# Skip reasons that may not happen again (a busy machine, a TeX installation since repaired):
# a resumed render tries these formulas again instead of trusting the old verdict.
RETRY_REASONS = frozenset({"timeout", "preamble_error", "render_failed"})
MAX_SHARD_BYTES = 50 * 2**20
BLOCK = 512
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RECORD_KEYS = ("name", "offset", "size", "latex", "font", "style", "dpi", "renderer", "width", "height")


class ShardError(Im2LatexError):
    """A shard folder is missing, incomplete or corrupt."""


def shard_stem(index: int) -> str:
    return f"shard-{index:05d}"


def _shard_index(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0  # reproducible shards
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _read_index(path: Path, strict: bool) -> tuple[list[dict], list[int]]:
    """Records of an index file, and the byte offset just past each record's line.

    Text after the last newline is a torn line, what a crash leaves: it is ignored, or
    reported when ``strict``.  A bad complete line is corruption and always reported.
    """
    data = path.read_bytes()
    *complete, tail = data.split(b"\n")
    records, ends = [], []
    pos = 0
    for number, line in enumerate(complete, 1):
        pos += len(line) + 1
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not all(k in record for k in RECORD_KEYS):
                raise ValueError("missing keys")
        except ValueError:
            raise ShardError(f"{path} line {number} is not a valid sample record") from None
        records.append(record)
        ends.append(pos)
    if tail.strip() and strict:
        raise ShardError(f"{path} line {len(complete) + 1} is incomplete (an interrupted render; "
                         "run the render command again to repair it)")
    return records, ends


# ---------------------------------------------------------------- writing


class ShardWriter:
    """Appends samples to ``<out_dir>/<split>/``, resuming whatever is already there."""

    def __init__(self, out_dir: str | Path, split: str, max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
        self.dir = Path(out_dir) / split
        self.dir.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.max_shard_bytes = int(max_shard_bytes)
        # formulas rendered or skipped already, per renderer: one drawn by pdflatex may still be
        # drawn by KaTeX
        self.done_by_renderer: defaultdict[str, set[str]] = defaultdict(set)
        self.shards: list[dict] = []          # per shard: stem, samples, bytes
        self.skipped: Counter[str] = Counter()
        self.samples = 0
        self._tar = self._index = None
        self._lock = open(self.dir / LOCK, "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise ShardError(f"another render is writing to {self.dir}; wait for it to finish or stop it") from None
        self._recover()
        self._skip_file = open(self.dir / SKIPPED, "ab")

    # -- resume

    def _recover(self) -> None:
        indexes = sorted(self.dir.glob("shard-*.jsonl"), key=_shard_index)
        for k, index in enumerate(indexes):
            last = k == len(indexes) - 1
            records, ends = _read_index(index, strict=False)
            tar = index.with_suffix(".tar")
            tar_size = tar.stat().st_size if tar.exists() else 0
            # keep the records whose bytes are really in the tar (a crash can only lose the tail)
            keep = 0
            while keep < len(records) and records[keep]["offset"] + records[keep]["size"] <= tar_size:
                keep += 1
            if keep < len(records) and not last:
                raise ShardError(f"{tar} is shorter than its index says; delete {index.name} and "
                                 f"{tar.name} and render again")
            records = records[:keep]
            good = ends[keep - 1] if keep else 0
            if last:
                end = _padded(records[-1]["offset"] + records[-1]["size"]) if records else 0
                with open(index, "r+b") as f:
                    f.truncate(good)
                with open(tar, "ab") as f:
                    f.truncate(end)
            self.shards.append({"stem": index.stem, "samples": len(records),
                                "bytes": tar.stat().st_size if tar.exists() else 0})
            self.samples += len(records)
            for r in records:
                self._mark_done(r["latex"], r.get("renderer", "tex"))
        skipped = self.dir / SKIPPED
        if skipped.exists():
            records, good = _read_skips(skipped)
            keep = [r for r in records if r.get("reason") not in RETRY_REASONS]
            if len(keep) < len(records):
                # transient failures are tried again: drop them from the record
                tmp = skipped.with_suffix(".tmp")
                tmp.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in keep))
                os.replace(tmp, skipped)
            else:
                with open(skipped, "r+b") as f:
                    f.truncate(good)
            for r in keep:
                self._mark_done(r["latex"], r.get("renderer", "tex"))
                self.skipped[r["reason"]] += 1
        if self.shards:
            self._open(_shard_index(Path(self.shards[-1]["stem"])), append=True)

    def _open(self, number: int, append: bool = False) -> None:
        stem = shard_stem(number)
        self._tar = open(self.dir / f"{stem}.tar", "ab")
        self._index = open(self.dir / f"{stem}.jsonl", "ab")
        if not append:
            self.shards.append({"stem": stem, "samples": 0, "bytes": 0})

    def _finish_shard(self) -> None:
        """Close the current shard with the tar end-of-archive blocks."""
        if self._tar is None:
            return
        self._tar.write(b"\0" * (2 * BLOCK))
        self._sync()
        self._tar.close()
        self._index.close()
        self.shards[-1]["bytes"] += 2 * BLOCK
        self._tar = self._index = None

    # -- appending

    def add(self, png: bytes, latex: str, font: str, style: str, dpi: int, renderer: str,
            width: int, height: int) -> str:
        """Append one sample; returns its name inside the tar."""
        if not png.startswith(PNG_MAGIC):
            raise ValueError("a shard sample must be PNG bytes")
        if self._tar is None:
            self._open(0)
        elif self.shards[-1]["samples"] and self._tar.tell() + BLOCK + len(png) > self.max_shard_bytes:
            number = _shard_index(Path(self.shards[-1]["stem"])) + 1
            self._finish_shard()
            self._open(number)
        name = f"{self.split}-{self.samples:08d}.png"
        start = self._tar.tell()
        self._tar.write(_tar_header(name, len(png)))
        self._tar.write(png)
        self._tar.write(b"\0" * (_padded(len(png)) - len(png)))
        self._tar.flush()
        record = {"name": name, "offset": start + BLOCK, "size": len(png), "latex": latex, "font": font,
                  "style": style, "dpi": int(dpi), "renderer": renderer, "width": int(width),
                  "height": int(height)}
        self._index.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        self._index.flush()
        self.shards[-1]["samples"] += 1
        self.shards[-1]["bytes"] = self._tar.tell()
        self.samples += 1
        self._mark_done(latex, renderer)
        return name

    def add_skip(self, latex: str, reason: str, detail: str = "", **meta: object) -> None:
        """Record a formula the renderer refused, so a resumed render does not retry it."""
        record = {"latex": latex, "reason": reason, "detail": detail, **meta}
        self._skip_file.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        self._skip_file.flush()
        self.skipped[reason] += 1
        self._mark_done(latex, str(meta.get("renderer", "tex")))

    def _mark_done(self, latex: str, renderer: str) -> None:
        self.done_by_renderer[renderer].add(latex)

    @property
    def done(self) -> set[str]:
        """Formulas rendered or skipped already, by any renderer."""
        return set().union(*self.done_by_renderer.values())

    def _sync(self) -> None:
        for f in (self._tar, self._index, self._skip_file):
            if f is not None and not f.closed:
                f.flush()
                os.fsync(f.fileno())

    def flush(self) -> None:
        """Make everything so far durable and rewrite the manifest (call once per batch)."""
        self._sync()
        write_json_atomic(self.dir / MANIFEST, self.manifest())
        os.chmod(self.dir / MANIFEST, 0o644)

    def manifest(self) -> dict:
        return {"format": FORMAT_VERSION, "split": self.split, "samples": self.samples,
                "skipped": dict(sorted(self.skipped.items())),
                "shards": [{"tar": f"{s['stem']}.tar", "index": f"{s['stem']}.jsonl", "samples": s["samples"],
                            "bytes": s["bytes"]} for s in self.shards],
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def close(self) -> None:
        if self._skip_file.closed:
            return
        self._finish_shard()
        self.flush()
        self._skip_file.close()
        self._lock.close()  # releases the lock

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_skips(path: Path) -> tuple[list[dict], int]:
    records, good = [], 0
    for line in path.read_bytes().split(b"\n")[:-1]:  # the part after the last newline is torn
        try:
            record = json.loads(line)
        except ValueError:
            break
        records.append(record)
        good += len(line) + 1
    return records, good


# ---------------------------------------------------------------- reading


def split_dir_of(path: str | Path) -> Path:
    """Accept a split folder, or a shards folder holding ``train/`` (the usual one to look at)."""
    path = Path(path)
    if not path.exists():
        raise ShardError(f"{path} does not exist; render shards first (im2latex data render)")
    if any(path.glob("shard-*.jsonl")):
        return path
    for split in ("train", "val", "test"):
        if any((path / split).glob("shard-*.jsonl")):
            return path / split
    raise ShardError(f"{path} holds no shards (shard-*.jsonl); render them with: im2latex data render")


_CATEGORIES = ("font", "style", "renderer")


class ShardReader:
    """Random access to the samples of one split.  Safe to hand to DataLoader workers: file
    descriptors are opened lazily in each process and never pickled."""

    def __init__(self, split_dir: str | Path) -> None:
        self.dir = split_dir_of(split_dir)
        manifest = self.dir / MANIFEST
        if manifest.exists():
            try:
                version = json.loads(manifest.read_text()).get("format", 1)
            except ValueError:
                version = 1  # a stale manifest is repaired by the next render; the index rules
            if version > FORMAT_VERSION:
                raise ShardError(f"{manifest} has format {version}, newer than this program reads")
        indexes = sorted(self.dir.glob("shard-*.jsonl"), key=_shard_index)
        self.tars: list[Path] = []
        shard, offset, size, width, height, dpi = [], [], [], [], [], []
        self.names: list[str] = []
        self.latex: list[str] = []
        codes: dict[str, list[int]] = {k: [] for k in _CATEGORIES}
        self.categories: dict[str, list[str]] = {k: [] for k in _CATEGORIES}
        lookup: dict[str, dict[str, int]] = {k: {} for k in _CATEGORIES}
        for k, index in enumerate(indexes):
            tar = index.with_suffix(".tar")
            if not tar.exists():
                raise ShardError(f"{tar} is missing (its index {index.name} exists)")
            records, _ = _read_index(index, strict=False)
            self.tars.append(tar)
            for r in records:
                shard.append(k)
                offset.append(r["offset"])
                size.append(r["size"])
                width.append(r["width"])
                height.append(r["height"])
                dpi.append(r["dpi"])
                self.names.append(r["name"])
                self.latex.append(r["latex"])
                for key in _CATEGORIES:
                    value = str(r[key])
                    if value not in lookup[key]:
                        lookup[key][value] = len(self.categories[key])
                        self.categories[key].append(value)
                    codes[key].append(lookup[key][value])
        self.shard = np.asarray(shard, dtype=np.int32)
        self.offset = np.asarray(offset, dtype=np.int64)
        self.size = np.asarray(size, dtype=np.int64)
        self.widths = np.asarray(width, dtype=np.int32)
        self.heights = np.asarray(height, dtype=np.int32)
        self.dpi = np.asarray(dpi, dtype=np.int32)
        self.codes = {k: np.asarray(v, dtype=np.int16) for k, v in codes.items()}
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.latex)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state

    def record(self, i: int) -> dict:
        """The index record of sample ``i``."""
        return {"name": self.names[i], "offset": int(self.offset[i]), "size": int(self.size[i]),
                "latex": self.latex[i], "width": int(self.widths[i]), "height": int(self.heights[i]),
                "dpi": int(self.dpi[i]), "shard": self.tars[self.shard[i]].name,
                **{k: self.categories[k][self.codes[k][i]] for k in _CATEGORIES}}

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # a forked worker: never share the parent's descriptors
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(self.tars[shard], os.O_RDONLY)
        return fd

    def read_bytes(self, i: int) -> bytes:
        shard, offset, size = int(self.shard[i]), int(self.offset[i]), int(self.size[i])
        data = os.pread(self._fd(shard), size, offset)
        if len(data) != size:
            raise ShardError(f"{self.tars[shard]} ends before sample {self.names[i]} (offset {offset}, "
                             f"size {size}); the shard is truncated")
        return data

    def read_image(self, i: int) -> Image.Image:
        """Sample ``i`` decoded, mode L."""
        data = self.read_bytes(i)
        try:
            from io import BytesIO

            with Image.open(BytesIO(data)) as im:
                return im.convert("L")
        except (OSError, SyntaxError, ValueError) as exc:
            raise ShardError(f"sample {self.names[i]} in {self.tars[self.shard[i]]} is not a readable "
                             f"PNG ({exc})") from None

    def iter_samples(self) -> Iterator[tuple[dict, Image.Image]]:
        for i in range(len(self)):
            yield self.record(i), self.read_image(i)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:
            pass


@dataclass
class ShardReport:
    dir: Path
    samples: int = 0
    shards: int = 0
    bytes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        mb = self.bytes / 2**20
        skipped = ", ".join(f"{k} {v}" for k, v in self.skipped.items()) or "none"
        return f"{self.dir}: {self.samples} samples in {self.shards} shards ({mb:.1f} MiB); skipped: {skipped}"


def verify_shards(path: str | Path, decode: bool = True, raise_on_error: bool = True) -> ShardReport:
    """Check every shard of a split: index lines, tar extents, tar headers, PNG bytes.

    Raises ShardError naming the first problems (or, with ``raise_on_error=False``, returns
    them in the report).  ``decode`` also decodes every PNG (slower, catches damaged data).
    """
    directory = split_dir_of(path)
    report = ShardReport(directory)
    for tar in sorted(directory.glob("shard-*.tar"), key=_shard_index):
        if not tar.with_suffix(".jsonl").exists():
            report.problems.append(f"{tar.name} has no index {tar.with_suffix('.jsonl').name}")
    indexes = sorted(directory.glob("shard-*.jsonl"), key=_shard_index)
    for index in indexes:
        tar = index.with_suffix(".tar")
        try:
            records, _ = _read_index(index, strict=True)
        except ShardError as exc:
            report.problems.append(str(exc))
            continue
        if not tar.exists():
            report.problems.append(f"{tar.name} is missing (its index {index.name} exists)")
            continue
        report.shards += 1
        size = tar.stat().st_size
        report.bytes += size
        with open(tar, "rb") as f:
            for n, r in enumerate(records, 1):
                where = f"{tar.name}, sample {r['name']} ({index.name} line {n})"
                if r["offset"] < BLOCK or r["offset"] + r["size"] > size:
                    report.problems.append(f"{where}: offset {r['offset']} + size {r['size']} is beyond the "
                                           f"end of the tar ({size} bytes)")
                    continue
                f.seek(r["offset"] - BLOCK)
                header = f.read(BLOCK)
                try:
                    info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
                    if info.name != r["name"] or info.size != r["size"]:
                        raise tarfile.HeaderError("name or size differs from the index")
                except tarfile.HeaderError as exc:
                    report.problems.append(f"{where}: bad tar header ({exc})")
                    continue
                data = f.read(r["size"])
                if not data.startswith(PNG_MAGIC):
                    report.problems.append(f"{where}: the bytes are not a PNG")
                    continue
                if decode:
                    try:
                        from io import BytesIO

                        with Image.open(BytesIO(data)) as im:
                            im.load()
                    except (OSError, SyntaxError, ValueError) as exc:
                        report.problems.append(f"{where}: the PNG does not decode ({exc})")
                        continue
                report.samples += 1
    skipped = directory / SKIPPED
    if skipped.exists():
        report.skipped = dict(Counter(r.get("reason", "?") for r in _read_skips(skipped)[0]))
    manifest = directory / MANIFEST
    if not manifest.exists():
        report.problems.append(f"{MANIFEST} is missing (an interrupted render; run it again)")
    else:
        try:
            listed = json.loads(manifest.read_text()).get("samples")
        except ValueError:
            listed = None
            report.problems.append(f"{MANIFEST} is not valid JSON")
        if listed is not None and listed != report.samples and not report.problems:
            report.problems.append(f"{MANIFEST} lists {listed} samples but the shards hold {report.samples} "
                                   "(an interrupted render; run it again)")
    if report.problems and raise_on_error:
        more = f" (and {len(report.problems) - 5} more)" if len(report.problems) > 5 else ""
        raise ShardError(f"{directory} is damaged: " + "; ".join(report.problems[:5]) + more)
    return report


def reindex_sizes(split_dir: str | Path, spec=None, progress: bool = False) -> tuple[int, int]:
    """Store again every sample's clean model-input size, as the current ``model.preprocess``
    gives it; returns (samples, sizes changed).

    The index keeps the size each render had when it was drawn, and training buckets batches
    by it; after a change to preprocessing those sizes are stale, and a sample that now comes
    out much bigger pads its whole batch.  Each index file is replaced atomically; a render
    writing to the split meanwhile is refused (the writer's lock)."""
    from tqdm import tqdm

    from ..atomic import atomic_write
    from ..config import InputSpec
    from ..preprocess import preprocess

    spec = spec or InputSpec()
    directory = split_dir_of(split_dir)
    with open(directory / LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ShardError(f"a render is writing to {directory}; reindex after it has finished") from None
        reader = ShardReader(directory)
        bar = tqdm(total=len(reader), disable=not progress, desc=f"reindex {directory.name}", mininterval=2)
        changed, i = 0, 0
        for index in sorted(directory.glob("shard-*.jsonl"), key=_shard_index):
            records, _ = _read_index(index, strict=True)
            lines = []
            for record in records:
                height, width = preprocess(reader.read_image(i), spec).shape
                changed += (width, height) != (record["width"], record["height"])
                record.update(width=int(width), height=int(height))
                lines.append(json.dumps(record, ensure_ascii=False))
                i += 1
                bar.update(1)
            with atomic_write(index) as f:
                f.write("".join(line + "\n" for line in lines))
        bar.close()
        reader.close()
    return i, changed


# ---------------------------------------------------------------- training


def item_rng(seed: int, epoch: int, index: int, attempt: int = 0, copy: int = 0) -> np.random.Generator:
    """The random stream of one sample in one epoch (one retry of its augmentation, one extra
    copy when the sampler repeats it): reproducible, independent of workers."""
    key = [int(seed), int(epoch), int(index), int(attempt), int(copy)]
    while len(key) > 3 and key[-1] == 0:
        key.pop()  # trailing zeros left out: a first draw's stream is what it was before retries and copies
    return np.random.default_rng(np.random.SeedSequence(key))


# An augmented snip is used only when preprocessing gives it about the clean render's input size
# (each side within this factor, plus one grid step).  Otherwise preprocessing misjudged its glyph
# scale (a faint, blurred or low-contrast draw): the model would learn glyphs at the wrong size,
# and since batches are bucketed by the clean sizes, one such sample padded a whole batch of
# 32 x 64 px inputs to 256 x 688 px (8x the pixel budget, 30-45 s for one CPU step).
AUGMENT_SIZE_TOLERANCE = 1.5
AUGMENT_ATTEMPTS = 3


def size_matches(shape: tuple[int, ...], clean: tuple[int, int], grid: int) -> bool:
    """True when an input of ``shape`` (h, w) has about the ``clean`` input's size."""
    return all(c / AUGMENT_SIZE_TOLERANCE - grid <= s <= c * AUGMENT_SIZE_TOLERANCE + grid
               for s, c in zip(shape, clean))


class FormulaDataset:
    """(model input, token ids) pairs from a shard split, optionally augmented toward screens.

    An item is looked up by index, or by ``(index, epoch)`` / ``(index, epoch, copy)`` as
    ``BucketBatchSampler`` yields, which keeps augmentation varying per epoch (and per copy of a
    repeated sample) even in persistent DataLoader workers (they never see ``set_epoch`` calls
    made in the main process).
    """

    def __init__(self, shard_dir: str | Path, vocab, spec, augment: bool = False, seed: int = 0) -> None:
        self.reader = ShardReader(shard_dir)
        self.vocab = vocab
        self.spec = spec
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0
        from .render import NATIVE_RENDERERS

        # samples rendered at a screen's pixel size, which augmentation keeps at it (mostly)
        native_codes = [k for k, name in enumerate(self.reader.categories["renderer"]) if name in NATIVE_RENDERERS]
        self.native = np.isin(self.reader.codes["renderer"], native_codes)

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def widths(self) -> np.ndarray:
        return self.reader.widths

    @property
    def heights(self) -> np.ndarray:
        return self.reader.heights

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def tokens(self, i: int) -> list[int]:
        from ..tokenizer import normalize

        return self.vocab.encode(normalize(self.reader.latex[i]))

    def __getitem__(self, key: int | tuple[int, ...]) -> tuple[np.ndarray, list[int]]:
        from ..preprocess import preprocess

        if isinstance(key, tuple):
            index, epoch, copy = int(key[0]), int(key[1]), int(key[2]) if len(key) > 2 else 0
        else:
            index, epoch, copy = int(key), self.epoch, 0
        if index < 0:
            index += len(self)
        image = self.reader.read_image(index)
        array = self._augmented(image, index, epoch, copy) if self.augment else None
        if array is None:
            array = preprocess(image, self.spec)
        return array, self.tokens(index)

    def _augmented(self, image: Image.Image, index: int, epoch: int, copy: int = 0) -> np.ndarray | None:
        """The model input of an augmented snip, its glyphs at a drawn scale (``draw_input_scale``),
        whose size matches the clean input's (up to ``AUGMENT_ATTEMPTS`` draws), else None: the
        clean render is used instead."""
        from ..preprocess import preprocess
        from .augment import augment, draw_input_scale

        clean = (int(self.heights[index]), int(self.widths[index]))
        for attempt in range(AUGMENT_ATTEMPTS):
            try:
                rng = item_rng(self.seed, epoch, index, attempt, copy)
                snip = augment(image, rng, native=bool(self.native[index]))
                glyph = self.spec.glyph_height * draw_input_scale(rng)
                array = preprocess(snip, replace(self.spec, glyph_height=glyph))
            except BlankImageError:
                continue  # an augmentation too faint to read
            if size_matches(array.shape, clean, self.spec.grid):
                return array
        return None


class BucketBatchSampler:
    """Batches of samples with equal heights and similar widths, so padding wastes little.

    Batch size is a count (``batch_size``), a pixel budget (``max_pixels``: batch size x
    widest x tallest padded input), or both (whichever is smaller).  Sorting by width with a
    little seeded jitter, cutting into batches, then shuffling the batch order gives different
    batches every epoch, reproducible for (seed, epoch).  With ``world`` > 1 each rank takes
    every world-th batch of the same list (equal counts for DDP).  ``keep`` gives each sample
    its expected number of appearances in an epoch: under 1 a chance to be in it, so that a
    plentiful kind of sample can take a smaller share; above 1 extra copies (``int(keep)`` of
    them, and one more with chance ``keep % 1``), so that a rare kind takes a larger one.  The
    draws are seeded per epoch, the same on every rank.  Yields lists of ``(index, epoch)``
    keys, ``(index, epoch, copy)`` for a repeat, so that each copy is augmented differently
    (``with_epoch=False``: plain indices).
    """

    def __init__(self, widths: Sequence[int], batch_size: int | None = None, max_pixels: int | None = None,
                 shuffle: bool = True, seed: int = 0, *, heights: Sequence[int] | None = None,
                 height: int | None = None, rank: int = 0, world: int = 1, drop_last: bool = False,
                 with_epoch: bool = True, keep: Sequence[float] | None = None) -> None:
        if batch_size is None and max_pixels is None:
            raise ValueError("give batch_size, max_pixels, or both")
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.widths = np.asarray(widths, dtype=np.int64)
        if heights is not None:
            self.heights = np.asarray(heights, dtype=np.int64)
            if self.heights.shape != self.widths.shape:
                raise ValueError("heights and widths must have the same length")
        else:
            self.heights = np.full_like(self.widths, int(height) if height else 1)
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank, self.world = int(rank), max(1, int(world))
        self.drop_last = drop_last
        self.with_epoch = with_epoch
        # expected appearances of each sample in an epoch (None: once each); drawn every epoch
        self.keep = None if keep is None else np.asarray(keep, dtype=np.float64)
        if self.keep is not None and self.keep.shape != self.widths.shape:
            raise ValueError("keep and widths must have the same length")
        if self.keep is not None and not (np.isfinite(self.keep).all() and (self.keep >= 0).all()):
            raise ValueError("keep must hold finite numbers >= 0")
        self.epoch = 0
        self._cache: tuple[int, list[list[tuple[int, int]]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _copies(self) -> np.ndarray:
        """How many times each sample appears in this epoch (``keep``'s seeded draw)."""
        n = len(self.widths)
        if self.keep is None:
            return np.ones(n, dtype=np.int64)
        drawn = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 104729])).random(n)
        whole = np.floor(self.keep)
        return (whole + (drawn < self.keep - whole)).astype(np.int64)

    def _batches(self) -> list[list[tuple[int, int]]]:
        """This epoch's batches of (index, copy) pairs."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 7919]))
        copies = self._copies()
        index = np.repeat(np.arange(len(self.widths)), copies)
        # each entry's place among its sample's copies: 0, 1, ... (its position minus where its run starts)
        copy = np.arange(len(index)) - np.repeat(np.cumsum(copies) - copies, copies)
        widths, heights = self.widths[index], self.heights[index]
        # jitter of up to one grid cell mixes equal-width neighbours differently each epoch
        keys = widths + rng.uniform(0, 16, len(index)) if self.shuffle else widths
        # heights first: one tall formula in a batch of one-line ones would pad them all to its
        # height (measured: batches padded to 112-176 px where most inputs are 32 px tall)
        order = np.lexsort((keys, heights))
        batches: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        max_w = max_h = 0
        for i, c in zip(index[order].tolist(), copy[order].tolist()):
            w, h = int(self.widths[i]), int(self.heights[i])
            new_w, new_h = max(max_w, w), max(max_h, h)
            full = (self.batch_size is not None and len(current) >= self.batch_size) or (
                self.max_pixels is not None and current and (len(current) + 1) * new_w * new_h > self.max_pixels)
            if full:
                batches.append(current)
                current, new_w, new_h = [], w, h
            current.append((i, c))
            max_w, max_h = new_w, new_h
        if current and not (self.drop_last and self.batch_size is not None and len(current) < self.batch_size):
            batches.append(current)
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        if self.world > 1:
            usable = len(batches) - len(batches) % self.world
            batches = batches[:usable][self.rank::self.world]
        self._cache = (self.epoch, batches)
        return batches

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self):
        epoch = self.epoch
        for batch in self._batches():
            if self.with_epoch:
                yield [(i, epoch, c) if c else (i, epoch) for i, c in batch]
            else:
                yield [i for i, _ in batch]
