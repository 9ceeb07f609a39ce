"""`im2latex predict`: read the formula in each image file and print its LaTeX.

One bad image does not stop the others: it gets an error line (stderr in plain mode, an
``{"image", "error"}`` object with ``--json``) and the exit code becomes 1.  A missing or broken
model is exit code 2 with one sentence saying where we looked and how to get a model.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files of formulas")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per line: {"image", "latex", "confidence", "seconds"}')
    parser.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy, the fastest)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--model", default=None,
                        help="model folder or training checkpoint (default: $IM2LATEX_MODEL, else the bundled model)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the model")


def run(args: argparse.Namespace) -> int:
    from .errors import CheckpointError, Im2LatexError, ModelNotFoundError
    from .inference import DeviceError, Recognizer

    if args.beam < 1:
        print("im2latex predict: --beam must be at least 1.", file=sys.stderr)
        return 2
    try:
        recognizer = Recognizer(model_path=args.model, device=args.device, threads=args.threads)
        recognizer.load()
    except (ModelNotFoundError, CheckpointError, DeviceError) as error:
        print(f"im2latex predict: {error}", file=sys.stderr)
        return 2

    failed = False
    for image in args.images:
        try:
            result = recognizer.recognize(image, beam=args.beam)
        except Im2LatexError as error:
            failed = True
            if args.json:
                print(json.dumps({"image": image, "error": str(error)}), flush=True)
            else:
                print(f"im2latex predict: {image}: {error}", file=sys.stderr, flush=True)
            continue
        if result.warning:
            print(f"im2latex predict: {result.warning}", file=sys.stderr)
        if args.json:
            row = {"image": image, "latex": result.latex, "confidence": round(result.confidence, 4),
                   "seconds": round(result.seconds, 4)}
            if result.alternatives:
                row["alternatives"] = [{"latex": a.latex, "confidence": round(a.confidence, 4)}
                                       for a in result.alternatives]
            print(json.dumps(row), flush=True)
        else:
            print(result.latex, flush=True)
    return 1 if failed else 0
