"""``im2latex-desktop --install-desktop-entry``: menu entries, icons and AppStream data for this user.

Installs, under ``$XDG_DATA_HOME`` (default ``~/.local/share``) as the freedesktop specifications
place them:

- ``applications/im2latex-desktop.desktop``: the app, with a "Snip a Formula" action;
- ``applications/im2latex-desktop-snip.desktop``: a launcher that runs ``--snip``, for desktops
  (KDE) that bind global shortcuts to menu entries;
- ``icons/hicolor/<N>x<N>/apps/im2latex-desktop.png`` and ``.../scalable/apps/...svg``;
- ``metainfo/io.github.im2latex_desktop.metainfo.xml`` for software centres.

The ``Exec=`` lines are rewritten to the absolute command of this installation (the venv's
script, or the frozen binary), because a desktop session's PATH rarely includes a venv.  No Qt is
imported, so it works on a machine without a display.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from model.errors import Im2LatexError
from model.resources import APP_ID, resource_path

DESKTOP_FILES = (f"{APP_ID}.desktop", f"{APP_ID}-snip.desktop")
METAINFO = "io.github.im2latex_desktop.metainfo.xml"
ICON_SIZES = (16, 32, 48, 64, 128, 256)
SOURCE_SVG = "im2latex.svg"
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")  # characters that force quoting in an Exec argument


class DesktopEntryError(Im2LatexError):
    """The desktop entry could not be installed or removed."""


@dataclass
class DesktopFile:
    """One file to place: where it comes from and where it goes below the data folder."""
    source: Path
    target: Path  # relative to $XDG_DATA_HOME


def xdg_data_home() -> Path:
    """``$XDG_DATA_HOME`` when set to an absolute path (the spec ignores relative ones), else ~/.local/share."""
    value = os.environ.get("XDG_DATA_HOME", "").strip()
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / ".local" / "share"


def launch_command() -> list[str]:
    """The command that starts this installation of the app, as absolute as can be found."""
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).resolve())]
    script = Path(sys.executable).parent / APP_ID
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    found = shutil.which(APP_ID)
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "im2latex_desktop"]


def exec_argument(arg: str) -> str:
    """``arg`` quoted for an ``Exec=`` value (Desktop Entry spec: quoting, then string escapes)."""
    arg = arg.replace("%", "%%")  # a lone % would start a field code
    if not arg or any(c in _RESERVED for c in arg):
        arg = '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'
    return arg.replace("\\", "\\\\")


def exec_line(command: list[str], extra: list[str]) -> str:
    return " ".join(exec_argument(a) for a in [*command, *extra])


def rewrite_exec(text: str, command: list[str]) -> str:
    """Point every ``Exec=im2latex-desktop [args]`` line at ``command``, keeping its arguments."""
    lines = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "Exec":
            words = value.split()
            if not words or words[0] != APP_ID:
                raise DesktopEntryError(f"Unexpected Exec line in the bundled desktop file: {line!r}.")
            line = f"Exec={exec_line(command, words[1:])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def desktop_files() -> list[DesktopFile]:
    """Every file the entry consists of, checked to exist in this installation's resources."""
    files = [DesktopFile(resource_path("desktop", name), Path("applications") / name) for name in DESKTOP_FILES]
    files.append(DesktopFile(resource_path("desktop", METAINFO), Path("metainfo") / METAINFO))
    icons = Path("icons") / "hicolor"
    for size in ICON_SIZES:
        rel = Path(f"{size}x{size}") / "apps" / f"{APP_ID}.png"
        files.append(DesktopFile(resource_path("icons", "hicolor", *rel.parts), icons / rel))
    files.append(DesktopFile(resource_path("icons", SOURCE_SVG), icons / "scalable" / "apps" / f"{APP_ID}.svg"))
    missing = [str(f.source) for f in files if not f.source.is_file()]
    if missing:
        raise DesktopEntryError(f"This installation lacks the desktop files (first missing: {missing[0]}); reinstall it.")
    return files


def _check_platform() -> None:
    if sys.platform in ("win32", "darwin"):
        raise DesktopEntryError("--install-desktop-entry is for Linux desktops; on Windows and macOS see the "
                                "README section 'Install and desktop integration'.")


def install_desktop_entry(data_home: Path | None = None, command: list[str] | None = None) -> list[Path]:
    """Write the entries, icons and metainfo below ``data_home``; returns the written paths."""
    _check_platform()
    root = Path(data_home) if data_home is not None else xdg_data_home()
    command = command or launch_command()
    written = []
    try:
        for item in desktop_files():
            target = root / item.target
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.target.suffix == ".desktop":
                text = rewrite_exec(item.source.read_text(encoding="utf-8"), command)
                _write_atomic(target, text.encode("utf-8"))
            else:
                _write_atomic(target, item.source.read_bytes())
            written.append(target)
        hicolor = root / "icons" / "hicolor"
        os.utime(hicolor)  # icon theme caches compare the folder's time with their own
    except OSError as error:
        raise DesktopEntryError(f"Could not write the desktop entry below {root}: {error.strerror or error}.") from error
    return written


def remove_desktop_entry(data_home: Path | None = None) -> list[Path]:
    """Delete what ``install_desktop_entry`` wrote; returns the removed paths."""
    _check_platform()
    root = Path(data_home) if data_home is not None else xdg_data_home()
    targets = [Path("applications") / n for n in DESKTOP_FILES] + [Path("metainfo") / METAINFO]
    targets += [Path("icons", "hicolor", f"{s}x{s}", "apps", f"{APP_ID}.png") for s in ICON_SIZES]
    targets.append(Path("icons", "hicolor", "scalable", "apps", f"{APP_ID}.svg"))
    removed = []
    for rel in targets:
        path = root / rel
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise DesktopEntryError(f"Could not remove {path}: {error.strerror or error}.") from error
    return removed


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def run_install() -> int:
    """The ``--install-desktop-entry`` option: install, say where, and how to bind the shortcut."""
    try:
        written = install_desktop_entry()
    except DesktopEntryError as error:
        print(f"im2latex-desktop: {error}", file=sys.stderr)
        return 2
    apps = written[0].parent
    print(f"Installed the im2latex menu entries in {apps} and the icons below {written[-1].parents[2]}.")
    print("For a global snipping shortcut, bind this command in your desktop's keyboard settings:")
    print(f"    {shlex.join([*launch_command(), '--snip'])}")
    return 0


def run_remove() -> int:
    """The ``--remove-desktop-entry`` option."""
    try:
        removed = remove_desktop_entry()
    except DesktopEntryError as error:
        print(f"im2latex-desktop: {error}", file=sys.stderr)
        return 2
    print(f"Removed {len(removed)} im2latex desktop files from {xdg_data_home()}.")
    return 0
