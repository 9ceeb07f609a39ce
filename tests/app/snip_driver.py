"""Drive the real app on a real X screen and report what happened as JSON (run as a subprocess).

Qt's scaling variables (QT_SCALE_FACTOR, QT_SCREEN_SCALE_FACTORS) only take effect before a
QApplication exists, so every scaling variant runs this script in a fresh process.  It:

1. shows a frameless "target" window with a known formula image, drawn one image pixel per
   physical pixel at a known place on a chosen screen, and takes an independent reference grab;
2. starts the app (the real ``DesktopApp``; the recognizer is the real one with a given model,
   wrapped to record what it receives);
3. triggers a snip (toolbar button, in-app shortcut, or ``im2latex-desktop --snip`` from a
   second process), waits for the overlays, and drags over the formula with xdotool in
   physical root-window pixels, with a margin around it;
4. checks the crop the recognizer received against the reference grab and the formula image,
   waits for the result, reads the clipboard back with xclip, and saves screenshots.

Usage: ``snip_driver.py --out result.json --image formula.png --model BUNDLE --trigger button
--snip SCREEN:X:Y [--snip ...] [--artifacts DIR --tag NAME]`` (X, Y: logical position of the
target inside the screen; SCREEN: a screen name or index).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MARGIN = 11          # physical pixels of blank screen around the formula in the selection
FORMULA_AT = (40, 70)  # logical position of the formula inside the page window (even: exact at DPR 1.5)


def make_wallpaper(screen):
    """A desktop background for one screen, so screenshots look like a desktop, not a void."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QLinearGradient, QPainter
    from PySide6.QtWidgets import QWidget

    class Wallpaper(QWidget):
        def paintEvent(self, _event):
            painter = QPainter(self)
            gradient = QLinearGradient(0, 0, self.width(), self.height())
            gradient.setColorAt(0, QColor(58, 96, 140))
            gradient.setColorAt(1, QColor(22, 40, 66))
            painter.fillRect(self.rect(), gradient)
            painter.end()

    wall = Wallpaper()
    wall.setWindowFlags(Qt.WindowType.FramelessWindowHint)
    wall.setScreen(screen)
    wall.setGeometry(screen.geometry())
    return wall


