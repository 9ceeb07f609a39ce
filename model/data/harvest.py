"""Formulas from the documentation of installed Python packages (``.. math::`` and ``:math:``).

Scientific packages (scipy, numpy, sympy, torch, networkx...) document their formulas in
reStructuredText, written by people for a LaTeX renderer: real notation in real variety, on
any machine that has the packages, with no download.  The text needs care before it is LaTeX:

* in a non-raw docstring the author typed ``\\\\frac`` to get ``\\frac``; we read the source
  of each string literal and undo only ``\\\\`` (and escaped quotes), so a careless ``\\frac``
  in a non-raw string (a form feed for Python) still comes out as the author meant;
* a ``.. math::`` block holds one formula per paragraph; its lines are joined; a paragraph with
  top-level ``\\\\`` line breaks becomes an ``aligned`` body when it has ``&`` alignment points,
  otherwise one formula per line; ``align``/``equation`` wrappers are turned into their
  math-mode forms;
* obvious junk (format placeholders, doctest prompts, non-ASCII, ``\\label``...) is dropped.

The result is not checked further here: the corpus build normalizes and filters every source
the same way.
"""

from __future__ import annotations

import importlib.metadata
import io
import re
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

SOURCE = "harvest"
_MARKERS = (b"math::", b":math:`")
_DIRECTIVE = re.compile(r"^(\s*)\.\. math::(.*)$")
_ROLE = re.compile(r":math:`([^`]+)`")
_OPTION = re.compile(r"^\s*:[a-zA-Z-]+:")
_ESCAPE = re.compile(r"\\([\\'\"\n])")
_JUNK = re.compile(r"%\(|%s|>>>|\$|`|\\(label|ref|eqref|cite|tag|nonumber|notag|newcommand|def)\b|#|@")
_DISPLAY_ENVS = {"align": "aligned", "align*": "aligned", "eqnarray": "aligned",
                 "eqnarray*": "aligned", "gather": "gathered", "gather*": "gathered",
                 "multline": "gathered", "multline*": "gathered", "split": "aligned"}
_WRAPPERS = re.compile(r"\\(begin|end)\{(equation\*?|displaymath|math)\}")
_ENV = re.compile(r"\\(begin|end)\{([a-zA-Z]+\*?)\}")
_MAX_CHARS = 400
_TEXT_GROUP = re.compile(r"\\(text|textrm|textit|textbf|mathrm|mathit|mathbf|mathsf|mathtt|operatorname)\s*\{[^{}]*\}")
_IDENTIFIER = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{5,}|[a-zA-Z]_[a-zA-Z]{3,}|\*[a-z]")


@dataclass
class HarvestStats:
    """What a harvest looked at, for the corpus summary."""

    packages: int = 0
    files_scanned: int = 0
    files_with_math: int = 0
    formulas: int = 0
    seconds: float = 0.0
    timed_out: bool = False


# ------------------------------------------------------------------------ text -> formulas


def formulas_in_rst(text: str) -> list[str]:
    """Formulas of the ``.. math::`` blocks and ``:math:`` roles in reST text, cleaned up."""
    out: list[str] = []
    lines = text.splitlines()
    prose: list[str] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        indent = len(match.group(1).expandtabs())
        block: list[str] = []
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
            block.append(lines[j])
            j += 1
        argument = match.group(2).strip()
        paragraphs = ([argument] if argument else []) + _paragraphs(block)
        for paragraph in paragraphs:
            out.extend(_split_display(paragraph))
        prose.append("")
        i = j
    for match in _ROLE.finditer("\n".join(prose)):
        out.append(" ".join(match.group(1).split()))
    return [f for f in (_clean(f) for f in out) if f]


def _indent(line: str) -> int:
    return len(line.expandtabs()) - len(line.expandtabs().lstrip())


def _paragraphs(block: list[str]) -> list[str]:
    """Blank-line separated paragraphs of a directive body, options skipped, lines joined."""
    paragraphs: list[str] = []
    current: list[str] = []
    started = False
    for line in block:
        if not started and _OPTION.match(line):
            continue
        started = started or bool(line.strip())
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _top_level_breaks(latex: str) -> list[int]:
    """Positions of ``\\\\`` outside braces and environments."""
    depth = 0
    env_depth = 0
    positions = []
    i = 0
    while i < len(latex):
        ch = latex[i]
        if ch == "\\":
            env = _ENV.match(latex, i)
            if env:
                env_depth += 1 if env.group(1) == "begin" else -1
                i = env.end()
                continue
            if latex.startswith("\\\\", i) and depth == 0 and env_depth == 0:
                positions.append(i)
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        i += 1
    return positions


