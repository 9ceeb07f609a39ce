"""Packaging: the wheel and sdist carry code and resources; the desktop entry installs per user.

The wheel test builds sdist + wheel (the wheel from the sdist, so a file the sdist forgets fails
it), installs the wheel into a fresh venv that borrows this environment's torch & co. through a
``.pth`` file, and runs both commands from a folder outside the source tree.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from im2latex_desktop import __version__
from im2latex_desktop import desktop_entry
from im2latex_desktop.desktop_entry import (DESKTOP_FILES, ICON_SIZES, METAINFO, DesktopEntryError,
                                            exec_argument, install_desktop_entry, remove_desktop_entry,
                                            rewrite_exec, xdg_data_home)
from model.inference import default_model_path
from model.resources import APP_ID, bundled_model_dir, icon_dir, resources_dir

REPO = Path(__file__).resolve().parent.parent
RESOURCES = REPO / "resources"
DESKTOP_DIR = RESOURCES / "desktop"
MODEL_FILES = ("model.pt", "config.json", "vocab.json", "meta.json")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IM2LATEX_", "PYTHON"))}
    env.update(extra)
    return env


def _read_desktop(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser


# --- package layout -------------------------------------------------------------------------

def test_pyproject_lists_every_code_package():
    from setuptools import find_packages

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set(find_packages(where=str(REPO), include=["model", "model.*", "im2latex_desktop", "im2latex_desktop.*"]))
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert config["package-dir"] == {"im2latex_resources": "resources"}
    assert "im2latex_resources" in listed


def test_resources_found_in_a_checkout(monkeypatch):
    monkeypatch.delenv("IM2LATEX_MODEL", raising=False)
    assert resources_dir() == RESOURCES
    assert icon_dir() == RESOURCES / "icons" and (icon_dir() / "im2latex.svg").is_file()
    assert bundled_model_dir() == default_model_path() == RESOURCES / "model"


def test_resources_found_in_a_frozen_bundle(monkeypatch, tmp_path):
    (tmp_path / "resources" / "model").mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    monkeypatch.delenv("IM2LATEX_MODEL", raising=False)
    assert resources_dir() == tmp_path / "resources"
    assert default_model_path() == tmp_path / "resources" / "model"


# --- icons, desktop files, metainfo --------------------------------------------------------------

def test_icon_pngs_are_the_svg_in_every_freedesktop_size(tmp_path):
    for size in ICON_SIZES:
        path = icon_dir() / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        with Image.open(path) as image:
            assert image.size == (size, size) and image.mode == "RGBA"
            assert image.getextrema()[3][0] == 0, "corners should be transparent"
    pytest.importorskip("PySide6.QtSvg")
    script = f"""
import sys; sys.path.insert(0, {str(REPO / 'packaging')!r})
import render_icons
from pathlib import Path
for s in {ICON_SIZES!r}:
    render_icons.render(render_icons.SOURCE, s, render_icons.png_path(s, Path({str(tmp_path)!r})))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60,
                   env=_clean_env(QT_QPA_PLATFORM="offscreen"))
    import numpy as np

    for size in ICON_SIZES:
        rel = Path(f"{size}x{size}") / "apps" / f"{APP_ID}.png"
        with Image.open(icon_dir() / "hicolor" / rel) as a, Image.open(tmp_path / rel) as b:
            diff = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean()
        assert diff < 2.0, f"{rel} is stale: rerun packaging/render_icons.py"


def test_desktop_files_describe_the_app_and_the_snip_launcher():
    main = _read_desktop(DESKTOP_DIR / f"{APP_ID}.desktop")
    entry = main["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"] == APP_ID and entry["Icon"] == APP_ID
    assert entry["StartupWMClass"] == APP_ID  # Qt's desktopFileName, so docks match the window
    assert entry["Actions"].rstrip(";") == "snip"
    assert main["Desktop Action snip"]["Exec"] == f"{APP_ID} --snip"
    snip = _read_desktop(DESKTOP_DIR / f"{APP_ID}-snip.desktop")["Desktop Entry"]
    assert snip["Exec"] == f"{APP_ID} --snip" and snip["Icon"] == APP_ID


