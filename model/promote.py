"""`im2latex promote`: replace the bundled model with a training run's checkpoint when, and only
when, it reads better.

Every session ends the same way: export the run's last and best-validation checkpoints and the
mean of its last saves (``average.pt``, see model/average.py), read the same validation samples
with each and with the bundle the way the app reads (its reading scales, well-formed greedy
decoding), and bundle the winner.  The bundle is scored again each time, not
taken from its meta.json, so a change of decoding or normal form since it was bundled cannot
flatter either side.  Candidates read the way the bundle does (``input.reading_scales`` and
``reread_below``), and must keep its vocabulary, so that weights carry over.  Winner: most exact
readings, then BLEU-4; the bundle keeps its place on a tie.

    im2latex promote runs/s14            # last.pt, best.pt and average.pt of a run
    im2latex promote a.pt b.pt --dry-run # score only
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import load_model
from .evaluate import Sample, markdown_row, recognize_all, report, shard_samples
from .export import export_bundle
from .resources import bundled_model_dir
from .vocab import write_json_atomic

CANDIDATE_FILES = ("last.pt", "best.pt", "average.pt")


@dataclass
class Scored:
    name: str      # "bundle" or the checkpoint's path
    scores: dict   # report()["overall"]: n, bleu4, edit_similarity, exact_match, seconds

    @property
    def rank(self) -> tuple[float, float]:
        return self.scores["exact_match"], self.scores["bleu4"]


def candidates(paths: list[Path]) -> list[Path]:
    """Checkpoint files: each file given, and a run folder's last.pt, best.pt and average.pt
    (the mean of its last saves, written when the run stopped)."""
    found = []
    for path in paths:
        if path.is_dir() and not (path / "model.pt").is_file():
            found += [path / name for name in CANDIDATE_FILES if (path / name).is_file()]
        elif path.exists():
            found.append(path)
        else:
            raise SystemExit(f"im2latex promote: {path} does not exist")
    if not found:
        raise SystemExit(f"im2latex promote: no {' or '.join(CANDIDATE_FILES)} in {', '.join(map(str, paths))}")
    return found


def score(name: str, bundle: Path, samples: list[Sample], batch: int) -> Scored:
    predictions, seconds, _ = recognize_all(samples, str(bundle), "cpu", beam=1, threads=None, batch=batch)
    return Scored(name, report(samples, predictions, seconds)["overall"])


def promote(bundle: Path, checkpoints: list[Path], samples: list[Sample], batch: int = 8,
            dry_run: bool = False, work_dir: Path | None = None) -> tuple[Scored, list[Scored]]:
    """Score the bundle and every checkpoint on ``samples``; write the winner into ``bundle``
    unless it is the bundle itself or ``dry_run``.  Returns (winner, every score, bundle first)."""
    current = load_model(bundle)
    with tempfile.TemporaryDirectory(prefix="im2latex-promote-", dir=work_dir) as tmp:
        exported = []
        for i, checkpoint in enumerate(checkpoints):
            loaded = load_model(checkpoint)
            if loaded.vocab.tokens != current.vocab.tokens:
                raise SystemExit(f"im2latex promote: {checkpoint} has another vocabulary than {bundle}; "
                                 "replace the bundle by hand (im2latex export) if that is meant")
            exported.append(export_bundle(checkpoint, Path(tmp) / f"candidate{i}", read_like=current.config.input))
        scored = [score("bundle", bundle, samples, batch)]
        scored += [score(str(c), e, samples, batch) for c, e in zip(checkpoints, exported)]
        winner = max(scored, key=lambda s: s.rank)  # max keeps the first (the bundle) on a tie
        if winner.name != "bundle" and not dry_run:
            val = {f"best_val_{k}": winner.scores[k] for k in ("bleu4", "edit_similarity", "exact_match", "n")}
            export_bundle(Path(winner.name), bundle, extra=val, read_like=current.config.input)
    return winner, scored


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path,
                        help="training run folders (their last.pt, best.pt and average.pt) or checkpoint files")
    parser.add_argument("--bundle", type=Path, help="the bundle to beat and replace (default: the bundled model)")
    parser.add_argument("--split", type=Path, default=Path("data/shards/val"),
                        help="rendered split to read (default: data/shards/val)")
    parser.add_argument("--limit", type=int, default=300, help="its first N samples (default 300)")
    parser.add_argument("--batch", type=int, default=8, help="decode N images at once (default 8)")
    parser.add_argument("--dry-run", action="store_true", help="score only; leave the bundle as it is")
    parser.add_argument("--out", type=Path, help="write the scores here as JSON")


def run(args: argparse.Namespace) -> int:
    bundle = args.bundle or bundled_model_dir()
    checkpoints = candidates(args.runs)
    samples = list(shard_samples(args.split, args.limit))
    if not samples:
        raise SystemExit(f"im2latex promote: no samples in {args.split}")
    winner, scored = promote(bundle, checkpoints, samples, args.batch, args.dry_run)
    print("| model | n | BLEU-4 | edit sim. | exact | s/img p50 | s/img p95 |\n|---|---:|---:|---:|---:|---:|---:|")
    for s in scored:
        print(markdown_row(s.name + (" (winner)" if s is winner else ""), s.scores))
    if winner.name == "bundle":
        print(f"kept {bundle}: no checkpoint reads better")
    elif args.dry_run:
        print(f"{winner.name} reads better (dry run: {bundle} left as it is)")
    else:
        print(f"wrote {winner.name} into {bundle}; update its MODEL_CARD.md")
    if args.out:
        write_json_atomic(args.out, {"split": str(args.split), "winner": winner.name, "promoted": not args.dry_run
                                     and winner.name != "bundle",
                                     "scores": {s.name: s.scores for s in scored}})
    return 0