def _split_display(paragraph: str) -> list[str]:
    """One display paragraph as formulas: an aligned body, or one formula per line."""
    latex = _WRAPPERS.sub("", paragraph)
    latex = _ENV.sub(lambda m: f"\\{m.group(1)}{{{_DISPLAY_ENVS.get(m.group(2), m.group(2))}}}", latex)
    latex = latex.strip()
    breaks = _top_level_breaks(latex)
    if not breaks:
        return [latex]
    pieces, start = [], 0
    for position in breaks:
        pieces.append(latex[start:position].strip())
        start = position + 2
    pieces.append(latex[start:].strip())
    pieces = [p for p in pieces if p]
    if any(_has_top_level_ampersand(p) for p in pieces):
        return ["\\begin{aligned} " + " \\\\ ".join(pieces) + " \\end{aligned}"]
    return pieces


def _has_top_level_ampersand(latex: str) -> bool:
    """An alignment point outside any inner environment (a matrix has its own ``&``)."""
    outside = re.sub(r"\\begin\{([a-zA-Z]+\*?)\}.*?\\end\{\1\}", "", latex)
    return "&" in outside.replace("\\&", "")


def _clean(latex: str) -> str:
    """Trim a formula; empty when it is junk (placeholders, prompts, non-ASCII, too long)."""
    latex = " ".join(latex.split())
    latex = re.sub(r"(\\\\\s*)+$", "", latex).strip()  # a trailing line break
    if not latex or len(latex) > _MAX_CHARS or not latex.isascii() or _JUNK.search(latex):
        return ""
    if any(ord(ch) < 32 for ch in latex):
        return ""
    if latex.count("{") != latex.count("}"):
        return ""
    if _IDENTIFIER.search(_ENV.sub("", _TEXT_GROUP.sub("", latex))):
        return ""  # code, not notation: StickBreakingTransform(z_i), *out_features
    return latex


# ------------------------------------------------------------------------ python sources


def string_literals(source: str) -> Iterator[str]:
    """The text of each (non-bytes, non-f) string literal, with ``\\\\`` read as ``\\``."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.STRING:
                continue
            text = tok.string
            prefix = text[: len(text) - len(text.lstrip("rRbBuUfF"))].lower()
            if "b" in prefix or "f" in prefix:
                continue
            body = text[len(prefix):]
            quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
            body = body[len(quote): len(body) - len(quote)]
            yield body if "r" in prefix else _ESCAPE.sub(_unescape, body)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return


def _unescape(match: re.Match[str]) -> str:
    ch = match.group(1)
    return "" if ch == "\n" else ch


def formulas_in_file(path: Path) -> list[str]:
    """Formulas documented in one ``.py`` (string literals) or ``.rst``/``.txt`` file."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    if not any(marker in data for marker in _MARKERS):
        return []
    text = data.decode("utf-8", errors="replace")
    if path.suffix == ".py":
        return [f for literal in string_literals(text) if "math:" in literal
                for f in formulas_in_rst(literal)]
    return formulas_in_rst(text)


# ------------------------------------------------------------------------ installed packages


def installed_files(distributions: Iterable[importlib.metadata.Distribution] | None = None) -> Iterator[Path]:
    """Documentation-bearing files of installed distributions, in a stable order."""
    dists = list(importlib.metadata.distributions() if distributions is None else distributions)
    dists.sort(key=lambda d: (d.metadata["Name"] or "").lower())
    seen: set[Path] = set()
    for dist in dists:
        for file in sorted(dist.files or [], key=str):
            if file.suffix not in (".py", ".rst"):
                continue
            path = Path(dist.locate_file(file))
            if path not in seen:
                seen.add(path)
                yield path


def harvest(paths: Iterable[Path] | None = None, time_limit: float = 30.0,
            stats: HarvestStats | None = None) -> Iterator[tuple[str, str]]:
    """``(latex, "harvest")`` for every formula in ``paths`` (default: installed packages).

    Stops after ``time_limit`` seconds (marked in ``stats``), so a machine with many large
    packages still builds the corpus quickly.
    """
    stats = stats if stats is not None else HarvestStats()
    start = time.monotonic()
    files = installed_files() if paths is None else iter(paths)
    if paths is None:
        stats.packages = sum(1 for _ in importlib.metadata.distributions())
    for path in files:
        if time.monotonic() - start > time_limit:
            stats.timed_out = True
            break
        stats.files_scanned += 1
        found = formulas_in_file(Path(path))
        if found:
            stats.files_with_math += 1
        for latex in found:
            stats.formulas += 1
            yield latex, SOURCE
    stats.seconds = time.monotonic() - start
