"""Corpus build: sources, filters, deduplication, hash splits, vocabulary, harvest, CLI."""

import argparse
import importlib.metadata
import json
import textwrap
from pathlib import Path

import pytest

from model.data import corpus as corpus_module
from model.data.corpus import (build_corpus, canonical_key, canonical_tokens, hash_region,
                               split_hash)
from model.data.harvest import HarvestStats, formulas_in_rst, harvest, installed_files
from model.data.respell import respell
from model.data.shared_lists import (CorpusError, despace, im2latex100k_formulas,
                                     is_token_spaced, user_formulas)
from model.tokenizer import canonical, detokenize, normalize, tokenize
from model.vocab import Vocab

SCHOOL = [r"x^2", r"\frac{1}{2}", r"a+b=c", r"\sqrt{3}<k<2", r"y=\sin x", r"\tiny x",
          r"\text { A. } k>\frac{3}{2}"]
RESEARCH = [r"x^{2}", r"\mathbb{R}^n", r"\int_0^1 f(x)\,dx", r"{a \over b}", r"\frac{a}{b}",
            r"\rho\sb{D}", r"\P x", r"\tiny y", r"\frac{", r"x" + " + x" * 100] + [
            rf"\S {i}" for i in range(6)] + [rf"\sum_{{i=1}}^{{{n}}} a_i" for n in range(60)] + [
            rf"f_{{{n}}}(x) = {n} x^{{{n}}}" for n in range(200)]
EVAL_ONLY = r"\Xi _ { 9 9 7 } = \zeta \zeta \zeta"


@pytest.fixture()
def shared(tmp_path) -> Path:
    d = tmp_path / "corpus"
    (d / "im2latex100k").mkdir(parents=True)
    (d / "school_math.txt").write_text("\n".join(SCHOOL) + "\n")
    (d / "research_math.txt").write_text("\n".join(RESEARCH) + "\n")
    (d / "im2latex100k" / "test.formulas.norm.txt").write_text(EVAL_ONLY + "\n")
    (d / "im2latex100k" / "validate.formulas.norm.txt").write_text(r"\alpha _ { 1 }" + "\n")
    return d


def _read(out: Path) -> dict[str, list[dict]]:
    return {s: [json.loads(line) for line in (out / f"{s}.jsonl").read_text().splitlines()]
            for s in ("train", "val", "test")}


def _build(out, shared, **kw):
    kw.setdefault("use_harvest", False)
    kw.setdefault("min_command_lines", 5)
    return build_corpus(out, shared, kw.pop("extra_lists", ()), kw.pop("generated", 200),
                        kw.pop("seed", 1), kw.pop("vocab", None), **kw)


def test_build_writes_splits_vocab_and_summary(tmp_path, shared):
    out = tmp_path / "out"
    summary = _build(out, shared, val_fraction=0.2, test_fraction=0.2)
    rows = _read(out)
    assert {"latex", "source"} == set(rows["train"][0])
    vocab = Vocab.load(out / "vocab.json")
    assert len(vocab) == summary.vocab_size
    saved = json.loads((out / "summary.json").read_text())
    assert saved["totals"] == {s: len(rows[s]) for s in rows}
    assert saved["read"]["school"] == len(SCHOOL) and saved["read"]["generated"] == 200
    # every written formula is canonical and covered by the vocabulary
    for split_rows in rows.values():
        for row in split_rows:
            assert canonical(row["latex"]) == row["latex"]
            assert vocab.covers(normalize(row["latex"]))
    assert "Corpus written to" in summary.format()


def test_splits_never_overlap_and_follow_the_hash(tmp_path, shared):
    out = tmp_path / "out"
    _build(out, shared, val_fraction=0.25, test_fraction=0.25, generated=400)
    rows = _read(out)
    sets = {s: {r["latex"] for r in rows[s]} for s in rows}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]
    assert sets["val"] and sets["test"]
    for split, split_rows in rows.items():
        for row in split_rows:
            region = hash_region(split_hash(canonical_key(normalize(row["latex"]))), 0.25, 0.25)
            assert region == split, row
    # generated formulas only train
    assert all(r["source"] != "generated" for r in rows["val"] + rows["test"])
    assert any(r["source"] == "generated" for r in rows["train"])


def test_split_cap_keeps_excess_out_of_training(tmp_path, shared):
    out = tmp_path / "out"
    summary = _build(out, shared, val_fraction=0.3, test_fraction=0.3, split_cap=3, generated=0)
    rows = _read(out)
    assert len(rows["val"]) == 3 and len(rows["test"]) == 3
    assert summary.held_out_over_cap > 0
    for row in rows["train"]:
        assert hash_region(split_hash(canonical_key(normalize(row["latex"]))), 0.3, 0.3) == "train"


def test_held_out_formulas_stay_held_out_when_sources_grow(tmp_path, shared):
    first, second = tmp_path / "a", tmp_path / "b"
    _build(first, shared, val_fraction=0.2, test_fraction=0.2)
    extra = tmp_path / "more.txt"
    extra.write_text("\n".join(rf"g_{{{n}}} = {n}" for n in range(100)) + "\n")
    _build(second, shared, val_fraction=0.2, test_fraction=0.2, extra_lists=[extra], seed=9)
    before, after = _read(first), _read(second)
    held_out = {r["latex"] for r in before["val"] + before["test"]}
    assert held_out and not held_out & {r["latex"] for r in after["train"]}


