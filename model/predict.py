"""`im2latex predict`: read the formula in each image file and print its LaTeX.

Images are decoded in batches (``--batch``, 16 by default): a window of a few batches is read
ahead, sorted by size so a batch pads little, decoded, and printed in the order given.  Batched
results equal one-by-one ones (each item stops at its own EOS; the encoder ignores padding);
each batch gets the recognizer's time budget once per image.

One bad image does not stop the others: it gets an error line (stderr in plain mode, an
``{"image", "error"}`` object with ``--json``) and the exit code becomes 1.  A missing or broken
model is exit code 2 with one sentence saying where we looked and how to get a model.
"""

from __future__ import annotations

import argparse
import json
import sys

DEFAULT_BATCH = 16  # measured: benchmarks/RESULTS.md, "Batch throughput"
WINDOW_BATCHES = 4  # batches read ahead and sorted by size together


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files of formulas")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per line: {"image", "latex", "confidence", "seconds"}')
    parser.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy, the fastest)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--model", default=None,
                        help="model folder or training checkpoint (default: $IM2LATEX_MODEL, else the bundled model)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help=f"images decoded together (default {DEFAULT_BATCH}; 1 = one at a time)")


def run(args: argparse.Namespace) -> int:
    from .errors import CheckpointError, Im2LatexError, ModelNotFoundError
    from .inference import DeviceError, Recognizer

    if args.beam < 1 or args.batch < 1:
        print(f"im2latex predict: --{'beam' if args.beam < 1 else 'batch'} must be at least 1.", file=sys.stderr)
        return 2
    try:
        recognizer = Recognizer(model_path=args.model, device=args.device, threads=args.threads)
        recognizer.load()
    except (ModelNotFoundError, CheckpointError, DeviceError) as error:
        print(f"im2latex predict: {error}", file=sys.stderr)
        return 2

    failed = False
    warned: set[str] = set()
    window = args.batch * WINDOW_BATCHES
    for start in range(0, len(args.images), window):
        paths = args.images[start:start + window]
        for image, outcome in zip(paths, recognize_files(recognizer, paths, args.beam, args.batch)):
            if isinstance(outcome, Im2LatexError):
                failed = True
                if args.json:
                    print(json.dumps({"image": image, "error": str(outcome)}), flush=True)
                else:
                    print(f"im2latex predict: {image}: {outcome}", file=sys.stderr, flush=True)
                continue
            if outcome.warning and outcome.warning not in warned:
                warned.add(outcome.warning)
                print(f"im2latex predict: {outcome.warning}", file=sys.stderr)
            if args.json:
                print(json.dumps(json_row(image, outcome)), flush=True)
            else:
                print(outcome.latex, flush=True)
    return 1 if failed else 0


def json_row(image: str, recognition) -> dict:
    """One line of ``--json`` output (``im2latex evaluate --predictions`` reads these back)."""
    row = {"image": image, "latex": recognition.latex, "confidence": round(recognition.confidence, 4),
           "seconds": round(recognition.seconds, 4)}
    if recognition.alternatives:
        row["alternatives"] = [{"latex": a.latex, "confidence": round(a.confidence, 4)}
                               for a in recognition.alternatives]
    return row


def recognize_files(recognizer, paths: list[str], beam: int, batch: int) -> list:
    """A Recognition or the Im2LatexError (unreadable, blank) of each of ``paths``, in order;
    decoded in batches of up to ``batch`` images of similar size."""
    from .errors import Im2LatexError

    outcomes: list = [None] * len(paths)
    arrays = {}
    for i, path in enumerate(paths):
        try:
            arrays[i] = recognizer.prepare(path)
        except Im2LatexError as error:
            outcomes[i] = error
    order = sorted(arrays, key=lambda i: arrays[i][0].shape)  # similar sizes decode together
    for k in range(0, len(order), batch):
        chunk = order[k:k + batch]
        budget = None if recognizer.time_budget is None else recognizer.time_budget * len(chunk)
        results = recognizer.recognize_batch([arrays[i] for i in chunk], beam=beam, time_budget=budget,
                                             prepared=True)
        for i, result in zip(chunk, results):
            outcomes[i] = result
    return outcomes
