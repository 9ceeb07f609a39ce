"""Geometry mapping between Qt screens (logical + DPR) and mss monitors (physical), made-up layouts."""

from __future__ import annotations

import math
import random

import pytest

from im2latex_desktop.screenshot.geometry import (
    LogicalScreen,
    Monitor,
    PixelRect,
    effective_scale,
    logical_rect,
    logical_to_global_physical,
    match_screens,
    monitor_offset,
    selection_rect,
    union,
)


def qt_screen(name: str, monitor: Monitor, dpr: float, keep_origin: bool = True) -> LogicalScreen:
    """What Qt reports for ``monitor`` at ``dpr``: sizes rounded like Qt, origin kept or scaled."""
    x, y = (monitor.left, monitor.top) if keep_origin else (round(monitor.left / dpr), round(monitor.top / dpr))
    return LogicalScreen(name, x, y, round(monitor.width / dpr), round(monitor.height / dpr), dpr)


def drag(physical_start, physical_end, dpr):
    """Qt delivers pointer positions in logical pixels: physical / dpr, as floats."""
    return (physical_start[0] / dpr, physical_start[1] / dpr), (physical_end[0] / dpr, physical_end[1] / dpr)


@pytest.mark.parametrize("dpr", [1.0, 1.25, 1.5, 2.0])
def test_single_screen_selection_is_exact_in_physical_pixels(dpr):
    monitor = Monitor(0, 0, 2560, 1440, "")
    screen = qt_screen("eDP-1", monitor, dpr)
    assert match_screens([screen], [monitor]) == {0: 0}
    scale = effective_scale(screen, monitor.width, monitor.height)
    assert scale == dpr
    for start, end in [((101, 37), (250, 99)), ((1, 1), (2559, 1439)), ((333, 777), (334, 779))]:
        a, b = drag(start, end, dpr)
        rect = selection_rect(a, b, scale, (monitor.width, monitor.height))
        assert rect == PixelRect(start[0], start[1], end[0] - start[0], end[1] - start[1])
        # painting the selection back in logical pixels lands on the same physical edges
        lx, ly, lw, lh = logical_rect(rect, scale)
        assert round(lx * scale) == rect.left and round((lx + lw) * scale) == rect.right
        assert round(ly * scale) == rect.top and round((ly + lh) * scale) == rect.bottom


@pytest.mark.parametrize("dpr", [1.0, 1.25, 1.5, 2.0])
def test_selection_in_any_direction_and_past_the_edge(dpr):
    bounds = (1920, 1080)
    a, b = drag((500, 400), (100, 50), dpr)
    assert selection_rect(a, b, dpr, bounds) == PixelRect(100, 50, 400, 350)
    a, b = drag((1800, 1000), (2500, 1300), dpr)
    assert selection_rect(a, b, dpr, bounds) == PixelRect(1800, 1000, 120, 80)
    a, b = drag((-50, -10), (10, 10), dpr)
    assert selection_rect(a, b, dpr, bounds) == PixelRect(0, 0, 10, 10)


def test_qt_rounding_of_logical_sizes_still_matches():
    # 1024 px at 1.5 is 682.67 logical; Qt says 683.  Seen on the Xorg dummy driver.
    monitors = [Monitor(0, 0, 1024, 768, ""), Monitor(1024, 0, 800, 600, "")]
    screens = [LogicalScreen("A", 0, 0, 683, 512, 1.5), LogicalScreen("B", 1024, 0, 400, 300, 2.0)]
    assert match_screens(screens, monitors) == {0: 0, 1: 1}
    assert effective_scale(screens[0], 1024, 768) == 1.5
    # the last logical pixel column still maps inside the monitor (clamped)
    rect = selection_rect((600.0, 500.0), (683.0, 512.0), 1.5, (1024, 768))
    assert rect.right == 1024 and rect.bottom == 768


