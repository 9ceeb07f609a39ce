"""End to end on real X screens, with the real recognizer and the tiny trained model.

Each case runs ``snip_driver.py`` in its own process (Qt's scaling variables only apply before
a QApplication exists): a formula image is shown at a known physical place, the app snips it
with real X pointer events from xdotool, and the report says whether the crop is exactly those
pixels, what the recognizer got and answered, what the window shows and what the clipboard holds.
Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("snip_driver.py")

pytestmark = [pytest.mark.x11, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _tools():
    for tool in ("xdotool", "xclip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def run_driver(server, tmp_path, tiny, artifacts_dir, tag, trigger, snips, **env) -> dict:
    runtime = Path(tempfile.mkdtemp(prefix="i2l-x-"))
    out = tmp_path / "report.json"
    environ = server.env(IM2LATEX_DATA_DIR=str(tmp_path / "data"), IM2LATEX_CONFIG_DIR=str(tmp_path / "config"),
                         IM2LATEX_RUNTIME_DIR=str(runtime / "run"), **env)
    command = [sys.executable, str(DRIVER), "--out", str(out), "--image", str(tiny.images[0]), "--model", str(tiny.bundle),
               "--trigger", trigger, "--artifacts", str(artifacts_dir), "--tag", tag]
    for snip in snips:
        command += ["--snip", snip]
    log = tmp_path / "driver.log"
    try:
        # output to a file, not a pipe: pyperclip's xclip keeps serving the clipboard (and
        # would keep a pipe open) after the driver exits
        with open(log, "w") as handle:
            process = subprocess.run(command, cwd=REPO, env=environ, stdout=handle, stderr=subprocess.STDOUT, timeout=170)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    assert out.exists(), log.read_text()[-3000:]
    report = json.loads(out.read_text())
    assert process.returncode == 0 and report["ok"], f"{report.get('error')}\n{log.read_text()[-3000:]}"
    return report


def check(report: dict, formula: str) -> None:
    assert report["torch_imported_before_show"] is False
    assert report["model_state"] == "ready", report["model_error"]
    for snip in report["snips"]:
        where = f"{snip['screen']} at DPR {snip['dpr']}"
        assert snip["target_shows_formula_exactly"], f"the test window is not 1:1 on {where}"
        assert snip["main_window_hidden_during_snip"], where
        assert snip["selection_while_dragging"] == [snip["expected_rect"][0], snip["expected_rect"][1],
                                                    snip["expected_rect"][0] + snip["expected_rect"][2],
                                                    snip["expected_rect"][1] + snip["expected_rect"][3]], where
        assert snip["crop_size"] == snip["expected_rect"][2:], where
        assert snip["crop_equals_reference"], f"the crop is not the screen's pixels on {where}"
        assert snip["crop_holds_formula_exactly"], where
        assert snip["recognizer_calls"] == 1, where
        assert snip["recognized"] == formula, where
        assert snip["shown_latex"] == formula, where
        assert snip["preview_drawn"], where
        assert snip["clipboard"] == formula and snip["clipboard_handler"] == "pyperclip", where
        assert snip["device_label"] == "Device: CPU" and snip["time_label"].startswith("Time: "), where
        assert "Recognized in" in snip["status"] and "Copied as LaTeX" in snip["status"], where


def test_snip_at_dpr_1_triggered_by_a_second_instance(xvfb, tmp_path, tiny_model_dir, artifacts_dir):
    report = run_driver(xvfb, tmp_path, tiny_model_dir, artifacts_dir, "dpr1", "cli", ["0:300:200"])
    check(report, tiny_model_dir.formulas[0])
    second = report["snips"][0]["second_instance"]
    assert second["rc"] == 0 and "already running" in second["stdout"], second
    assert report["screens"][0]["dpr"] == 1.0


def test_snip_at_dpr_2_with_the_shortcut(xvfb, tmp_path, tiny_model_dir, artifacts_dir):
    report = run_driver(xvfb, tmp_path, tiny_model_dir, artifacts_dir, "dpr2", "shortcut", ["0:200:120"], QT_SCALE_FACTOR="2")
    check(report, tiny_model_dir.formulas[0])
    assert report["screens"][0]["dpr"] == 2.0
    # odd physical corners: half logical pixels, still exact
    assert report["snips"][0]["expected_rect"][0] % 2 == 1


def test_snip_on_two_monitors_with_mixed_dpr(xorg_two_monitors, tmp_path, tiny_model_dir, artifacts_dir):
    """The second snip comes from the global hotkey (Ctrl+Alt+M through pynput) when pynput is installed."""
    hotkey = importlib.util.find_spec("pynput") is not None
    report = run_driver(xorg_two_monitors, tmp_path, tiny_model_dir, artifacts_dir, "two-monitors",
                        "button,hotkey" if hotkey else "button",
                        ["DUMMY1:60:40", "DUMMY0:100:300"], QT_SCREEN_SCALE_FACTORS="DUMMY0=1.5;DUMMY1=2")
    check(report, tiny_model_dir.formulas[0])
    if hotkey:
        assert report["snips"][1]["trigger"] == "hotkey" and report["snips"][1]["hotkey_active"]
    assert {s["name"]: s["dpr"] for s in report["screens"]} == {"DUMMY0": 1.5, "DUMMY1": 2.0}
    assert [s["screen"] for s in report["snips"]] == ["DUMMY1", "DUMMY0"]
    assert report["snips"][0]["formula_at"][0] > 1024   # on the right-hand monitor
    for snip in report["snips"]:
        assert sorted(o["screen"] for o in snip["overlays"]) == ["DUMMY0", "DUMMY1"]   # every screen covered
