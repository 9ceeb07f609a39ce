"""Freeze every screen at once and hand out crops in exact physical pixels.

Backends are chosen by capability at run time: mss (one grab of all monitors) first, Qt's
``QScreen.grabWindow`` where mss cannot reach the display.  On Wayland neither can see other
programs' windows, so capture is refused with a message that offers paste and open instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

from PIL import Image

from im2latex_desktop.screenshot.geometry import (
    LogicalScreen,
    Monitor,
    PixelRect,
    effective_scale,
    match_screens,
)
from model.errors import Im2LatexError

WAYLAND_MESSAGE = (
    "Screen capture is not possible on Wayland from this app: take a screenshot with your "
    "desktop's tool and paste it here (Ctrl+V), or open the image file."
)


class CaptureError(Im2LatexError):
    """The screen could not be captured (Wayland, no display, permission refused)."""


@dataclass
class ScreenCapture:
    """One frozen screen: its Qt geometry, its picture in physical pixels, and where it sits."""

    screen: LogicalScreen
    image: Image.Image
    scale: float                # physical pixels per logical pixel on this screen
    monitor: Monitor            # physical placement on the desktop

    def crop(self, rect: PixelRect) -> Image.Image:
        """The pixels of ``rect`` (screen-local physical pixels) exactly as they were frozen."""
        return self.image.crop(rect.box())


@dataclass
class Capture:
    screens: list[ScreenCapture]
    backend: str                # "mss" or "qt"


def is_wayland(platform_name: str, environ: dict[str, str] | None = None) -> bool:
    """True when the screen belongs to a Wayland compositor (native Qt platform or XWayland)."""
    env = os.environ if environ is None else environ
    if platform_name.startswith("wayland"):
        return True
    return env.get("XDG_SESSION_TYPE", "").lower() == "wayland" and bool(env.get("WAYLAND_DISPLAY"))


def capture_screens(
    screens: Sequence[LogicalScreen],
    platform_name: str,
    mss_grabber: Callable[[], list[tuple[Monitor, Image.Image]]] | None = None,
    qt_grabber: Callable[[], list[Image.Image | None]] | None = None,
    environ: dict[str, str] | None = None,
) -> Capture:
    """Grab all ``screens`` (Qt's list, in its order).  Raises :class:`CaptureError` with advice."""
    if is_wayland(platform_name, environ):
        raise CaptureError(WAYLAND_MESSAGE)
    if platform_name in ("offscreen", "minimal") and mss_grabber is None:
        raise CaptureError("There is no screen to capture (the app runs without a display); paste or open an image.")
    if mss_grabber is None:
        from im2latex_desktop.screenshot.mss_grab import grab_monitors as mss_grabber
    from im2latex_desktop.screenshot.mss_grab import MssUnavailable

    reason = ""
    try:
        grabs = mss_grabber()
    except MssUnavailable as error:
        grabs = []
        reason = str(error)
    if grabs:
        mapping = match_screens(list(screens), [m for m, _ in grabs])
        result = []
        for i, screen in enumerate(screens):
            if i not in mapping:
                continue
            monitor, picture = grabs[mapping[i]]
            scale = effective_scale(screen, picture.width, picture.height)
            result.append(ScreenCapture(screen, picture, scale, monitor))
        if result:
            return Capture(result, "mss")
        reason = "no monitor matched a screen"
    if qt_grabber is not None:
        pictures = qt_grabber()
        result = []
        for screen, picture in zip(screens, pictures):
            if picture is None:
                continue
            scale = effective_scale(screen, picture.width, picture.height)
            monitor = Monitor(round(screen.x * scale), round(screen.y * scale), picture.width, picture.height, screen.name)
            result.append(ScreenCapture(screen, picture, scale, monitor))
        if result:
            return Capture(result, "qt")
    raise CaptureError(f"The screen could not be captured ({reason or 'no picture came back'}); paste or open an image instead.")
