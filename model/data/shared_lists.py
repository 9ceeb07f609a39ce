"""Formula list files: the shared training lists, user lists, and the evaluation-only lists.

The shared lists (``school_math.txt``, ``research_math.txt``, see SOURCES.md beside them) are
read in place, never copied into the repository.  The im2latex-100k files in the same folder
are the benchmark's held-out formulas: :func:`im2latex100k_formulas` exposes them for
evaluation, and nothing in the corpus build reads them, so they never reach training.

User lists hold one formula per line, written normally (``\\frac{1}{2}``) or token-spaced in
the im2latex-100k style (``\\frac { 1 } { 2 }``, ``\\mathrm { f o r ~ a l l }``); in the
spaced style the spaces inside text-mode arguments are separators, not visible spaces, so they
are removed there (``~`` is the visible space) before the formula is normalized.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from model.errors import Im2LatexError
from model.tokenizer import TEXT_COMMANDS

SCHOOL_FILE = "school_math.txt"
RESEARCH_FILE = "research_math.txt"
IM2LATEX100K_FILES = {"validate": "validate.formulas.norm.txt", "val": "validate.formulas.norm.txt",
                      "test": "test.formulas.norm.txt"}
ENV_VAR = "IM2LATEX_CORPUS"
REPO_ROOT = Path(__file__).resolve().parents[2]

_SINGLE_TOKEN = re.compile(r"\\[a-zA-Z]+\*?|\\.|[^\\]|\\begin\{[a-zA-Z]+\*?\}|\\end\{[a-zA-Z]+\*?\}")
_TEXT_OPEN = re.compile(r"(" + "|".join(re.escape(c) for c in sorted(TEXT_COMMANDS, key=len, reverse=True))
                        + r")(?![a-zA-Z])\s*\{")


class CorpusError(Im2LatexError):
    """A formula list is missing or unreadable."""


def default_corpus_dir() -> Path:
    """``$IM2LATEX_CORPUS``, else ``../shared/corpus`` next to the repository."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"


def read_lines(path: str | Path) -> Iterator[str]:
    """Non-empty stripped lines of a UTF-8 text file; CorpusError if it cannot be read."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    yield line
    except FileNotFoundError:
        raise CorpusError(f"The formula list {path} does not exist.") from None
    except OSError as e:
        raise CorpusError(f"The formula list {path} cannot be read ({e.strerror}).") from None


def _shared_list(corpus_dir: str | Path, name: str) -> Path:
    path = Path(corpus_dir) / name
    if not path.is_file():
        raise CorpusError(f"The shared formula list {path} is missing; pass --corpus-dir or set "
                          f"{ENV_VAR} to the folder that holds {name}.")
    return path


def school_formulas(corpus_dir: str | Path) -> Iterator[tuple[str, str]]:
    """``(latex, "school")`` for each line of school_math.txt."""
    for line in read_lines(_shared_list(corpus_dir, SCHOOL_FILE)):
        yield line, "school"


def research_formulas(corpus_dir: str | Path) -> Iterator[tuple[str, str]]:
    """``(latex, "research")`` for each line of research_math.txt."""
    for line in read_lines(_shared_list(corpus_dir, RESEARCH_FILE)):
        yield line, "research"


def im2latex100k_formulas(corpus_dir: str | Path, split: str) -> list[str]:
    """The im2latex-100k validation or test formulas (token-spaced), for evaluation only."""
    if split not in IM2LATEX100K_FILES:
        raise CorpusError(f"Unknown im2latex-100k split {split!r}; use 'validate' or 'test'.")
    path = _shared_list(Path(corpus_dir) / "im2latex100k", IM2LATEX100K_FILES[split])
    return [despace(line) if is_token_spaced(line) else line for line in read_lines(path)]


def is_token_spaced(line: str) -> bool:
    """True for im2latex-100k style lines, where every token stands alone between spaces."""
    words = line.split()
    if len(words) < 3:
        return False
    single = sum(1 for w in words if _SINGLE_TOKEN.fullmatch(w))
    return single >= 0.95 * len(words)


def despace(line: str) -> str:
    """A token-spaced line with text-mode arguments joined again (``~`` is a visible space)."""
    out: list[str] = []
    pos = 0
    for match in _TEXT_OPEN.finditer(line):
        if match.start() < pos:
            continue
        out.append(line[pos:match.end()])
        depth, i = 1, match.end()
        text: list[str] = []
        while i < len(line) and depth:
            ch = line[i]
            if ch == "\\" and i + 1 < len(line):
                command = re.match(r"\\[a-zA-Z]+|\\.", line[i:])
                assert command is not None
                text.append(command.group(0) + (" " if command.group(0)[1:].isalpha() else ""))
                i += len(command.group(0))
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "~":
                text.append(" ")
            elif not ch.isspace():
                text.append(ch)
            i += 1
        out.append("".join(text))
        pos = i
    out.append(line[pos:])
    return "".join(out)


def user_formulas(path: str | Path) -> Iterator[tuple[str, str]]:
    """``(latex, "user:<file stem>")`` for each line of a user's list file."""
    source = f"user:{Path(path).stem}"
    for line in read_lines(path):
        yield (despace(line) if is_token_spaced(line) else line), source
