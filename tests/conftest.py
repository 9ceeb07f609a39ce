"""Shared fixtures.  ``tiny_model_dir``: a really trained (tiny) model, made once per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so tests can `import tiny_model`

from tiny_model import TinyModel, load_tiny_info, train_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """TinyModel(bundle, formulas, images, steps, seconds): a bundle that reads its images back exactly."""
    out_dir = tmp_path_factory.mktemp("tiny_model")
    train_tiny_model(out_dir)
    return load_tiny_info(out_dir)
