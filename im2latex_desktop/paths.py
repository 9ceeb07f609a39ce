"""Where the app keeps its files: platformdirs folders, overridable by environment variables.

The overrides (``IM2LATEX_DATA_DIR``, ``IM2LATEX_CONFIG_DIR``, ``IM2LATEX_RUNTIME_DIR``) let tests
and portable installs keep everything in a folder of their choice.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path

import platformdirs

APP_NAME = "im2latex-desktop"


def data_dir() -> Path:
    """History and thumbnails live here."""
    return _dir_from_env("IM2LATEX_DATA_DIR") or Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """settings.json lives here."""
    return _dir_from_env("IM2LATEX_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def runtime_dir() -> Path:
    """A folder only this user can enter, for the single-instance socket.

    Created with mode 0700; a folder owned by someone else or open to others is refused and a
    private temporary folder is used instead, so no other user can talk to or squat our socket.
    """
    path = _dir_from_env("IM2LATEX_RUNTIME_DIR")
    if path is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            path = Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))
    if _make_private_dir(path):
        return path
    fallback = Path(tempfile.gettempdir()) / f"{APP_NAME}-{_user_tag()}"
    if _make_private_dir(fallback):
        return fallback
    return Path(tempfile.mkdtemp(prefix=f"{APP_NAME}-"))


def _dir_from_env(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _user_tag() -> str:
    if hasattr(os, "getuid"):
        return str(os.getuid())
    return os.environ.get("USERNAME", "user")


def _make_private_dir(path: Path) -> bool:
    """Create ``path`` (mode 0700) or accept it when it exists, is ours and is closed to others."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if sys.platform == "win32":
            return path.is_dir()
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        parent = path.parent.stat()
        if parent.st_uid not in (0, os.getuid()) and not parent.st_mode & stat.S_ISVTX:
            return False  # someone else could swap our folder out from under us
        if info.st_mode & 0o077:
            os.chmod(path, 0o700)
        return True
    except OSError:
        return False