def test_dedup_across_sources_and_spellings(tmp_path, shared):
    out = tmp_path / "out"
    summary = _build(out, shared, generated=0)
    everything = [r for rows in _read(out).values() for r in rows]
    squares = [r for r in everything if r["latex"] == "x^{2}"]
    assert squares == [{"latex": "x^{2}", "source": "school"}]  # first source wins
    fractions = [r for r in everything if r["latex"] == r"\frac{a}{b}"]
    assert len(fractions) == 1  # {a \over b} and \frac{a}{b} are one formula
    assert summary.duplicates["research"] >= 2
    assert any(r["latex"] == r"\rho_{D}" for r in everything)  # \sb respelled


def test_filters_count_their_reasons(tmp_path, shared):
    out = tmp_path / "out"
    summary = _build(out, shared, generated=0, max_tokens=160)
    everything = {r["latex"] for rows in _read(out).values() for r in rows}
    reasons = summary.skipped
    assert reasons["unsupported command"]["school"] == 1  # \tiny, however common
    assert reasons["rare command"]["research"] >= 1  # \P appears once
    assert any(k.startswith("syntax error") for k in reasons)  # \frac{
    assert "longer than 160 tokens" in reasons
    assert r"\S 0" in everything  # six lines: common enough
    assert not any(r"\P" in f for f in everything)
    assert EVAL_ONLY not in everything and not any(r"\Xi_{997}" in f for f in everything)


def test_given_vocabulary_is_reused_and_drops_uncovered(tmp_path, shared):
    out = tmp_path / "out"
    small = Vocab.build([list("xy^{}2=+abc")])
    path = tmp_path / "v.json"
    small.save(path)
    summary = _build(out, shared, vocab=path, generated=50)
    assert Vocab.load(out / "vocab.json").tokens == small.tokens
    assert summary.vocab_reused
    assert summary.skipped["token outside the vocabulary"]["research"] > 0
    everything = {r["latex"] for rows in _read(out).values() for r in rows}
    assert "x^{2}" in everything and r"\frac{1}{2}" not in everything


def test_built_vocabulary_has_generator_tokens_and_common_tokens(tmp_path, shared):
    from model.data.generator import generator_tokens

    _build(tmp_path / "out", shared, generated=0)
    vocab = Vocab.load(tmp_path / "out" / "vocab.json")
    assert generator_tokens() <= set(vocab.tokens)
    assert "\\S" in vocab  # in six shared formulas
    assert "\\P" not in vocab


def test_token_spaced_user_lists_are_read_right(tmp_path, shared):
    lst = tmp_path / "mylist.txt"
    lst.write_text("\\frac { 1 } { 3 } + \\mathrm { e f f }\n\\text { i f } ~ y\n"
                   "x \\mbox { f o r ~ a l l } z\n\\frac{2}{7}\n")
    assert [src for _, src in user_formulas(lst)] == ["user:mylist"] * 4
    out = tmp_path / "out"
    _build(out, shared, extra_lists=[lst], generated=0, val_fraction=0.0, test_fraction=0.0)
    rows = {r["latex"]: r["source"] for r in _read(out)["train"]}
    assert rows[r"\frac{1}{3}+\mathrm{eff}"] == "user:mylist"
    assert rows[r"\mathrm{if}y"] == "user:mylist"  # a word in \text is written as \mathrm
    assert rows[r"x\text{for all}z"] == "user:mylist"
    assert rows[r"\frac{2}{7}"] == "user:mylist"


def test_token_spacing_detection():
    assert is_token_spaced(r"\frac { 1 } { 2 }")
    assert not is_token_spaced(r"\frac{1}{2} + x")
    assert despace(r"\textrm { i s ~ o d d } ~ x") == r"\textrm {is odd} ~ x"


def test_im2latex100k_is_exposed_for_evaluation_only(shared):
    assert im2latex100k_formulas(shared, "test") == [despace(EVAL_ONLY)]
    assert len(im2latex100k_formulas(shared, "validate")) == 1
    with pytest.raises(CorpusError):
        im2latex100k_formulas(shared, "train")


def test_missing_inputs_give_clear_errors(tmp_path, shared):
    with pytest.raises(CorpusError, match="does not exist"):
        _build(tmp_path / "o", shared, extra_lists=[tmp_path / "nope.txt"])
    with pytest.raises(CorpusError, match="missing"):
        _build(tmp_path / "o", tmp_path / "empty")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CorpusError, match="not a vocabulary"):
        _build(tmp_path / "o", shared, vocab=tmp_path / "bad.json")


