"""The recognition worker: loads off the UI thread, reports failures, the newest snip wins."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from im2latex_desktop.worker import MODEL_HINT, RecognitionService
from model.errors import Im2LatexError
from .fakes import FakeRecognizer, factory_for, formula_image

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_service(qtbot):
    services = []

    def make(factory):
        service = RecognitionService(factory)
        services.append(service)
        return service

    yield make
    for service in services:
        service.shutdown()


def test_loads_and_recognizes_off_the_ui_thread(make_service, qtbot):
    fake = FakeRecognizer(device="cuda:0")
    service = make_service(factory_for(fake))
    with qtbot.waitSignal(service.model_ready, timeout=5000) as ready:
        service.load("/some/model", "auto")
    assert ready.args == ["cuda:0"] and service.state == "ready"
    with qtbot.waitSignal(service.result_ready, timeout=5000) as done:
        job = service.submit(formula_image(), beam=4, source="file")
    got_job, recognition, messages = done.args
    assert got_job is job and recognition.latex == fake.latex and messages == []
    assert threading.main_thread().name not in fake.threads
    assert len(set(fake.threads)) == 1


def test_missing_model_says_how_to_get_one(make_service, qtbot):
    service = make_service(factory_for(FakeRecognizer(missing=True)))
    with qtbot.waitSignal(service.model_failed, timeout=5000) as failed:
        service.load("", "auto")
    assert "No model was found" in failed.args[0] and MODEL_HINT in failed.args[0]
    with qtbot.waitSignal(service.job_failed, timeout=5000) as job_failed:
        service.submit(formula_image())
    assert MODEL_HINT in job_failed.args[1]


def test_unusable_gpu_falls_back_to_the_cpu_with_a_warning(make_service, qtbot):
    class NoGpu(Im2LatexError):
        pass

    fake = FakeRecognizer()

    def factory(model_path, device):
        if device == "cuda":
            raise NoGpu("The device 'cuda' was requested but no CUDA GPU is available here.")
        return fake

    service = make_service(factory)
    with qtbot.waitSignal(service.model_warning, timeout=5000) as warned, qtbot.waitSignal(service.model_ready, timeout=5000):
        service.load("", "cuda")
    assert "no CUDA GPU" in warned.args[0] and "CPU is used instead" in warned.args[0]


def test_a_crashing_recognizer_is_reported_and_the_worker_survives(make_service, qtbot):
    class Flaky(FakeRecognizer):
        calls = 0

        def recognize(self, image, beam=1):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("CUDA error: device-side assert")
            warnings.warn("The GPU ran out of memory, so this formula was read on the CPU.")
            return super().recognize(image, beam)

    service = make_service(factory_for(Flaky()))
    service.load()
    with qtbot.waitSignal(service.job_failed, timeout=5000) as failed:
        service.submit(formula_image())
    assert failed.args[1] == "Recognition failed (RuntimeError: CUDA error: device-side assert)."
    with qtbot.waitSignal(service.result_ready, timeout=5000) as done:
        service.submit(formula_image())
    assert done.args[2] == ["The GPU ran out of memory, so this formula was read on the CPU."]


def test_newest_snip_replaces_waiting_ones_and_stale_results_are_dropped(make_service, qtbot):
    gate = threading.Event()
    fake = FakeRecognizer(gate=gate)
    service = make_service(factory_for(fake))
    service.load()
    shown, dropped = [], []
    service.result_ready.connect(lambda job, rec, msgs: shown.append(job.id))
    service.job_dropped.connect(lambda job: dropped.append(job.id))
    first = service.submit(formula_image(100, 30))
    qtbot.waitUntil(lambda: len(fake.threads) >= 2)   # load + the first recognize have started
    second = service.submit(formula_image(110, 30))
    third = service.submit(formula_image(120, 30))
    fired = []
    QTimer.singleShot(20, lambda: fired.append(service.busy))
    qtbot.waitUntil(lambda: bool(fired))   # the UI thread's timers run while the model works
    assert fired == [True]
    gate.set()
    qtbot.waitUntil(lambda: shown == [third.id], timeout=5000)
    assert sorted(dropped) == [first.id, second.id]
    assert [im.width for im in fake.images] == [100, 120]   # the second never ran
    qtbot.waitUntil(lambda: not service.busy)


def test_the_ui_modules_do_not_import_torch():
    code = ("import sys; import im2latex_desktop.app, im2latex_desktop.__main__, im2latex_desktop.gui.settings_dialog, "
            "im2latex_desktop.gui.preview; print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
