"""Scores computed by hand on tiny examples, and `im2latex evaluate` on a known prediction file."""

import argparse
import json
import math

import pytest

from model import evaluate
from model.metrics import edit_distance, score


def test_bleu_and_edit_by_hand():
    # "abcdef" vs "abcdeg": 1-4-gram precisions 5/6, 4/5, 3/4, 2/3; "xyzw" exact: 4/4, 3/3, 2/2, 1/1.
    s = score(["abcdef", "xyzw"], ["abcdeg", "xyzw"])
    expected_bleu = (9 / 10 * 7 / 8 * 5 / 6 * 3 / 4) ** 0.25
    assert s.bleu4 == pytest.approx(expected_bleu, abs=1e-9)
    assert s.edit_similarity == pytest.approx(1 - (1 / 6 + 0) / 2)
    assert s.exact_match == 0.5


def test_brevity_penalty_by_hand():
    # hypothesis "abcd" for reference "abcdef": all n-grams match, BP = exp(1 - 6/4)
    s = score(["abcdef"], ["abcd"])
    assert s.bleu4 == pytest.approx(math.exp(1 - 6 / 4), abs=1e-9)
    assert edit_distance(list("abcdef"), list("abcd")) == pytest.approx(2 / 6)


def test_normalization_before_scoring():
    s = score([r"x^2+\frac12"], [r"x^{2}+\frac{1}{2}"])
    assert s.exact_match == 1.0 and s.bleu4 == pytest.approx(1.0)


def test_evaluate_scores_a_prediction_file(tmp_path, capsys):
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"image": "a.png", "latex": "abcdef", "font": "cm"},
        {"image": "b.png", "latex": "xyzw", "font": "times"},
    ]))
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(r) for r in [
        {"image": str(tmp_path / "a.png"), "latex": "abcdeg", "confidence": 0.5, "seconds": 0.1},
        {"image": "b.png", "latex": "xyzw", "confidence": 0.9, "seconds": 0.1},
    ]))
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    out = tmp_path / "report.json"
    args = parser.parse_args(["--folder", str(tmp_path), "--predictions", str(preds), "--out", str(out)])
    assert evaluate.run(args) == 0
    rep = json.loads(out.read_text())
    assert rep["overall"]["exact_match"] == 0.5
    assert rep["overall"]["bleu4"] == pytest.approx((9 / 10 * 7 / 8 * 5 / 6 * 3 / 4) ** 0.25)
    assert rep["by_font"]["times"]["exact_match"] == 1.0
    assert rep["by_font"]["cm"]["edit_similarity"] == pytest.approx(5 / 6)
    assert "| **all** | 2 |" in capsys.readouterr().out
    assert (tmp_path / "report.md").exists()


@pytest.mark.parametrize("batch", [1, 3])
def test_evaluate_runs_the_model_on_a_folder(tiny_model_dir, tmp_path, batch):
    import shutil

    rows = []
    for image, latex in zip(tiny_model_dir.images, tiny_model_dir.formulas):
        shutil.copy(image, tmp_path / image.name)
        rows.append({"image": image.name, "latex": latex, "font": "mathtext"})
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    out = tmp_path / "report.json"
    args = parser.parse_args(["--folder", str(tmp_path), "--model", str(tiny_model_dir.bundle), "--device", "cpu",
                              "--batch", str(batch), "--out", str(out)])
    assert evaluate.run(args) == 0
    rep = json.loads(out.read_text())
    assert rep["overall"]["exact_match"] == 1.0 and rep["overall"]["n"] == len(rows)
    assert rep["overall"]["seconds_p50"] > 0