def test_respelling_of_old_forms():
    def canon(s):
        return detokenize(canonical_tokens(s))

    assert canon(r"{m\over V} + {n \choose k}") == r"\frac{m}{V}+\binom{n}{k}"
    assert canon(r"\left[x\over d\right]") == r"\left[\frac{x}{d}\right]"
    assert canon(r"\begin{cases}0&y=0\cr {y\over x}&\rm otherwise\end{cases}") == \
        r"\begin{cases}0 & y=0 \\ \frac{y}{x} & \mathrm{otherwise}\end{cases}"
    # an operator name is its upright letters (\operatorname{Hom} draws Hom, scripts beside)
    assert canon(r"\mathop{\mathrm{Hom}}\nolimits_B(N)") == r"\mathrm{Hom}_{B}(N)"
    assert canon(r"p \mathbin{\rightarrow} q \not= r") == r"p\to q\neq r"
    assert canon(r"M\sp{R}\sb{C}") == r"M_{C}^{R}"
    assert respell(tokenize("x")) == ["x"]


def test_cli_runs_and_reports(tmp_path, shared, capsys):
    parser = argparse.ArgumentParser()
    corpus_module.add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--out", str(out), "--corpus-dir", str(shared), "--generated", "30",
                              "--seed", "3", "--no-harvest"])
    assert corpus_module.run(args) == 0
    assert "Corpus written to" in capsys.readouterr().out
    assert (out / "train.jsonl").exists() and (out / "vocab.json").exists()
    bad = parser.parse_args(["--out", str(out), "--corpus-dir", str(shared),
                             "--extra-list", str(tmp_path / "missing.txt")])
    assert corpus_module.run(bad) == 1
    assert "missing.txt does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------- harvest

FAKE_MODULE = '''
"""Fake scientific module.

The density is

.. math::

    f(x) = \\\\frac{1}{\\\\sqrt{2\\\\pi}} e^{-x^2/2}

for real :math:`x`, and a careless :math:`\\frac{a}{b}`.
"""


def solve():
    r"""Solve a system.

    .. math::
        :label: system

        a &= b + c \\\\
          &= d

        E = m c^2

    The rows

    .. math::

        x = 1 \\\\
        y = \\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}

    Junk: :math:`%(name)s` and :math:`StickBreakingTransform(z_i)`.
    """
'''


def _fake_site(tmp_path) -> Path:
    site = tmp_path / "site"
    pkg = site / "fakepkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_MODULE)
    info = site / "fakepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
    (info / "RECORD").write_text("fakepkg/__init__.py,,\nfakepkg-1.0.dist-info/METADATA,,\n")
    return info


def test_harvest_finds_formulas_in_a_fake_package(tmp_path):
    dist = importlib.metadata.PathDistribution(_fake_site(tmp_path))
    files = list(installed_files([dist]))
    assert [f.name for f in files] == ["__init__.py"]
    stats = HarvestStats()
    found = [latex for latex, source in harvest(files, stats=stats)]
    assert stats.files_with_math == 1 and stats.formulas == len(found)
    assert r"f(x) = \frac{1}{\sqrt{2\pi}} e^{-x^2/2}" in found  # "\\" in a non-raw docstring
    assert "x" in found
    assert r"\frac{a}{b}" in found  # a careless "\f" still means \frac
    assert r"\begin{aligned} a &= b + c \\ &= d \end{aligned}" in found
    assert "E = m c^2" in found
    assert "x = 1" in found and r"y = \begin{pmatrix} 1 \\ 2 \end{pmatrix}" in found
    assert not any("%(" in f or "StickBreaking" in f for f in found)
    assert all(canonical(f) for f in found)


def test_harvest_respects_its_time_limit(tmp_path):
    dist = importlib.metadata.PathDistribution(_fake_site(tmp_path))
    stats = HarvestStats()
    assert list(harvest(installed_files([dist]), time_limit=-1, stats=stats)) == []
    assert stats.timed_out


def test_rst_blocks_in_plain_text():
    text = textwrap.dedent("""\
        Intro :math:`\\alpha_1` text.

        .. math:: \\sum_i x_i

        .. math::

           \\begin{align} a &= 1 \\\\ b &= 2 \\end{align}

        Outside again.
        """)
    assert formulas_in_rst(text) == ["\\sum_i x_i", "\\begin{aligned} a &= 1 \\\\ b &= 2 \\end{aligned}",
                                     "\\alpha_1"]


def test_vocabulary_does_not_depend_on_generated_sample_or_user_lists(tmp_path, shared):
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join([r"\heartsuit \spadesuit \Finv"] * 20) + "\n")
    _build(tmp_path / "a", shared, generated=30, seed=1)
    _build(tmp_path / "b", shared, generated=300, seed=8, extra_lists=[extra])
    assert Vocab.load(tmp_path / "a" / "vocab.json").tokens == \
        Vocab.load(tmp_path / "b" / "vocab.json").tokens


def test_corpus_dir_defaults_to_environment(monkeypatch, tmp_path):
    from model.data.shared_lists import REPO_ROOT, default_corpus_dir

    monkeypatch.setenv("IM2LATEX_CORPUS", str(tmp_path))
    assert default_corpus_dir() == tmp_path
    monkeypatch.delenv("IM2LATEX_CORPUS")
    assert default_corpus_dir() == REPO_ROOT.parent / "shared" / "corpus"
