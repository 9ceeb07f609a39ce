"""Capture backends chosen by capability; crops come out of the frozen grab pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from im2latex_desktop.screenshot import CaptureError, capture_screens, is_wayland
from im2latex_desktop.screenshot.geometry import LogicalScreen, Monitor, PixelRect
from im2latex_desktop.screenshot.mss_grab import MssUnavailable, grab_monitors


def noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_mss_grab_is_matched_to_qt_screens_and_cropped_exactly():
    left, right = noise(400, 300, 1), noise(320, 200, 2)
    grabs = [(Monitor(400, 0, 320, 200, "R"), right), (Monitor(0, 0, 400, 300, "L"), left)]
    screens = [LogicalScreen("L", 0, 0, 400, 300, 1.0), LogicalScreen("R", 400, 0, 160, 100, 2.0)]
    capture = capture_screens(screens, "xcb", mss_grabber=lambda: grabs)
    assert capture.backend == "mss"
    assert [c.screen.name for c in capture.screens] == ["L", "R"]
    assert [c.scale for c in capture.screens] == [1.0, 2.0]
    crop = capture.screens[1].crop(PixelRect(13, 7, 101, 55))
    assert np.array_equal(np.asarray(crop), np.asarray(right)[7:62, 13:114])


def test_wayland_is_refused_with_paste_and_open_offered():
    screens = [LogicalScreen("s", 0, 0, 100, 100, 1.0)]
    with pytest.raises(CaptureError, match="Wayland.*paste.*open"):
        capture_screens(screens, "wayland", mss_grabber=lambda: [])
    env = {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}
    assert is_wayland("xcb", env)  # XWayland: mss would see only black
    assert not is_wayland("xcb", {"XDG_SESSION_TYPE": "x11"})
    with pytest.raises(CaptureError, match="Wayland"):
        capture_screens(screens, "xcb", mss_grabber=lambda: [], environ=env)


def test_qt_fallback_when_mss_cannot_reach_the_display():
    def broken():
        raise MssUnavailable("no display")

    picture = noise(200, 100, 3)
    screens = [LogicalScreen("s", 0, 0, 100, 50, 2.0)]
    capture = capture_screens(screens, "xcb", mss_grabber=broken, qt_grabber=lambda: [picture], environ={})
    assert capture.backend == "qt"
    assert capture.screens[0].scale == 2.0 and capture.screens[0].image is picture


def test_no_backend_works_gives_one_clear_error():
    def broken():
        raise MssUnavailable("XOpenDisplay failed")

    with pytest.raises(CaptureError, match="XOpenDisplay failed.*paste or open"):
        capture_screens([LogicalScreen("s", 0, 0, 10, 10, 1.0)], "xcb", mss_grabber=broken, qt_grabber=lambda: [None], environ={})
    with pytest.raises(CaptureError, match="without a display"):
        capture_screens([LogicalScreen("s", 0, 0, 10, 10, 1.0)], "offscreen")


def test_real_mss_without_a_display_raises_mss_unavailable(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(MssUnavailable):
        grab_monitors()
