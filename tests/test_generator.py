"""The grammar generator: deterministic, covers the notation on purpose, valid for pdflatex."""

import re
import shutil
import subprocess
from collections import Counter

import pytest

from model.data.generator import generate, generator_tokens
from model.tokenizer import canonical, detokenize, normalize

SAMPLE = 8000


@pytest.fixture(scope="module")
def sample() -> list[str]:
    return list(generate(SAMPLE, seed=7))


@pytest.fixture(scope="module")
def sample_tokens(sample) -> list[list[str]]:
    return [normalize(f) for f in sample]


# every construct the training corpus must show the model, as canonical tokens
REQUIRED = (
    # letters, Greek upper and lower with variants
    "\\alpha \\beta \\gamma \\delta \\epsilon \\varepsilon \\zeta \\eta \\theta \\vartheta \\iota \\kappa "
    "\\lambda \\mu \\nu \\xi \\pi \\varpi \\rho \\varrho \\sigma \\varsigma \\tau \\upsilon \\phi \\varphi "
    "\\chi \\psi \\omega \\Gamma \\Delta \\Theta \\Lambda \\Xi \\Pi \\Sigma \\Upsilon \\Phi \\Psi \\Omega "
    # operators, relations, arrows, logic
    "+ - = < > \\pm \\mp \\times \\cdot \\div \\circ \\otimes \\oplus \\cup \\cap \\setminus \\wedge \\vee "
    "\\neq \\leq \\geq \\leqslant \\geqslant \\approx \\equiv \\sim \\simeq \\cong \\propto \\ll \\gg "
    "\\in \\notin \\subset \\subseteq \\supset \\supseteq \\mid \\perp \\parallel "
    "\\to \\leftarrow \\Rightarrow \\Leftarrow \\Leftrightarrow \\leftrightarrow \\Longrightarrow "
    "\\longrightarrow \\mapsto \\longmapsto \\hookrightarrow \\uparrow \\downarrow \\iff "
    "\\forall \\exists \\neg \\infty \\partial \\nabla \\hbar \\ell \\emptyset "
    # accents and fonts
    "\\hat \\bar \\vec \\tilde \\dot \\ddot \\check \\breve \\widehat \\widetilde "
    "\\mathbb \\mathcal \\mathrm \\mathbf \\mathfrak \\boldsymbol \\mathscr "  # \\operatorname{rank} is \\mathrm{rank}
    # fractions, roots, scripts, primes
    "\\frac \\sqrt ^ _ ' \\binom "
    # big operators and limits
    "\\sum \\prod \\int \\oint \\iint \\bigcup \\bigcap \\bigoplus \\lim \\max \\sup "
    # delimiters
    "\\left \\right ( ) [ ] \\{ \\} | \\| \\langle \\rangle \\lfloor \\rfloor \\lceil \\rceil "
    "\\big \\Big \\bigg \\Bigg "
    # over/under constructions, text
    "\\overline \\underline \\underbrace \\overbrace \\overset \\underset \\stackrel \\text "
    # environments
    "\\begin{matrix} \\begin{pmatrix} \\begin{bmatrix} \\begin{vmatrix} \\begin{Vmatrix} "
    "\\begin{cases} \\begin{aligned} \\begin{array} & \\\\ "
    # functions, dots, spacing
    "\\sin \\cos \\tan \\log \\ln \\exp \\det \\ldots \\cdots \\vdots \\ddots \\quad \\qquad"
).split()


def test_generator_is_deterministic_for_a_seed():
    assert list(generate(300, seed=3)) == list(generate(300, seed=3))
    assert list(generate(300, seed=3)) != list(generate(300, seed=4))
    assert list(generate(0, seed=3)) == []


def test_sample_contains_every_required_construct(sample_tokens):
    seen = Counter(t for tokens in sample_tokens for t in set(tokens))
    missing = [t for t in REQUIRED if seen[t] == 0]
    assert not missing, f"never generated: {missing}"
    # common constructs are common, not one-offs
    for token in ("\\frac", "\\sqrt", "\\left", "\\begin{pmatrix}", "\\text", "\\mathbb"):
        assert seen[token] >= 40, token


def test_structural_forms_appear(sample):
    text = "\n".join(sample)
    assert re.search(r"\\sqrt\[\w\]", text), "no \\sqrt[n]"
    assert re.search(r"\\frac\{[^\n]*\\frac", text), "no nested fraction"
    assert re.search(r"\\begin\{array\}\{[clr|]+\}", text), "no array column spec"
    assert re.search(r"\\sum_\{[ijkn]=[01]\}\^\{", text), "no sum with both limits"
    assert re.search(r"\\int_\{[^}]*\}\^\{", text), "no definite integral"
    assert re.search(r"\\lim_\{\w \\to ", text), "no limit"
    assert re.search(r"\\text\{[a-z]+ [a-z]+", text), "no text with words"
    assert re.search(r"\d+\.\d+", text), "no decimal numbers"
    assert re.search(r"\\left\. ", text), "no \\left."


def test_inventory_is_exact(sample_tokens):
    """generator_tokens() lists what generate() emits: no more (vocabulary bloat), no less (UNK)."""
    seen = {t for tokens in sample_tokens for t in tokens}
    inventory = generator_tokens()
    assert seen <= inventory, f"emitted but not in the inventory: {sorted(seen - inventory)}"
    assert inventory <= seen, f"in the inventory but never emitted: {sorted(inventory - seen)}"


def test_output_normalizes_and_round_trips(sample, sample_tokens):
    for latex, tokens in zip(sample[:4000], sample_tokens):
        assert tokens, latex
        assert normalize(detokenize(tokens)) == tokens, latex


def test_length_distribution_spans_short_to_long(sample_tokens):
    lengths = sorted(len(t) for t in sample_tokens)
    assert lengths[-1] <= 125
    assert sum(n <= 3 for n in lengths) > 0.05 * len(lengths)
    assert sum(n >= 80 for n in lengths) > 0.03 * len(lengths)
    assert 10 <= lengths[len(lengths) // 2] <= 50


def test_negative_count_is_refused():
    with pytest.raises(ValueError):
        list(generate(-1, seed=0))


@pytest.mark.tex
def test_sample_compiles_with_pdflatex(tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed")
    formulas = list(generate(40, seed=2024))
    # the raw output and the canonical form written to the corpus must both compile
    lines = [f"\\[ {f} \\]" for f in formulas] + [f"\\[ {canonical(f)} \\]" for f in formulas]
    header = ["\\documentclass{article}", "\\usepackage{amsmath,amssymb,bm,mathrsfs}",
              "\\begin{document}"]
    (tmp_path / "sample.tex").write_text("\n".join(header + lines + ["\\end{document}"]) + "\n")
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "sample.tex"],
                   cwd=tmp_path, capture_output=True, timeout=120)
    log = (tmp_path / "sample.log").read_text(errors="replace")
    errors = [line for line in log.splitlines() if line.startswith("!")]
    failing = ""
    if errors:
        line_numbers = re.findall(r"^l\.(\d+)", log, re.M)
        failing = "; ".join(lines[int(n) - len(header) - 1] for n in line_numbers[:3]
                            if 0 <= int(n) - len(header) - 1 < len(lines))
    assert not errors, f"{errors[:3]} in {failing}"
    assert (tmp_path / "sample.pdf").exists()
