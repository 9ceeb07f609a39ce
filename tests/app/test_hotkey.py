"""Global hotkey: key translation, and clear reasons where it cannot work."""

from __future__ import annotations

import sys

import pytest

from im2latex_desktop.hotkey import PYNPUT_HINT, WAYLAND_HINT, GlobalHotkey, hotkey_support
from im2latex_desktop.hotkey.keys import HotkeyError, to_pynput


@pytest.mark.parametrize("qt, pynput", [
    ("Ctrl+Alt+M", "<ctrl>+<alt>+m"),
    ("Meta+Shift+F5", "<cmd>+<shift>+<f5>"),
    ("Ctrl+Alt+Space", "<ctrl>+<alt>+<space>"),
    ("Ctrl+PgDown", "<ctrl>+<page_down>"),
    ("Ctrl++", "<ctrl>++"),
    ("F9", "<f9>"),
    ("Print", "<print_screen>"),
])
def test_translation(qt, pynput):
    assert to_pynput(qt) == pynput


@pytest.mark.parametrize("bad, message", [
    ("", "empty"), ("M", "needs a modifier"), ("Ctrl+K, Ctrl+M", "several"), ("Hyper+M", "not a modifier"),
    ("Ctrl+Volume Up", "cannot be used"),
])
def test_bad_hotkeys_are_explained(bad, message):
    with pytest.raises(HotkeyError, match=message):
        to_pynput(bad)


def test_wayland_says_how_to_bind_the_command():
    support = hotkey_support("xcb", {"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"})
    assert not support.available and support.reason == WAYLAND_HINT
    assert "im2latex-desktop --snip" in WAYLAND_HINT
    assert not hotkey_support("wayland", {}).available


def test_missing_pynput_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynput", None)       # import pynput -> ImportError
    monkeypatch.setitem(sys.modules, "pynput.keyboard", None)
    support = hotkey_support("xcb", {"DISPLAY": ":0"})
    assert not support.available and support.reason == PYNPUT_HINT
    assert "pip install pynput" in PYNPUT_HINT


def test_no_display_and_offscreen(qapp):
    assert "DISPLAY" in hotkey_support("xcb", {}).reason
    hotkey = GlobalHotkey("offscreen")
    assert hotkey.start("Ctrl+Alt+M") == "Global hotkeys need a desktop session."
    assert not hotkey.active