def test_names_decide_when_the_geometry_is_ambiguous():
    monitors = [Monitor(1920, 0, 1920, 1080, "HDMI-1"), Monitor(0, 0, 1920, 1080, "DP-1")]
    screens = [LogicalScreen("DP-1", 1920, 0, 1920, 1080, 1.0), LogicalScreen("HDMI-1", 0, 0, 1920, 1080, 1.0)]
    # by position DP-1 would pair with monitor 0; the output names say otherwise
    assert match_screens(screens, monitors) == {0: 1, 1: 0}


def test_negative_coordinates_per_screen_scaling_any_order():
    """Windows-style: a monitor left of and one above the primary, each with its own DPR."""
    primary = Monitor(0, 0, 2560, 1440, "")
    left = Monitor(-1920, 180, 1920, 1080, "")
    above = Monitor(0, -2160, 3840, 2160, "")
    monitors = [primary, left, above]
    screens = [qt_screen("primary", primary, 1.25), qt_screen("left", left, 1.0), qt_screen("above", above, 2.0)]
    rng = random.Random(3)
    for _ in range(5):
        order = list(range(3))
        rng.shuffle(order)
        shuffled = [monitors[i] for i in order]
        mapping = match_screens(screens, shuffled)
        assert [order[mapping[i]] for i in range(3)] == [0, 1, 2]

    # a click on the left monitor, in global logical coordinates, lands on the right physical pixel
    assert logical_to_global_physical(screens[1], left, -1000, 500) == (-1000, 500)
    assert logical_to_global_physical(screens[2], above, 100, -2160 + 50) == (200, -2160 + 100)
    # the union starts at the most negative corner; each monitor's slice of it is found exactly
    whole = union(monitors)
    assert (whole.left, whole.top, whole.width, whole.height) == (-1920, -2160, 1920 + 3840, 2160 + 1440)
    assert monitor_offset(left, whole) == (0, 2160 + 180)
    assert monitor_offset(primary, whole) == (1920, 2160)


def test_negative_coordinates_with_globally_scaled_origins():
    """QT_SCALE_FACTOR-style: the whole desktop divided, corners included."""
    right = Monitor(0, 0, 1920, 1080, "")
    left = Monitor(-2880, -200, 2880, 1620, "")
    screens = [qt_screen("left", left, 1.5, keep_origin=False), qt_screen("right", right, 1.5, keep_origin=False)]
    assert screens[0].x == -1920
    assert match_screens(screens, [right, left]) == {0: 1, 1: 0}
    a, b = drag((100, 100), (301, 203), 1.5)
    assert selection_rect(a, b, 1.5, (left.width, left.height)) == PixelRect(100, 100, 201, 103)


def test_more_screens_than_monitors_and_vice_versa():
    monitors = [Monitor(0, 0, 1920, 1080, "")]
    screens = [LogicalScreen("a", 1920, 0, 1280, 1024, 1.0), LogicalScreen("b", 0, 0, 1920, 1080, 1.0)]
    assert match_screens(screens, monitors) == {1: 0}
    monitors = [Monitor(0, 0, 1920, 1080, ""), Monitor(1920, 0, 1280, 1024, "")]
    assert match_screens([LogicalScreen("b", 1920, 0, 1280, 1024, 1.0)], monitors) == {0: 1}


def test_many_screens_use_the_greedy_match():
    monitors = [Monitor(i * 1000, 0, 1000 + i, 800, "") for i in range(10)]
    screens = [LogicalScreen(str(i), m.left, 0, m.width, m.height, 1.0) for i, m in enumerate(monitors)]
    assert match_screens(list(reversed(screens)), monitors) == {i: 9 - i for i in range(10)}


def test_effective_scale_trusts_the_grab_when_the_dpr_is_wrong():
    # macOS reports monitors in points; a Retina grab comes back twice as large
    screen = LogicalScreen("Built-in", 0, 0, 1440, 900, 1.0)
    assert effective_scale(screen, 2880, 1800) == 2.0
    assert math.isclose(effective_scale(LogicalScreen("x", 0, 0, 1000, 800, 1.0), 1250, 1000), 1.25)
