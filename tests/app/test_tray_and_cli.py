"""Tray menu (where a tray exists), the command line, and ``python -m im2latex_desktop``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from im2latex_desktop.__main__ import parse_args
from im2latex_desktop.gui import tray

REPO = Path(__file__).resolve().parents[2]


def test_no_tray_no_icon(qtbot, monkeypatch):
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: False))
    parent = QWidget()
    qtbot.addWidget(parent)
    assert tray.make_tray(parent, print, print, print) is None


def test_tray_menu_snip_show_quit(qtbot, monkeypatch):
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    parent = QWidget()
    qtbot.addWidget(parent)
    calls = []
    icon = tray.make_tray(parent, lambda: calls.append("snip"), lambda: calls.append("show"), lambda: calls.append("quit"))
    assert icon is not None and not icon.icon().isNull()
    actions = icon.contextMenu().actions()
    assert [a.text() for a in actions] == ["Snip", "Show", "Quit"]
    for action in actions:
        action.trigger()
    icon.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)   # a plain click snips
    assert calls == ["snip", "show", "quit", "snip"]
    icon.hide()


def test_arguments():
    args = parse_args(["--snip", "--model", "/m", "--device", "cuda:1"])
    assert (args.snip, args.model, args.device) == (True, "/m", "cuda:1")
    args = parse_args([])
    assert (args.snip, args.model, args.device) == (False, "", "")


def test_python_dash_m_help_and_version():
    out = subprocess.run([sys.executable, "-m", "im2latex_desktop", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--snip" in out.stdout and "--model PATH" in out.stdout and "--device D" in out.stdout
    out = subprocess.run([sys.executable, "-m", "im2latex_desktop", "--version"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("im2latex-desktop ")
