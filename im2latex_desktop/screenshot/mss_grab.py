"""Grab every monitor at once with mss: one shot of the whole desktop, sliced per monitor."""

from __future__ import annotations

from PIL import Image

from im2latex_desktop.screenshot.geometry import Monitor, monitor_offset, union


class MssUnavailable(Exception):
    """mss is missing or cannot reach the display (no X server, Wayland without XWayland, ...)."""


def _to_pil(shot) -> Image.Image:
    return Image.frombytes("RGB", (shot.width, shot.height), shot.bgra, "raw", "BGRX")


def grab_monitors() -> list[tuple[Monitor, Image.Image]]:
    """Every monitor with its picture in physical pixels, all taken from one grab when possible.

    One grab of the union keeps all screens from the same instant; where the union picture does
    not come back at the union's size (macOS reports monitors in points), each monitor is
    grabbed on its own instead.
    """
    try:
        import mss
        from mss.exception import ScreenShotError
    except ImportError as error:
        raise MssUnavailable(f"mss is not installed ({error})") from error
    maker = getattr(mss, "MSS", None) or mss.mss
    try:
        with maker() as sct:
            raw = sct.monitors
            monitors = [
                Monitor(int(m["left"]), int(m["top"]), int(m["width"]), int(m["height"]), str(m.get("output", "")))
                for m in raw[1:]
            ]
            if not monitors:
                raise MssUnavailable("mss found no monitors")
            whole = union(monitors)
            shot = sct.grab({"left": whole.left, "top": whole.top, "width": whole.width, "height": whole.height})
            if (shot.width, shot.height) == (whole.width, whole.height):
                picture = _to_pil(shot)
                result = []
                for monitor in monitors:
                    dx, dy = monitor_offset(monitor, whole)
                    result.append((monitor, picture.crop((dx, dy, dx + monitor.width, dy + monitor.height))))
                return result
            return [(m, _to_pil(sct.grab(raw[k + 1]))) for k, m in enumerate(monitors)]
    except ScreenShotError as error:
        raise MssUnavailable(str(error)) from error
    except OSError as error:  # ctypes cannot load libX11/xcb, display vanished, ...
        raise MssUnavailable(str(error)) from error