def test_saved_predictions_score_the_same_when_read_back(tiny_model_dir, tmp_path):
    import shutil

    rows = []
    for image, latex in zip(tiny_model_dir.images, tiny_model_dir.formulas):
        shutil.copy(image, tmp_path / image.name)
        rows.append({"image": image.name, "latex": latex, "font": "mathtext"})
    rows[0]["latex"] = "x"  # one wrong label, so the scores are not trivially perfect
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    saved, first, second = tmp_path / "readings.jsonl", tmp_path / "first.json", tmp_path / "second.json"
    assert evaluate.run(parser.parse_args([
        "--folder", str(tmp_path), "--model", str(tiny_model_dir.bundle), "--device", "cpu", "--batch", "2",
        "--out", str(first), "--save-predictions", str(saved)])) == 0
    written = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [w["image"] for w in written] == [r["image"] for r in rows]
    assert all(0.0 < w["confidence"] <= 1.0 and w["latex"] for w in written)
    assert evaluate.run(parser.parse_args(["--folder", str(tmp_path), "--predictions", str(saved),
                                           "--out", str(second)])) == 0
    a, b = json.loads(first.read_text())["overall"], json.loads(second.read_text())["overall"]
    assert a["exact_match"] == b["exact_match"] == pytest.approx((len(rows) - 1) / len(rows))
    assert a["bleu4"] == pytest.approx(b["bleu4"])


def test_a_batch_gets_the_time_each_of_its_snips_would_get_alone(tiny_model_dir, monkeypatch):
    """The app bounds one snip's reading (Recognizer.time_budget); batched evaluation on a busy
    machine must not cut readings a lone snip would have finished."""
    from model.inference import DEFAULT_TIME_BUDGET, Recognizer

    budgets = []
    original = Recognizer.recognize_batch

    def spy(self, images, beam=1, *, time_budget=None, prepared=False):
        budgets.append((len(images), time_budget))
        return original(self, images, beam, time_budget=time_budget, prepared=prepared)

    monkeypatch.setattr(Recognizer, "recognize_batch", spy)
    samples = [evaluate.Sample(str(p), f) for p, f in zip(tiny_model_dir.images, tiny_model_dir.formulas)]
    predictions, _, _ = evaluate.recognize_all(samples, str(tiny_model_dir.bundle), "cpu", 1, None, batch=3)
    assert predictions == tiny_model_dir.formulas
    assert budgets and all(budget == pytest.approx(n * DEFAULT_TIME_BUDGET) for n, budget in budgets)


def test_reports_score_each_kind_of_notation_apart():
    """A formula counts in every kind it holds, so a weak kind (matrices) shows in the report."""
    from model.evaluate import Sample, markdown_table, report
    from model.metrics import structures, tokens_of

    assert structures(tokens_of(r"\left(\begin{array}{cc}\frac{1}{2}&0\\0&1\end{array}\right)")) == [
        "matrix / array", "fraction"]
    assert structures(tokens_of(r"f(x)=\begin{cases}1&\text{if }x>0\\0&x\le 0\end{cases}")) == [
        "multi-line (aligned, cases)", "text phrases"]
    assert structures(tokens_of(r"\sum_{i}\mathbb{Z}_{i}")) == ["big operator (sum, integral)",
                                                                "styled letters (cal, bb, frak, bold)"]
    assert structures(tokens_of(r"\text{kg}")) == []  # a word in \text is \mathrm, no text run
    assert structures(tokens_of(r"\textbf{two words}+\iiint_{V}\pmb{x}")) == [
        "text phrases", "big operator (sum, integral)", "styled letters (cal, bb, frak, bold)"]
    assert structures(tokens_of("x+y")) == []

    samples = [Sample("a", r"\begin{pmatrix}a\\b\end{pmatrix}"), Sample("b", r"\begin{bmatrix}1&2\end{bmatrix}"),
               Sample("c", r"\frac{a}{b}")]
    rep = report(samples, [r"\begin{pmatrix}a\\b\end{pmatrix}", r"\begin{bmatrix}1&3\end{bmatrix}", r"\frac{a}{b}"],
                 [0.1, 0.1, 0.1])
    assert rep["by_structure"]["matrix / array"]["n"] == 2
    assert rep["by_structure"]["matrix / array"]["exact_match"] == 0.5
    assert rep["by_structure"]["fraction"]["exact_match"] == 1.0
    assert "| structure: matrix / array | 2 |" in markdown_table(rep)
