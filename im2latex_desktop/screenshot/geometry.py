"""Pure geometry: Qt screens (logical pixels + device pixel ratio) against mss monitors (physical).

Qt reports each screen's geometry in logical pixels and its device pixel ratio (DPR); mss reports
monitors in physical pixels.  How the two relate differs by platform: with per-screen scaling
(Qt 6 on X11 and Windows) a screen keeps its native top-left corner and only its size is divided
by the DPR, so screens can overlap or leave gaps in logical space; with one global factor
(``QT_SCALE_FACTOR``) the whole desktop, corners included, is divided.  Nothing here assumes
either: screens are matched to monitors by output name first, then by size and position under
both hypotheses.  Inside one screen the mapping is always ``physical = logical_local * scale``.

Selections are half-open rectangles of physical pixels: a drag from physical point (10, 20) to
(30, 25) takes columns 10..29 and rows 20..24.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class LogicalScreen:
    """A Qt screen: ``QScreen.geometry()`` in logical pixels and ``devicePixelRatio()``."""

    name: str
    x: int
    y: int
    width: int
    height: int
    dpr: float = 1.0


@dataclass(frozen=True)
class Monitor:
    """An mss monitor in physical pixels; ``name`` is the output name (e.g. ``DUMMY0``) when known."""

    left: int
    top: int
    width: int
    height: int
    name: str = ""


@dataclass(frozen=True)
class PixelRect:
    """A half-open rectangle of physical pixels."""

    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    def box(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` as PIL's ``Image.crop`` wants it."""
        return (self.left, self.top, self.right, self.bottom)

    def translated(self, dx: int, dy: int) -> "PixelRect":
        return PixelRect(self.left + dx, self.top + dy, self.width, self.height)

    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0


def union(monitors: Sequence[Monitor]) -> Monitor:
    """The bounding box of all monitors (what mss calls monitor 0)."""
    left = min(m.left for m in monitors)
    top = min(m.top for m in monitors)
    right = max(m.left + m.width for m in monitors)
    bottom = max(m.top + m.height for m in monitors)
    return Monitor(left, top, right - left, bottom - top, "all")


def size_mismatch(screen: LogicalScreen, monitor: Monitor) -> float:
    """Physical pixels by which the screen's scaled size misses the monitor's size, beyond rounding.

    Qt rounds logical sizes (1024 px at DPR 1.5 is 683 logical px), so up to ``ceil(dpr)``
    pixels of difference per axis is exact agreement.
    """
    slack = math.ceil(screen.dpr)
    dw = max(0.0, abs(screen.width * screen.dpr - monitor.width) - slack)
    dh = max(0.0, abs(screen.height * screen.dpr - monitor.height) - slack)
    return dw + dh


def position_mismatch(screen: LogicalScreen, monitor: Monitor) -> float:
    """Distance between the monitor's corner and the screen's corner under the better hypothesis."""
    kept = abs(screen.x - monitor.left) + abs(screen.y - monitor.top)
    scaled = abs(screen.x * screen.dpr - monitor.left) + abs(screen.y * screen.dpr - monitor.top)
    return min(kept, scaled)


def match_cost(screen: LogicalScreen, monitor: Monitor) -> float:
    """Lower is a better match; a size disagreement weighs more than a position one."""
    return 4.0 * size_mismatch(screen, monitor) + position_mismatch(screen, monitor)


