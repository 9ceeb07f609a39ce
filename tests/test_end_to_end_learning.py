"""The whole pipeline learns: render -> preprocess -> train -> bundle -> Recognizer / CLI reads it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model.inference import Recognizer
from model.tokenizer import canonical

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_training_converged_quickly(tiny_model_dir):
    print(f"tiny model: {tiny_model_dir.steps} steps, {tiny_model_dir.seconds:.1f} s")
    assert tiny_model_dir.steps < 600  # stopped because every formula read back, not at the cap


def test_recognizer_reads_every_training_image_exactly(tiny_model_dir):
    recognizer = Recognizer(model_path=tiny_model_dir.bundle, device="cpu")
    for image, formula in zip(tiny_model_dir.images, tiny_model_dir.formulas):
        result = recognizer.recognize(image)
        assert canonical(result.latex) == canonical(formula), image
        assert result.latex == formula


def test_predict_command_reads_every_image(tiny_model_dir):
    env = {**os.environ, "IM2LATEX_MODEL": str(tiny_model_dir.bundle)}
    images = [str(p) for p in tiny_model_dir.images]
    proc = subprocess.run([sys.executable, "-m", "model.cli", "predict", "--json", "--device", "cpu",
                           "--threads", "1", *images],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [row["image"] for row in rows] == images
    assert [row["latex"] for row in rows] == tiny_model_dir.formulas
    assert all(0.5 < row["confidence"] <= 1.0 and row["seconds"] > 0 for row in rows)
