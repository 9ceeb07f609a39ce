"""Scores on canonical tokens: BLEU-4, edit distance, exact match.

Both sides are normalized with the project's tokenizer first, so ``x^2`` and ``x^{2}`` count as the
same answer.  BLEU is corpus-level BLEU-4 (as in the im2latex-100k papers); edit similarity is
``1 - mean(token edit distance / max(len(ref), len(hyp)))``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
from rapidfuzz.distance import Levenshtein

from .tokenizer import LatexSyntaxError, normalize


def tokens_of(latex: str) -> list[str]:
    """Canonical tokens; a prediction that does not even parse is scored on its raw split."""
    try:
        return normalize(latex)
    except LatexSyntaxError:
        return latex.split()


@dataclass
class Scores:
    n: int
    bleu4: float
    edit_similarity: float
    exact_match: float

    def as_dict(self) -> dict:
        return asdict(self)


def bleu4(refs: list[list[str]], hyps: list[list[str]]) -> float:
    """Corpus BLEU-4 over token lists (smoothing only matters for tiny samples)."""
    if not refs:
        return 0.0
    return float(corpus_bleu([[r] for r in refs], hyps, smoothing_function=SmoothingFunction().method1))


def edit_distance(ref: list[str], hyp: list[str]) -> float:
    """Token edit distance divided by the longer length (0 = identical, 1 = nothing in common)."""
    longest = max(len(ref), len(hyp))
    return Levenshtein.distance(ref, hyp) / longest if longest else 0.0


def score_tokens(refs: list[list[str]], hyps: list[list[str]]) -> Scores:
    if len(refs) != len(hyps):
        raise ValueError("references and hypotheses differ in number")
    n = len(refs)
    if n == 0:
        return Scores(0, 0.0, 0.0, 0.0)
    edit = sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / n
    exact = sum(r == h for r, h in zip(refs, hyps)) / n
    return Scores(n, bleu4(refs, hyps), 1.0 - edit, exact)


def score(references: Iterable[str], predictions: Iterable[str]) -> Scores:
    """Scores of LaTeX predictions against LaTeX references, both normalized."""
    return score_tokens([tokens_of(r) for r in references], [tokens_of(p) for p in predictions])


LENGTH_BUCKETS = ("short (<10)", "medium (10-40)", "long (41-150)", "very long (>150)")


def length_bucket(n_tokens: int) -> str:
    """The length groups reported everywhere (short / medium / long formulas)."""
    short, medium, long, very_long = LENGTH_BUCKETS
    if n_tokens < 10:
        return short
    if n_tokens <= 40:
        return medium
    if n_tokens <= 150:
        return long
    return very_long


# Kinds of notation reported apart, so that a weak one shows up (matrices, multi-line blocks...):
# a formula counts in every kind whose tokens it holds (tokens of the normal form, where a word
# in \text is \mathrm: "text phrases" are runs with spaces or symbols).
_MATRIX = {f"\\begin{{{e}}}" for e in ("matrix", "pmatrix", "bmatrix", "vmatrix", "Vmatrix", "Bmatrix",
                                       "smallmatrix", "array")}
_MULTILINE = {f"\\begin{{{e}}}" for e in ("aligned", "alignedat", "gathered", "split", "cases")}
_TEXT = {"\\text", "\\textbf", "\\textit", "\\textsf", "\\texttt"}
_FRACTION = {"\\frac", "\\cfrac"}
_BIG_OPERATORS = {"\\sum", "\\prod", "\\coprod", "\\int", "\\iint", "\\iiint", "\\oint", "\\bigcup",
                  "\\bigcap", "\\bigoplus", "\\bigotimes", "\\bigodot", "\\bigvee", "\\bigwedge",
                  "\\bigsqcup", "\\biguplus"}
_STYLED = {"\\mathcal", "\\mathbb", "\\mathfrak", "\\mathscr", "\\mathbf", "\\boldsymbol", "\\pmb"}
STRUCTURES = {
    "matrix / array": _MATRIX,
    "multi-line (aligned, cases)": _MULTILINE,
    "text phrases": _TEXT,
    "fraction": _FRACTION,
    "big operator (sum, integral)": _BIG_OPERATORS,
    "styled letters (cal, bb, frak, bold)": _STYLED,
}


def structures(tokens: list[str]) -> list[str]:
    """The kinds of notation (keys of ``STRUCTURES``) a formula's canonical tokens hold."""
    held = set(tokens)
    return [name for name, marks in STRUCTURES.items() if not marks.isdisjoint(held)]
