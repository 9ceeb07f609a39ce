"""Where the bundled files (model, icons, desktop entry) are, however the app was installed.

The repository keeps them in ``resources/`` at its root.  That folder reaches users three ways,
and ``resources_dir()`` tries them in this order:

1. a PyInstaller bundle: ``<sys._MEIPASS>/resources`` (the spec copies the folder there);
2. a source checkout or an editable install: ``<repo>/resources`` next to ``model/``;
3. an installed wheel: the package ``im2latex_resources`` (``pyproject.toml`` maps ``resources/``
   onto that name, because a top-level package called ``resources`` would clash with others).

No Qt here: the command line and the app both use it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

RESOURCE_PACKAGE = "im2latex_resources"
APP_ID = "im2latex-desktop"  # desktop file name, icon name and Qt's desktopFileName


def _frozen_dir() -> Path | None:
    base = getattr(sys, "_MEIPASS", None)
    return Path(base) / "resources" if base else None


def _checkout_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "resources"


def _package_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec(RESOURCE_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _is_checkout(path: Path) -> bool:
    """A ``resources`` folder beside ``model/`` is ours only in a checkout (it has pyproject.toml)."""
    return path.is_dir() and (path.parent / "pyproject.toml").is_file()


def resources_dir() -> Path:
    """The folder holding ``model/``, ``icons/`` and ``desktop/`` for this installation.

    Falls back to the checkout location when nothing is found, so error messages name a real
    place to put a model.
    """
    frozen = _frozen_dir()
    if frozen is not None and frozen.is_dir():
        return frozen
    checkout = _checkout_dir()
    if _is_checkout(checkout):
        return checkout
    package = _package_dir()
    if package is not None and package.is_dir():
        return package
    return frozen if frozen is not None else checkout


def resource_path(*parts: str) -> Path:
    """``resources_dir() / parts...`` (the file may not exist; callers check)."""
    return resources_dir().joinpath(*parts)


def bundled_model_dir() -> Path:
    """The bundled model folder (``model.pt``, ``config.json``, ``vocab.json``, ``meta.json``)."""
    return resource_path("model")


def icon_dir() -> Path:
    """SVG icons used by the app, plus ``hicolor/<size>/apps/*.png`` for the desktop."""
    return resource_path("icons")
