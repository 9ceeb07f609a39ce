"""Render formulas with real LaTeX: many formulas per pdflatex run, one PDF page each.

Why batches: starting pdflatex and loading amsmath costs ~0.15 s, typesetting one formula
well under a millisecond, so one run typesets 50-200 formulas and one ``pdftoppm`` call
rasterizes the whole PDF.  Each formula sits on its own source line inside a ``preview``
environment (one page per formula) between two ``\\typeout`` markers, and a shipout hook logs
every page; reading the log back tells, for each page, which formula made it and, for each
error or warning, which formula caused it.  Formulas that fail are skipped with a reason;
formulas after the first error are typeset again without the failures, so no page is trusted
once TeX has recovered from an error earlier in the same run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import TexNotFoundError
from ..tokenizer import TextMode, detokenize, tokenize
from .rendering import RenderResult, Skip, crop_to_ink, per_formula, single_line, to_image

# lmodern is only a "Recommends" of texlive-base, so it is named explicitly.
INSTALL_COMMAND = ("apt-get install texlive-latex-base texlive-latex-recommended "
                   "texlive-latex-extra texlive-fonts-recommended lmodern poppler-utils")

# Font setups: the lines between \documentclass and the shared packages.  cm and sans stay in
# OT1 because the T1 versions of Computer Modern need cm-super, which TeX Live's recommended
# fonts do not include (pdflatex would try to make bitmap fonts instead).
FONTS: dict[str, str] = {
    "cm": "",
    "lmodern": "\\usepackage{lmodern}\n\\usepackage[T1]{fontenc}\n",
    "times": "\\usepackage[T1]{fontenc}\n\\usepackage{mathptmx}\n",
    "palatino": "\\usepackage[T1]{fontenc}\n\\usepackage{mathpazo}\n",
    "sans": "\\usepackage{sfmath}\n\\renewcommand{\\familydefault}{\\sfdefault}\n",
}
STYLES: dict[str, tuple[str, str]] = {"display": ("$\\displaystyle ", "$"), "inline": ("$", "$")}

_PREAMBLE = """\\documentclass[12pt]{{article}}
{font}\\usepackage{{amsmath}}
\\usepackage{{amssymb}}
\\usepackage{{bm}}
\\usepackage{{mathrsfs}}
\\usepackage[active,tightpage]{{preview}}
\\setlength{{\\PreviewBorder}}{{1pt}}
\\setlength{{\\textwidth}}{{200in}}
\\setlength{{\\hsize}}{{200in}}
\\pagestyle{{empty}}
\\tracinglostchars=3
\\AddToHook{{shipout/after}}{{\\typeout{{IMLTX:S}}}}
\\begin{{document}}
"""
_LINE = "\\typeout{{IMLTX:B:{i}}}\\begin{{preview}}{open}{src}{close}\\end{{preview}}\\typeout{{IMLTX:E:{i}}}\n"
_MARKER = re.compile(r"^IMLTX:(B|E|S)(?::(\d+))?\s*$")
_WARNINGS = (
    (re.compile(r"^Overfull \\[hv]box"), "overfull"),
    (re.compile(r"^LaTeX Font Warning: Font shape .* undefined"), "font_substitution"),
    (re.compile(r"^LaTeX Font Warning: Font shape .* not available"), "font_substitution"),
)
# Text-mode characters that OT1 fonts draw as other glyphs (< is an inverted !, | an em dash)
# or that T1 ligatures merge (<< is a guillemet); their text commands draw what was typed.
_TEXT_CHAR_COMMANDS = {"<": "\\textless", ">": "\\textgreater", "|": "\\textbar"}
MAX_PIXELS = 20_000_000  # a raw render larger than this is a runaway, not a formula
_ENV = {
    # Never make bitmap fonts on the fly (slow, and a missing font is a skip, not a wait),
    # never run shell commands, read and write only below the working directory.
    "MKTEXPK": "0", "MKTEXTFM": "0", "MKTEXMF": "0", "openin_any": "p", "openout_any": "p",
    "shell_escape": "f", "max_print_line": "100000", "error_line": "254", "half_error_line": "238",
}


_STDBUF = shutil.which("stdbuf")


def check_tex() -> None:
    """Raise TexNotFoundError naming the install command when pdflatex or pdftoppm is missing."""
    for tool in ("pdflatex", "pdftoppm"):
        if shutil.which(tool) is None:
            raise TexNotFoundError(f"{tool} is not installed; install TeX Live and poppler with: "
                                   f"sudo {INSTALL_COMMAND}")


def probe_fonts(fonts: Sequence[str], workdir: str | Path | None = None) -> None:
    """Typeset one formula per font setup; raise TexNotFoundError naming a setup that does not
    work here (a missing package), rather than skipping every formula drawn in that font."""
    check_tex()
    for font in fonts:
        result = render_tex(["x+1"], font, "display", 72, workdir)[0]
        if isinstance(result, Skip):
            others = ",".join(f for f in FONTS if f != font)
            raise TexNotFoundError(f"the TeX font setup {font!r} does not work here ({result.detail}); install "
                                   f"the TeX packages with: sudo {INSTALL_COMMAND}, or leave it out with "
                                   f"--fonts {others}")


def tex_source(latex: str) -> str:
    """The formula as it goes into the .tex file: one line, with text-mode <, >, | spelled
    as text commands so that every font draws the character that was typed."""
    latex = single_line(latex)
    if not any(c in latex for c in _TEXT_CHAR_COMMANDS):
        return latex
    out: list[str] = []
    mode = TextMode()
    changed = False
    for tok in tokenize(latex):
        if mode.inside and tok in _TEXT_CHAR_COMMANDS:
            out += [_TEXT_CHAR_COMMANDS[tok], "{", "}"]
            changed = True
            continue
        mode.feed(tok)
        out.append(tok)
    return detokenize(out) if changed else latex


# ---------------------------------------------------------------- one pdflatex run


@dataclass
class _Run:
    """What one pdflatex run did, read from its log."""

    began: set[int] = field(default_factory=set)
    ended: set[int] = field(default_factory=set)
    errors: dict[int, str] = field(default_factory=dict)      # formula -> first error message
    warnings: dict[int, str] = field(default_factory=dict)    # formula -> skip reason
    page_owner: list[int | None] = field(default_factory=list)  # page k was shipped by formula
    preamble_error: str = ""
    timed_out: bool = False
    current: int | None = None   # the formula being typeset when the log ends
    pdf: Path | None = None


def _parse_log(text: str) -> _Run:
    run = _Run()
    current: int | None = None
    started = False
    lines = text.splitlines()
    for n, line in enumerate(lines):
        marker = _MARKER.match(line)
        if marker:
            kind, num = marker.group(1), marker.group(2)
            if kind == "B":
                current = int(num)
                started = True
                run.began.add(current)
            elif kind == "E":
                run.ended.add(int(num))
                current = None
            else:
                run.page_owner.append(current)
            continue
        if line.startswith("! "):
            message = line[2:].strip()
            context = next((l for l in lines[n + 1:n + 8] if l.startswith("l.")), "")
            if context:
                message += " (" + context[:120] + ")"
            if current is not None:
                run.errors.setdefault(current, message)
            elif not started:
                run.preamble_error = run.preamble_error or message
            continue
        if current is not None:
            for pattern, reason in _WARNINGS:
                if pattern.match(line):
                    run.warnings.setdefault(current, reason)
    run.current = current
    return run


def _call(command: list[str], cwd: Path, timeout: float, env: dict | None = None, stdout=None) -> bool:
    """Run a tool without input; True when it had to be killed after ``timeout``.

    A blocking wait with a kill timer, not ``subprocess.run(timeout=...)``: that one polls
    with sleeps of up to 50 ms, a quarter of a typical pdflatex run.
    """
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=stdout if stdout is not None else subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        process.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        process.wait()
    finally:
        timer.cancel()
    return killed.is_set()


def _run_pdflatex(tex: str, folder: Path, timeout: float) -> _Run:
    src = folder / "batch.tex"
    src.write_text(tex, encoding="utf-8")
    pdf = folder / "batch.pdf"
    log = folder / "batch.log"
    pdf.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    terminal = folder / "batch.out"
    # The terminal output, line-buffered by stdbuf, shows which formula looped forever when
    # a run has to be killed (the log file is block-buffered and would not).
    command = ["pdflatex", "-interaction=nonstopmode", "-no-shell-escape", src.name]
    if _STDBUF:
        command = [_STDBUF, "-oL", *command]
    try:
        with open(terminal, "wb") as out:
            timed_out = _call(command, folder, timeout, env={**os.environ, **_ENV}, stdout=out)
    except FileNotFoundError as exc:
        raise TexNotFoundError(f"pdflatex is not installed; install TeX Live with: sudo {INSTALL_COMMAND}") from exc
    source = terminal if timed_out else log
    text = source.read_text(encoding="latin-1", errors="replace") if source.exists() else ""
    run = _parse_log(text)
    run.timed_out = timed_out
    run.pdf = pdf if pdf.exists() and not timed_out else None
    return run


def _rasterize(pdf: Path, first: int, last: int, dpi: int, folder: Path, timeout: float) -> list[np.ndarray] | None:
    """Pages first..last (1-based, inclusive) of the PDF as uint8 gray arrays, in one
    pdftoppm call; None when pdftoppm fails."""
    prefix = folder / "page"
    for old in folder.glob("page-*.pgm"):
        old.unlink()
    try:
        if _call(["pdftoppm", "-gray", "-r", str(dpi), "-f", str(first), "-l", str(last), pdf.name, prefix.name],
                 folder, timeout):
            return None
    except FileNotFoundError as exc:
        raise TexNotFoundError(f"pdftoppm is not installed; install poppler with: sudo {INSTALL_COMMAND}") from exc
    files = sorted(folder.glob("page-*.pgm"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    if len(files) != last - first + 1:
        return None
    out = []
    for f in files:
        with Image.open(f) as im:
            out.append(np.asarray(im.convert("L")))
        f.unlink()
    return out


# ---------------------------------------------------------------- the batch driver


def render_tex(formulas: list[str], font: str = "cm", style: str | Sequence[str] = "display",
               dpi: int | Sequence[int] = 200, workdir: str | Path | None = None,
               timeout: float | None = None) -> list[RenderResult | Skip]:
    """Render each formula with pdflatex; one result per formula, in order.

    ``style`` and ``dpi`` are one value for all formulas or one per formula (a batch may mix
    them: the style is per source line, and pages are rasterized in one pdftoppm call per
    resolution).  ``workdir`` is a scratch folder (a private subfolder is made and removed);
    ``timeout`` limits each pdflatex run (default: 20 s plus 0.2 s per formula).
    """
    if font not in FONTS:
        raise ValueError(f"unknown TeX font setup {font!r}; choose one of {', '.join(FONTS)}")
    styles, dpis = per_formula(formulas, style, dpi)
    if any(d < 20 or d > 2400 for d in dpis):
        raise ValueError("dpi must be between 20 and 2400")
    check_tex()
    results: list[RenderResult | Skip | None] = [None] * len(formulas)
    todo = []
    for i, latex in enumerate(formulas):
        if not latex.strip():
            results[i] = Skip(latex, "empty", "the formula is blank")
        else:
            todo.append(i)
    # formulas of one resolution next to each other: one contiguous page range per pdftoppm call
    todo.sort(key=lambda i: dpis[i])
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="tex-", dir=workdir))
    try:
        sources = {i: tex_source(formulas[i]) for i in todo}
        _Batch(formulas, sources, font, styles, dpis, folder, timeout, results).solve(todo)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


@dataclass
class _Batch:
    formulas: list[str]
    sources: dict[int, str]
    font: str
    styles: list[str]
    dpis: list[int]
    folder: Path
    timeout: float | None
    results: list

    def skip(self, i: int, reason: str, detail: str = "") -> None:
        self.results[i] = Skip(self.formulas[i], reason, detail)

    def solve(self, pending: list[int]) -> None:
        """Typeset ``pending`` until every formula is rendered or skipped."""
        stack = [pending]
        while stack:
            group = stack.pop()
            if group:
                stack.extend(reversed(self._attempt(group)))

    def _line(self, k: int, i: int) -> str:
        opening, closing = STYLES[self.styles[i]]
        return _LINE.format(i=k, open=opening, src=self.sources[i], close=closing)

    def _attempt(self, group: list[int]) -> list[list[int]]:
        """One pdflatex run over ``group``; returns the groups still to be typeset."""
        body = "".join(self._line(k, i) for k, i in enumerate(group))
        tex = _PREAMBLE.format(font=FONTS[self.font]) + body + "\\end{document}\n"
        timeout = self.timeout if self.timeout is not None else 20.0 + 0.2 * len(group)
        run = _run_pdflatex(tex, self.folder, timeout)

        if run.preamble_error:
            for i in group:
                self.skip(i, "preamble_error", f"font setup {self.font!r}: {run.preamble_error}")
            return []
        if run.timed_out:
            if run.current is not None:
                self.skip(group[run.current], "timeout", f"pdflatex ran longer than {timeout:.0f} s")
                return [group[:run.current] + group[run.current + 1:]]
            return self._bisect(group, "timeout", f"pdflatex ran longer than {timeout:.0f} s")
        if run.current is not None and run.current not in run.errors:
            # the log stops inside a formula without an error message: TeX died on it
            run.errors[run.current] = "pdflatex stopped while typesetting this formula"

        for k, message in run.errors.items():
            self.skip(group[k], "compile_error", message)
        # Only pages made before TeX met its first error are trusted: after an error TeX
        # recovers by guessing, and a guess must never reach a label.
        first_error = min(run.errors, default=len(group))
        for k in range(first_error):
            if k in run.warnings:
                self.skip(group[k], run.warnings[k], "pdflatex warned while typesetting this formula")
        pages = Counter(run.page_owner)
        trusted = [k for k in range(first_error) if k in run.ended and k not in run.warnings and pages[k] == 1]
        progress = bool(run.errors) or any(k in run.warnings for k in range(first_error))
        if trusted and run.pdf is not None:
            progress = self._collect(group, run, trusted) or progress
        leftover = [i for i in group if self.results[i] is None]
        if not leftover:
            return []
        if progress:
            return [leftover]
        # nothing failed by name and nothing usable came out: split to find the culprit
        return self._bisect(leftover, "render_failed", "pdflatex made no usable page for this formula")

    def _bisect(self, group: list[int], reason: str, detail: str) -> list[list[int]]:
        if len(group) == 1:
            self.skip(group[0], reason, detail)
            return []
        half = len(group) // 2
        return [group[:half], group[half:]]

    def _collect(self, group: list[int], run: _Run, trusted: list[int]) -> bool:
        """Rasterize the trusted pages (one pdftoppm call per resolution) and keep them."""
        page_of = {owner: p for p, owner in enumerate(run.page_owner) if owner is not None}
        by_dpi: dict[int, list[int]] = {}
        for k in trusted:
            by_dpi.setdefault(self.dpis[group[k]], []).append(k)
        done = False
        for dpi, ks in by_dpi.items():
            first, last = min(page_of[k] for k in ks), max(page_of[k] for k in ks)
            pages = _rasterize(run.pdf, first + 1, last + 1, dpi, self.folder, 30.0 + 0.5 * (last - first + 1))
            if pages is None:
                continue  # left unresolved: typeset again
            done = True
            for k in ks:
                i = group[k]
                cropped = crop_to_ink(pages[page_of[k] - first])
                if cropped is None:
                    self.skip(i, "empty", "the rendered page has no ink")
                elif cropped.size > MAX_PIXELS:
                    self.skip(i, "too_large", f"{cropped.shape[1]}x{cropped.shape[0]} pixels")
                else:
                    self.results[i] = RenderResult(self.formulas[i], to_image(cropped), self.font,
                                                   self.styles[i], dpi, "tex")
        return done
