"""The real desktop app, started as a user would, with stopwatches attached (run by startup.py).

It runs ``im2latex_desktop.__main__.main`` unchanged; hooks only watch:
* a Qt event filter notes when the main window is first shown, and whether torch had been
  imported by then;
* an audit hook notes which thread first imports torch (it must not be the UI thread);
* the recognition service's signals note when the model is ready (loaded and warmed up);
* then, after the app has been idle a moment, its resident memory is read, the peak-RSS counter
  is reset (``/proc/self/clear_refs``), one long formula is recognized through the app's own
  service, and the peak during that recognition is read.
Prints one JSON line with wall-clock times (``time.time()``) so the parent can subtract its own
launch time.  Settings, history and the instance socket live in a temporary folder.

    QT_QPA_PLATFORM=offscreen python benchmarks/app_probe.py --model DIR --image PNG
"""

from __future__ import annotations

import json
import sys
import threading
import time

START = time.time()
EVENTS: dict = {"probe_start": START}


def _audit(event: str, args: tuple) -> None:
    if event == "import" and args and args[0] == "torch" and "torch_import_thread" not in EVENTS:
        EVENTS["torch_import_thread"] = threading.current_thread().name
        EVENTS["torch_import_on_main_thread"] = threading.current_thread() is threading.main_thread()
        EVENTS["torch_import_at"] = time.time()
        qtcore = sys.modules.get("PySide6.QtCore")
        if qtcore is not None:  # the Qt name of the importing thread ("recognition" for the worker)
            EVENTS["torch_import_qthread"] = qtcore.QThread.currentThread().objectName()


sys.addaudithook(_audit)

import argparse  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def memory_kb() -> dict:
    """VmRSS / VmHWM (peak) from /proc/self/status and PSS / anonymous from smaps_rollup, in kB."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Pss", "Anonymous"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def reset_peak() -> bool:
    """Start a new VmHWM period (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True, help="formula image recognized once the model is ready")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()

    from PIL import Image
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    import im2latex_desktop.app as app_module
    from im2latex_desktop import __main__ as entry

    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    image = Image.open(args.image).convert("RGB")

    class ShowWatcher(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if (event.type() == QEvent.Type.Show and "window_shown" not in EVENTS
                    and type(obj).__name__ == "MainWindow"):
                EVENTS["window_shown"] = time.time()
                EVENTS["torch_loaded_at_show"] = "torch" in sys.modules
            return False

    watcher = ShowWatcher()
    qapp.installEventFilter(watcher)

    def finish(error: str | None = None) -> None:
        if error:
            EVENTS["error"] = error
        qapp.quit()

    def recognize_once() -> None:
        EVENTS["memory_idle_kb"] = memory_kb()
        EVENTS["peak_reset"] = reset_peak()
        EVENTS["submit"] = time.time()
        state["app"].service.submit(image, beam=1, source="file")

    def on_ready(device: str) -> None:
        EVENTS["model_ready"] = time.time()
        EVENTS["device"] = device
        EVENTS["memory_ready_kb"] = memory_kb()
        QTimer.singleShot(int(args.idle_seconds * 1000), recognize_once)

    def on_result(job, recognition, messages) -> None:
        EVENTS["result"] = time.time()
        EVENTS["memory_recognition_kb"] = memory_kb()
        EVENTS["latex"] = recognition.latex
        EVENTS["recognizer_seconds"] = recognition.seconds
        QTimer.singleShot(0, finish)

    state: dict = {}
    original_start = app_module.DesktopApp.start

    def start(self, snip: bool = False) -> None:
        state["app"] = self
        self.service.model_ready.connect(on_ready)
        self.service.model_failed.connect(lambda message: finish(f"model failed: {message}"))
        self.service.result_ready.connect(on_result)
        self.service.job_failed.connect(lambda job, message: finish(f"recognition failed: {message}"))
        QTimer.singleShot(int(args.timeout * 1000), lambda: finish("timed out"))
        original_start(self, snip)

    app_module.DesktopApp.start = start
    code = entry.main(["--model", args.model, "--device", "cpu"])
    EVENTS["exit_code"] = code
    EVENTS["pid"] = os.getpid()
    print("PROBE " + json.dumps(EVENTS), flush=True)
    return 0 if "error" not in EVENTS else 1


if __name__ == "__main__":
    sys.exit(main())
