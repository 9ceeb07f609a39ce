"""`im2latex data`: build the formula corpus, render it into training shards, look at them.

Steps: ``corpus`` (formula lists -> <data>/corpus), ``render`` (corpus -> <data>/shards),
``build`` (both, every split, one command), ``preview`` (a picture of what the model is fed),
``verify`` (check shards for damage), ``reindex`` (model-input sizes again, after a
preprocessing change), ``suite`` (the snip-style evaluation suite).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
from pathlib import Path

STEPS = [
    ("corpus", "model.data.corpus", "build the formula corpus (train/val/test.jsonl and vocab.json)"),
    ("render", "model.data.render", "render corpus formulas into image shards"),
    ("preview", "model.data.preview", "draw raw render / augmented snip / model input for a few samples"),
    ("suite", "model.data.suite", "render held-out formulas as users snip them (the evaluation suite)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    steps = parser.add_subparsers(dest="data_command", metavar="STEP")
    for name, module_name, help_text in STEPS:
        module = importlib.import_module(module_name)
        sub = steps.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(sub)
        sub.set_defaults(data_handler=module.run)
    build = steps.add_parser("build", help="corpus, then render every split (the whole data set, one command)",
                             description=run_build.__doc__, conflict_handler="resolve")
    _build_arguments(build)
    build.set_defaults(data_handler=run_build)
    verify = steps.add_parser("verify", help="check rendered shards for damage",
                              description=run_verify.__doc__)
    verify.add_argument("--shards", type=Path, required=True,
                        help="a shard split, or a shards folder (checks every split in it)")
    verify.add_argument("--no-decode", action="store_true", help="skip decoding every PNG (faster)")
    verify.set_defaults(data_handler=run_verify)
    reindex = steps.add_parser("reindex", help="store every sample's model-input size again (after a "
                                               "preprocessing change)", description=run_reindex.__doc__)
    reindex.add_argument("--shards", type=Path, required=True,
                         help="a shard split, or a shards folder (reindexes every split in it)")
    reindex.add_argument("--quiet", action="store_true", help="no progress bar")
    reindex.set_defaults(data_handler=run_reindex)
    parser.set_defaults(data_parser=parser)


def _build_arguments(parser: argparse.ArgumentParser) -> None:
    from . import corpus, render

    corpus.add_arguments(parser)  # its --out (the corpus folder) is replaced by the data folder below
    parser.add_argument("--out", type=Path, required=True,
                        help="data folder: the corpus goes to <out>/corpus, shards to <out>/shards")
    parser.add_argument("--rebuild-corpus", action="store_true",
                        help="build the corpus again even when <out>/corpus/train.jsonl exists")
    render.add_render_options(parser)


def run_build(args: argparse.Namespace) -> int:
    """Build the corpus into <out>/corpus, then render train, val and test into <out>/shards.

    Interrupt it at any time and run it again: an existing corpus is reused (unless
    --rebuild-corpus) and rendering resumes where it stopped.
    """
    from . import corpus, render

    data = Path(args.out)
    corpus_dir = data / "corpus"
    if args.rebuild_corpus or not (corpus_dir / "train.jsonl").exists():
        corpus_args = copy.copy(args)
        corpus_args.out = corpus_dir
        code = corpus.run(corpus_args)
        if code:
            return code
    else:
        print(f"reusing the corpus in {corpus_dir} (--rebuild-corpus to build it again)", flush=True)
    return render.render_splits(args, corpus_dir, data / "shards", render.SPLITS)


def run_verify(args: argparse.Namespace) -> int:
    """Check every sample of rendered shards: index lines, tar extents and headers, PNG data."""
    from ..errors import Im2LatexError
    from .shards import verify_shards

    failed = False
    for split in _splits(Path(args.shards)):
        try:
            print(verify_shards(split, decode=not args.no_decode).summary())
        except Im2LatexError as exc:
            print(f"im2latex data verify: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def run_reindex(args: argparse.Namespace) -> int:
    """Store again each sample's model-input size as the current preprocessing gives it.

    Training batches samples by these sizes; renders made before a change to model/preprocess.py
    keep stale ones, and a sample that now comes out much bigger pads its whole batch.
    """
    from ..errors import Im2LatexError
    from .shards import reindex_sizes

    for split in _splits(Path(args.shards)):
        try:
            samples, changed = reindex_sizes(split, progress=not args.quiet)
        except Im2LatexError as exc:
            print(f"im2latex data reindex: {exc}", file=sys.stderr)
            return 1
        print(f"{split}: {samples} samples, {changed} sizes changed", flush=True)
    return 0


def _splits(root: Path) -> list[Path]:
    """The split folders of a shards folder, or the folder itself when it is one split."""
    return [root / s for s in ("train", "val", "test") if (root / s).is_dir()] or [root]


def run(args: argparse.Namespace) -> int:
    handler = getattr(args, "data_handler", None)
    if handler is None:
        args.data_parser.print_help()
        return 2
    return int(handler(args) or 0)