def match_screens(screens: Sequence[LogicalScreen], monitors: Sequence[Monitor]) -> dict[int, int]:
    """Map indices into ``screens`` to indices into ``monitors`` (each used at most once).

    Output names decide when both sides have them and they agree; the rest are assigned so the
    total :func:`match_cost` is smallest (exhaustively for up to 7 leftovers, greedily beyond).
    A screen with no monitor left over is absent from the result.
    """
    mapping: dict[int, int] = {}
    monitor_by_name: dict[str, list[int]] = {}
    for j, monitor in enumerate(monitors):
        if monitor.name:
            monitor_by_name.setdefault(monitor.name, []).append(j)
    screen_names = [s.name for s in screens]
    for i, screen in enumerate(screens):
        candidates = monitor_by_name.get(screen.name, [])
        if screen.name and len(candidates) == 1 and screen_names.count(screen.name) == 1:
            mapping[i] = candidates[0]

    free_screens = [i for i in range(len(screens)) if i not in mapping]
    free_monitors = [j for j in range(len(monitors)) if j not in mapping.values()]
    if not free_screens or not free_monitors:
        return mapping

    def cost(i: int, j: int) -> float:
        return match_cost(screens[i], monitors[j])

    if min(len(free_screens), len(free_monitors)) <= 7 and max(len(free_screens), len(free_monitors)) <= 8:
        best: tuple[float, list[tuple[int, int]]] | None = None
        if len(free_screens) <= len(free_monitors):
            for chosen in itertools.permutations(free_monitors, len(free_screens)):
                pairs = list(zip(free_screens, chosen))
                total = sum(cost(i, j) for i, j in pairs)
                if best is None or total < best[0]:
                    best = (total, pairs)
        else:
            for chosen in itertools.permutations(free_screens, len(free_monitors)):
                pairs = list(zip(chosen, free_monitors))
                total = sum(cost(i, j) for i, j in pairs)
                if best is None or total < best[0]:
                    best = (total, pairs)
        assert best is not None
        mapping.update(dict(best[1]))
        return mapping

    pairs = sorted((cost(i, j), i, j) for i in free_screens for j in free_monitors)
    used_s: set[int] = set()
    used_m: set[int] = set()
    for _, i, j in pairs:
        if i not in used_s and j not in used_m:
            mapping[i] = j
            used_s.add(i)
            used_m.add(j)
    return mapping


def effective_scale(screen: LogicalScreen, image_width: int, image_height: int) -> float:
    """Physical pixels per logical pixel for a screen whose grab is ``image_width`` wide.

    The screen's DPR when the grab agrees with it (within Qt's rounding); otherwise the measured
    ratio, so a platform that reports a wrong DPR, or monitors in points, still maps exactly.
    """
    if screen.width <= 0 or screen.height <= 0:
        return screen.dpr
    slack = math.ceil(screen.dpr) + 1
    if abs(screen.width * screen.dpr - image_width) <= slack and abs(screen.height * screen.dpr - image_height) <= slack:
        return screen.dpr
    return image_width / screen.width


def selection_rect(
    start: tuple[float, float],
    end: tuple[float, float],
    scale: float,
    bounds: tuple[int, int],
) -> PixelRect:
    """The physical pixels selected by a drag between two points in screen-local logical pixels.

    Corners are rounded to the nearest physical pixel edge, ordered, and clamped to the screen
    (``bounds`` = physical width, height), so dragging in any direction or past the edge works.
    """
    width, height = bounds

    def edge(value: float, limit: int) -> int:
        return min(max(int(math.floor(value * scale + 0.5)), 0), limit)

    x0, x1 = sorted((edge(start[0], width), edge(end[0], width)))
    y0, y1 = sorted((edge(start[1], height), edge(end[1], height)))
    return PixelRect(x0, y0, x1 - x0, y1 - y0)


def logical_rect(rect: PixelRect, scale: float) -> tuple[float, float, float, float]:
    """A physical rectangle back in screen-local logical pixels (for painting the selection)."""
    return (rect.left / scale, rect.top / scale, rect.width / scale, rect.height / scale)


def monitor_offset(monitor: Monitor, whole: Monitor) -> tuple[int, int]:
    """Where ``monitor`` starts inside a grab of ``whole`` (the union), in physical pixels."""
    return (monitor.left - whole.left, monitor.top - whole.top)


def logical_to_global_physical(
    screen: LogicalScreen, monitor: Monitor, x: float, y: float, scale: float | None = None
) -> tuple[float, float]:
    """A global logical point on ``screen`` as a global physical point on its ``monitor``."""
    s = screen.dpr if scale is None else scale
    return (monitor.left + (x - screen.x) * s, monitor.top + (y - screen.y) * s)