def make_page(image_path: str, dpr: float, max_width: int):
    """A frameless white window that looks like a page of a paper, the formula drawn 1:1."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
    from PySide6.QtWidgets import QWidget

    pixmap = QPixmap(image_path)
    pixmap.setDevicePixelRatio(dpr)
    fw, fh = pixmap.width() / dpr, pixmap.height() / dpr

    class Page(QWidget):
        def paintEvent(self, _event):
            painter = QPainter(self)
            painter.fillRect(self.rect(), QColor("white"))
            title = QFont(self.font())
            title.setPointSizeF(12)
            title.setBold(True)
            painter.setFont(title)
            painter.setPen(QColor(30, 30, 30))
            painter.drawText(QPointF(16, 24), "1.2  The theorem of Pythagoras")
            body = QFont(self.font())
            body.setPointSizeF(9)
            painter.setFont(body)
            painter.setPen(QColor(70, 70, 70))
            painter.drawText(QPointF(16, 46), "For a right triangle with legs x, y and hypotenuse z:")
            painter.drawText(QPointF(16, FORMULA_AT[1] + fh + 30), "The converse holds as well (Euclid, I.48).")
            painter.drawPixmap(QPointF(*FORMULA_AT), pixmap)
            painter.end()

    page = Page()
    page.setWindowFlags(Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnTopHint)
    page.resize(min(max(int(fw) + 2 * FORMULA_AT[0], 400), max_width), FORMULA_AT[1] + int(fh) + 44)
    return page


def parse_args(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--trigger", default="button",
                        help="button, shortcut, cli or hotkey; comma-separated to vary per snip (the last repeats)")
    parser.add_argument("--snip", action="append", required=True, help="SCREEN:X:Y")
    parser.add_argument("--artifacts", default="")
    parser.add_argument("--tag", default="run")
    parser.add_argument("--timeout", type=float, default=100.0)
    return parser.parse_args(argv)


class Recording:
    """The real recognizer, keeping a copy of every image it is asked to read."""

    def __init__(self, inner):
        self.inner = inner
        self.images = []

    @property
    def device(self):
        return self.inner.device

    def load(self):
        return self.inner.load()

    def recognize(self, image, beam=1):
        self.images.append(image.copy())
        return self.inner.recognize(image, beam=beam)


def main(argv=None) -> int:
    args = parse_args(argv)
    report: dict = {"ok": False, "trigger": args.trigger, "snips": [], "env": {
        k: os.environ.get(k, "") for k in ("QT_SCALE_FACTOR", "QT_SCREEN_SCALE_FACTORS", "DISPLAY")}}

    def write_report():
        Path(args.out).write_text(json.dumps(report, indent=1))

    try:
        code = run(args, report)
    except Exception:
        report["error"] = traceback.format_exc()
        code = 2
    write_report()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip torch's and Qt's slow teardown: the report is written


def run(args, report: dict) -> int:
    import numpy as np
    from PIL import Image
    from PySide6.QtCore import QEventLoop, QPoint, Qt, QTimer
    from PySide6.QtGui import QGuiApplication, QPixmap
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QToolButton

    from im2latex_desktop.app import DesktopApp
    from im2latex_desktop.screenshot.geometry import union
    from im2latex_desktop.screenshot.mss_grab import grab_monitors

    qapp = QApplication([sys.argv[0]])
    screens = QGuiApplication.screens()
    report["screens"] = [{"name": s.name(), "geometry": [s.geometry().x(), s.geometry().y(), s.geometry().width(), s.geometry().height()],
                          "dpr": s.devicePixelRatio()} for s in screens]
    formula = Image.open(args.image).convert("RGB")
    recorders: list[Recording] = []

    def factory(model_path, device):
        from im2latex_desktop.worker import default_recognizer_factory  # the app's own, run in its worker thread

        recorder = Recording(default_recognizer_factory(model_path, device))
        recorders.append(recorder)
        return recorder

    deadline = time.monotonic() + args.timeout
    t0 = time.monotonic()
    report["timeline"] = timeline = []

    def mark(label: str) -> None:
        timeline.append([label, round(time.monotonic() - t0, 3)])

    def pump(ms: int) -> None:
        """Run the event loop for ``ms``.  (QTest.qWait keeps the GIL while it sleeps, which
        starves the recognition thread: its torch import then takes minutes instead of seconds.)"""
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait_until(predicate, what: str, step_ms: int = 30) -> None:
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            pump(step_ms)

    def wait_exposed(widget) -> None:
        wait_until(lambda: widget.windowHandle() is not None and widget.windowHandle().isExposed(), "a window to show")

    def screen_by(key: str):
        for i, s in enumerate(screens):
            if s.name() == key or str(i) == key:
                return s
        raise ValueError(f"no screen {key!r} among {[s.name() for s in screens]}")

    def monitors_now():
        return grab_monitors()

    def xdotool(*parts) -> None:
        subprocess.run(["xdotool", *map(str, parts)], check=True, timeout=10)

    desktop = None
    torch_before_show = None
    walls = [make_wallpaper(s) for s in screens]
    for wall in walls:
        wall.show()
    for wall in walls:
        wait_exposed(wall)
    try:
        for number, spec in enumerate(args.snip):
            key, x, y = spec.split(":")
            screen = screen_by(key)
            dpr = screen.devicePixelRatio()
            geo = screen.geometry()

            # 1. the target: a page of a "document" with the formula at 1:1 physical pixels
            target = make_page(args.image, dpr, geo.width() - int(x) - 8)
            target.setScreen(screen)
            target.move(QPoint(geo.x() + int(x), geo.y() + int(y)))
            mark("target")
            target.show()
            wait_exposed(target)
            mark("target exposed")
            pump(300)

            # where the formula is on the physical desktop, by the mss monitor of this screen
            grabs = monitors_now()
            monitor, picture = next(((m, p) for m, p in grabs if m.name == screen.name()), grabs[0])
            fx = monitor.left + round((int(x) + FORMULA_AT[0]) * dpr)
            fy = monitor.top + round((int(y) + FORMULA_AT[1]) * dpr)
            local = (fx - monitor.left, fy - monitor.top)
            shown = np.asarray(picture.crop((local[0], local[1], local[0] + formula.width, local[1] + formula.height)))
            rect = [fx - MARGIN, fy - MARGIN, formula.width + 2 * MARGIN, formula.height + 2 * MARGIN]
            reference = picture.crop((rect[0] - monitor.left, rect[1] - monitor.top,
                                      rect[0] - monitor.left + rect[2], rect[1] - monitor.top + rect[3]))
            snip_report = {"screen": screen.name(), "dpr": dpr, "formula_at": [fx, fy], "expected_rect": rect,
                           "target_shows_formula_exactly": bool(np.array_equal(shown, np.asarray(formula)))}
            report["snips"].append(snip_report)

            # 2. the app (once)
            if desktop is None:
                mark("app")
                desktop = DesktopApp(qapp, model=args.model, device="cpu", recognizer_factory=factory)
                desktop.listen()
                desktop.start()
                torch_before_show = "torch" in sys.modules
                report["torch_imported_before_show"] = torch_before_show
                window = desktop.window
                window.move(geo.x() + 40, geo.y() + 40)   # over the target: the snip must hide it
                wait_exposed(window)
                mark("window exposed")
                wait_until(lambda: desktop.service.state in ("ready", "failed"), "the model to load")
                mark("model loaded")
                report["model_state"] = desktop.service.state
                report["model_error"] = desktop.service.error
                report["device_label"] = window.device_label.text()
            window = desktop.window
            window.present()
            pump(200)

            sessions = []
            window.overlay_shown.connect(sessions.append)
            results = []
            window.result_shown.connect(results.append)
            errors = []
            window.error_shown.connect(errors.append)

            # 3. trigger
            calls_before = sum(len(r.images) for r in recorders)
            triggers = args.trigger.split(",")
            trigger = triggers[min(number, len(triggers) - 1)]
            snip_report["trigger"] = trigger
            mark("trigger")
            started = time.monotonic()
            if trigger == "button":
                button = window.findChild(QToolButton, "snip_button")
                QTest.mouseClick(button, Qt.MouseButton.LeftButton)
            elif trigger == "shortcut":
                QTest.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
            elif trigger == "hotkey":
                snip_report["hotkey_message"] = window.hotkey_message
                snip_report["hotkey_active"] = bool(desktop.hotkey and desktop.hotkey.active)
                xdotool("key", "ctrl+alt+m")
            else:
                second = subprocess.run([sys.executable, "-m", "im2latex_desktop", "--snip"], cwd=str(REPO),
                                        capture_output=True, text=True, timeout=30)
                snip_report["second_instance"] = {"rc": second.returncode, "stdout": second.stdout.strip(), "stderr": second.stderr.strip()[-500:]}
            wait_until(lambda: bool(sessions) or bool(errors), "the overlay")
            if errors:
                raise RuntimeError(f"snip failed: {errors}")
            session = sessions[0]
            snip_report["overlay_seconds"] = round(time.monotonic() - started, 3)
            snip_report["main_window_hidden_during_snip"] = not window.isVisible()
            snip_report["overlays"] = [{"screen": o.capture.screen.name, "scale": o.capture.scale,
                                        "geometry": [o.geometry().x(), o.geometry().y(), o.geometry().width(), o.geometry().height()]}
                                       for o in session.overlays]
            for overlay in session.overlays:
                wait_exposed(overlay)
            pump(200)

            # 4. drag with real X pointer events, in physical pixels
            x0, y0, w, h = rect
            xdotool("mousemove", x0, y0)
            pump(100)
            xdotool("mousedown", "1")
            pump(100)
            xdotool("mousemove", x0 + w // 2, y0 + h // 2)
            pump(100)
            xdotool("mousemove", x0 + w, y0 + h)
            pump(250)
            overlay = session.overlay_for(screen.name())
            snip_report["selection_while_dragging"] = None if overlay is None or overlay.selection() is None else list(
                overlay.selection().translated(overlay.capture.monitor.left, overlay.capture.monitor.top).box())
            if args.artifacts:
                grabs_now = monitors_now()
                whole = union([m for m, _ in grabs_now])
                canvas = Image.new("RGB", (whole.width, whole.height))
                for m, p in grabs_now:
                    canvas.paste(p, (m.left - whole.left, m.top - whole.top))
                canvas.save(Path(args.artifacts) / f"overlay-{args.tag}-{number}.png")
            mark("dragged")
            xdotool("mouseup", "1")
            wait_until(lambda: bool(results) or bool(errors), "the result")
            if errors:
                raise RuntimeError(f"recognition failed: {errors}")
            snip_report["seconds_to_result"] = round(time.monotonic() - started, 3)

            mark("result")
            recorder = recorders[-1]
            crop = recorder.images[-1].convert("RGB")
            snip_report["crop_size"] = [crop.width, crop.height]
            snip_report["crop_equals_reference"] = bool(np.array_equal(np.asarray(crop), np.asarray(reference)))
            inner = np.asarray(crop)[MARGIN:MARGIN + formula.height, MARGIN:MARGIN + formula.width]
            snip_report["crop_holds_formula_exactly"] = bool(np.array_equal(inner, np.asarray(formula)))
            snip_report["recognizer_calls"] = sum(len(r.images) for r in recorders) - calls_before
            recognition = results[-1]
            snip_report["recognized"] = recognition.latex
            snip_report["confidence"] = recognition.confidence
            snip_report["shown_latex"] = window.result_view.latex()
            snip_report["status"] = window.statusBar().currentMessage()
            snip_report["time_label"] = window.time_label.text()
            snip_report["device_label"] = window.device_label.text()
            snip_report["history_entries"] = len(desktop.history.entries)
            pump(150)
            clip = subprocess.run(["xclip", "-o", "-selection", "clipboard"], capture_output=True, text=True, timeout=10)
            snip_report["clipboard"] = clip.stdout
            snip_report["clipboard_handler"] = window.clipboard.last_handler
            crop.save(Path(args.out).with_suffix(f".crop{number}.png"))
            if not snip_report["crop_equals_reference"]:
                reference.save(Path(args.out).with_suffix(f".reference{number}.png"))
            preview = window.result_view.preview
            wait_until(lambda: not preview.image_label.pixmap().isNull() or preview.note.isVisible(), "the preview")
            snip_report["preview_drawn"] = not preview.image_label.pixmap().isNull()
            if args.artifacts:
                pump(200)
                window.grab().save(str(Path(args.artifacts) / f"main-{args.tag}-{number}.png"))
            target.close()
            pump(100)
    finally:
        if desktop is not None:
            desktop.shutdown()
    mark("done")
    report["ok"] = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