def test_desktop_files_pass_desktop_file_validate():
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate is not installed (Debian package desktop-file-utils)")
    result = subprocess.run([tool, *(str(DESKTOP_DIR / n) for n in DESKTOP_FILES)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "error" not in result.stdout, result.stdout + result.stderr


def test_metainfo_matches_the_desktop_file_and_version():
    root = ET.parse(DESKTOP_DIR / METAINFO).getroot()
    assert root.get("type") == "desktop-application"
    assert METAINFO == f"{root.findtext('id')}.metainfo.xml"
    assert root.findtext("launchable") == f"{APP_ID}.desktop"
    assert __version__ in [r.get("version") for r in root.iter("release")]
    assert {b.text for b in root.iter("binary")} == {"im2latex", "im2latex-desktop"}


def test_metainfo_passes_appstreamcli_validate():
    tool = shutil.which("appstreamcli")
    if tool is None:
        pytest.skip("appstreamcli is not installed (Debian package appstream)")
    result = subprocess.run([tool, "validate", "--no-net", str(DESKTOP_DIR / METAINFO)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- installing the desktop entry ---------------------------------------------------------------

@pytest.mark.parametrize("arg, expected", [
    ("/usr/bin/im2latex-desktop", "/usr/bin/im2latex-desktop"),
    ("--snip", "--snip"),
    ("/home/a b/bin/app", '"/home/a b/bin/app"'),
    ("100%", "100%%"),
    ('say "hi" $x', r'"say \\"hi\\" \\$x"'),
    ("C:\\x", r'"C:\\\\x"'),
    ("", '""'),
])
def test_exec_arguments_are_quoted_as_the_spec_says(arg, expected):
    assert exec_argument(arg) == expected


def test_rewrite_exec_keeps_arguments_and_refuses_strangers():
    text = "[Desktop Entry]\nExec=im2latex-desktop\n\n[Desktop Action snip]\nExec=im2latex-desktop --snip\n"
    out = rewrite_exec(text, ["/opt/my app/im2latex-desktop"])
    assert out.splitlines()[1] == 'Exec="/opt/my app/im2latex-desktop"'
    assert out.splitlines()[4] == 'Exec="/opt/my app/im2latex-desktop" --snip'
    with pytest.raises(DesktopEntryError, match="Unexpected Exec"):
        rewrite_exec("Exec=rm -rf /\n", ["/x"])


def test_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert xdg_data_home() == tmp_path
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # the spec says: ignore relative paths
    assert xdg_data_home() == Path.home() / ".local" / "share"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert xdg_data_home() == Path.home() / ".local" / "share"


def _check_installed(data_home: Path, command: str) -> None:
    apps = data_home / "applications"
    main = _read_desktop(apps / f"{APP_ID}.desktop")
    assert main["Desktop Entry"]["Exec"] == command
    assert main["Desktop Action snip"]["Exec"] == f"{command} --snip"
    assert _read_desktop(apps / f"{APP_ID}-snip.desktop")["Desktop Entry"]["Exec"] == f"{command} --snip"
    assert (data_home / "metainfo" / METAINFO).read_bytes() == (DESKTOP_DIR / METAINFO).read_bytes()
    for size in ICON_SIZES:
        with Image.open(data_home / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png") as image:
            assert image.size == (size, size)
    svg = data_home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
    assert svg.read_bytes() == (icon_dir() / "im2latex.svg").read_bytes()
    tool = shutil.which("desktop-file-validate")
    if tool:
        result = subprocess.run([tool, *(str(apps / n) for n in DESKTOP_FILES)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_install_desktop_entry_command_for_a_user(tmp_path):
    data_home, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    env = _clean_env(XDG_DATA_HOME=str(data_home), HOME=str(home))
    run = [sys.executable, "-m", "im2latex_desktop"]
    result = subprocess.run([*run, "--install-desktop-entry"], env=env, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--snip" in result.stdout  # tells the user what to bind to a shortcut
    command = _read_desktop(data_home / "applications" / f"{APP_ID}.desktop")["Desktop Entry"]["Exec"]
    program = command.split()[0]
    assert Path(program).is_absolute() and os.access(program, os.X_OK)
    _check_installed(data_home, command)
    assert not any(home.iterdir()), "nothing may be written outside XDG_DATA_HOME"

    # The installed Exec line really starts this app.
    version = subprocess.run([*command.split(), "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"im2latex-desktop {__version__}"

    result = subprocess.run([*run, "--remove-desktop-entry"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not [p for p in data_home.rglob("*") if p.is_file()]


def test_install_tells_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(desktop_entry, "resource_path", lambda *parts: tmp_path.joinpath("nowhere", *parts))
    with pytest.raises(DesktopEntryError, match="lacks the desktop files"):
        install_desktop_entry(tmp_path / "data", ["/bin/true"])
    assert not (tmp_path / "data").exists()


def test_install_and_remove_in_process(tmp_path):
    written = install_desktop_entry(tmp_path, ["/opt/im2latex/im2latex-desktop"])
    assert len(written) == len(DESKTOP_FILES) + 1 + len(ICON_SIZES) + 1
    _check_installed(tmp_path, "/opt/im2latex/im2latex-desktop")
    install_desktop_entry(tmp_path, ["/opt/im2latex/im2latex-desktop"])  # again: replaces, no error
    assert sorted(remove_desktop_entry(tmp_path)) == sorted(written)
    assert remove_desktop_entry(tmp_path) == []


# --- wheel, sdist, installed commands ----------------------------------------------------------

def _bundled_model_present() -> bool:
    return all((RESOURCES / "model" / name).is_file() for name in MODEL_FILES)


@pytest.mark.slow
def test_wheel_installs_and_predicts_outside_the_source_tree(tmp_path, tiny_model_dir):
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package is not installed (pip install -e '.[test]')")
    dist = tmp_path / "dist"
    # sdist first, then the wheel from the unpacked sdist: a file the sdist lacks fails here.
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check",
                    "--outdir", str(dist), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("im2latex_desktop-*.whl"))
    assert next(dist.glob("im2latex_desktop-*.tar.gz"))

    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"im2latex_resources/{p.relative_to(RESOURCES).as_posix()}"
                for p in RESOURCES.rglob("*") if p.is_file() and p.suffix in {".svg", ".png", ".desktop", ".xml"}}
    expected |= {f"im2latex_resources/model/{n}" for n in (*MODEL_FILES, "MODEL_CARD.md")
                 if (RESOURCES / "model" / n).is_file()}
    assert expected <= names, sorted(expected - names)
    assert {"model/inference.py", "model/resources.py", "im2latex_desktop/desktop_entry.py"} <= names
    assert not any(n.startswith(("tests/", "resources/")) for n in names)

    # A venv of its own that borrows torch, PySide6 & co. from this environment (appended to
    # sys.path by a .pth file, so the wheel's own files come first).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    host = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_host_packages.pth").write_text("\n".join(sorted(host)) + "\n", encoding="utf-8")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                    "--no-compile", "--disable-pip-version-check", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=120)

    work = tmp_path / "elsewhere"
    work.mkdir()
    image = work / "formula.png"
    shutil.copy(tiny_model_dir.images[0], image)
    env = _clean_env(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"))
    bin_dir = venv / "bin"

    where = subprocess.run([str(python), "-c", "import model, im2latex_desktop, model.resources as r;"
                            "print(model.__file__); print(im2latex_desktop.__file__); print(r.resources_dir())"],
                           cwd=work, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where
    assert where[2] == str(site / "im2latex_resources")

    predict = subprocess.run([str(bin_dir / "im2latex"), "predict", "--json", "--model", str(tiny_model_dir.bundle),
                              "--threads", "1", "formula.png"],
                             cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert predict.returncode == 0, predict.stderr
    row = json.loads(predict.stdout)
    assert row["image"] == "formula.png" and row["latex"] == tiny_model_dir.formulas[0]

    default = subprocess.run([str(bin_dir / "im2latex"), "predict", "--json", "--threads", "1", "formula.png"],
                             cwd=work, env=env, capture_output=True, text=True, timeout=120)
    if _bundled_model_present():  # the wheel's own model answers with no --model at all
        assert default.returncode == 0, default.stderr
        row = json.loads(default.stdout)
        assert isinstance(row["latex"], str) and 0.0 <= row["confidence"] <= 1.0
    else:  # the clear "no model" message, naming where the wheel looks
        assert default.returncode == 2 and default.stdout == ""
        assert f"No model found at {site / 'im2latex_resources' / 'model'}" in default.stderr

    version = subprocess.run([str(bin_dir / "im2latex-desktop"), "--version"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"im2latex-desktop {__version__}"
    entry = subprocess.run([str(bin_dir / "im2latex-desktop"), "--install-desktop-entry"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
    assert entry.returncode == 0, entry.stderr
    _check_installed(tmp_path / "xdg", str(bin_dir / "im2latex-desktop"))
