"""Recognition off the UI thread.

A :class:`RecognitionWorker` lives in its own ``QThread`` and owns the recognizer; the UI talks to
it only through :class:`RecognitionService`, by queued signals, so the window never waits on the
model.  ``model.inference`` (and with it torch) is imported inside the worker thread when the
model loads, never on the UI thread.

Snips arriving while one runs: the newest waits (replacing any older waiting one), and a
running job's result is dropped when a newer job was submitted meanwhile: the user sees the
answer to their latest snip, and never a stale one on top of it.
"""

from __future__ import annotations

import itertools
import logging
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image
from PySide6.QtCore import QObject, QThread, Signal, Slot

from model.errors import CheckpointError, Im2LatexError, ModelNotFoundError

log = logging.getLogger(__name__)

RecognizerFactory = Callable[[str | None, str | None], Any]

MODEL_HINT = (
    "Reinstall the app to get its bundled model (resources/model/), or choose a model folder in "
    "Settings, or start it with --model PATH."
)


def default_recognizer_factory(model_path: str | None, device: str | None) -> Any:
    """Build the real recognizer; imported here so torch loads in the calling (worker) thread.

    ``warmup`` makes ``load()`` run one dummy recognition, so the user's first snip does not pay
    for torch's lazy initialization (seconds on a slow CPU).
    """
    from model.inference import Recognizer

    return Recognizer(model_path=model_path, device=device, warmup=True)


@dataclass
class Job:
    id: int
    image: Image.Image
    beam: int = 1
    source: str = "snip"          # snip, paste, file or drop
    extra: dict = field(default_factory=dict)


class _CollectWarnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _device_arg(device: str) -> str | None:
    return None if device in ("", "auto") else device


class RecognitionWorker(QObject):
    """Runs in the worker thread.  Every slot catches everything: a failure becomes a signal."""

    progress = Signal(str)
    warning = Signal(str)
    loaded = Signal(str)
    load_failed = Signal(str)
    done = Signal(object, object, list)
    failed = Signal(object, str)

    def __init__(self, factory: RecognizerFactory) -> None:
        super().__init__()
        self._factory = factory
        self._recognizer: Any = None
        self._load_error: str | None = None

    @Slot(str, str)
    def load(self, model_path: str, device: str) -> None:
        self._recognizer = None
        self._load_error = None
        try:
            try:
                self._recognizer = self._build(model_path, _device_arg(device))
            except (ModelNotFoundError, CheckpointError):
                raise
            except Im2LatexError as error:
                if _device_arg(device) in (None, "cpu"):
                    raise
                # The chosen GPU is missing or unusable: the CPU still gives answers.
                self._recognizer = self._build(model_path, "cpu")
                self.warning.emit(f"{error} The CPU is used instead.")
            self.loaded.emit(str(self._recognizer.device))
        except ModelNotFoundError as error:
            self._load_error = f"{error} {MODEL_HINT}"
            self.load_failed.emit(self._load_error)
        except Im2LatexError as error:
            self._load_error = str(error)
            self.load_failed.emit(self._load_error)
        except Exception as error:  # an unexpected bug must not kill the thread
            log.error("model load failed:\n%s", traceback.format_exc())
            self._load_error = f"The model could not be loaded ({type(error).__name__}: {error})."
            self.load_failed.emit(self._load_error)

    def _build(self, model_path: str, device: str | None) -> Any:
        self.progress.emit("Starting the recognizer…")
        recognizer = self._factory(model_path or None, device)
        self.progress.emit("Loading the model…")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            recognizer.load()
        for w in caught:
            log.warning("while loading: %s", w.message)
        return recognizer

    @Slot(object)
    def recognize(self, job: Job) -> None:
        if self._recognizer is None:
            self.failed.emit(job, self._load_error or "The model is not loaded yet.")
            return
        handler = _CollectWarnings()
        model_log = logging.getLogger("model")
        model_log.addHandler(handler)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = self._recognizer.recognize(job.image, beam=job.beam)
            messages = [str(w.message) for w in caught] + handler.messages
            self.done.emit(job, result, list(dict.fromkeys(messages)))
        except Im2LatexError as error:
            self.failed.emit(job, str(error))
        except Exception as error:
            log.error("recognition failed:\n%s", traceback.format_exc())
            self.failed.emit(job, f"Recognition failed ({type(error).__name__}: {error}).")
        finally:
            model_log.removeHandler(handler)


class RecognitionService(QObject):
    """The UI thread's handle on the worker: load, submit, and signals with the outcomes."""

    model_loading = Signal(str)
    model_warning = Signal(str)
    model_ready = Signal(str)
    model_failed = Signal(str)
    result_ready = Signal(object, object, list)   # job, Recognition, warning messages
    job_failed = Signal(object, str)
    job_dropped = Signal(object)                  # superseded by a newer submission
    busy_changed = Signal(bool)

    _load_requested = Signal(str, str)
    _job_requested = Signal(object)

    def __init__(self, factory: RecognizerFactory | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._latest = 0
        self._running: Job | None = None
        self._pending: Job | None = None
        self.state = "idle"             # idle, loading, ready, failed
        self.device = ""
        self.error = ""
        self._thread = QThread()
        self._thread.setObjectName("recognition")
        self._worker = RecognitionWorker(factory or default_recognizer_factory)
        self._worker.moveToThread(self._thread)
        self._load_requested.connect(self._worker.load)
        self._job_requested.connect(self._worker.recognize)
        self._worker.progress.connect(self.model_loading)
        self._worker.warning.connect(self.model_warning)
        self._worker.loaded.connect(self._on_loaded)
        self._worker.load_failed.connect(self._on_load_failed)
        self._worker.done.connect(self._on_done)
        self._worker.failed.connect(self._on_failed)
        self._thread.start()

    # -- requests --------------------------------------------------------------------------
    def load(self, model_path: str = "", device: str = "auto") -> None:
        """(Re)load the model in the background; jobs submitted meanwhile wait for it."""
        self.state = "loading"
        self.model_loading.emit("Loading the model…")
        self._load_requested.emit(model_path, device)

    def submit(self, image: Image.Image, beam: int = 1, source: str = "snip", **extra: Any) -> Job:
        job = Job(next(self._ids), image, beam, source, dict(extra))
        self._latest = job.id
        if self._running is None:
            self._dispatch(job)
        else:
            if self._pending is not None:
                self.job_dropped.emit(self._pending)
            self._pending = job
        return job

    @property
    def busy(self) -> bool:
        return self._running is not None

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop the thread; a recognition in progress may finish first (up to ``timeout_ms``)."""
        self._pending = None
        self._thread.quit()
        if not self._thread.wait(timeout_ms):
            log.warning("recognition thread did not stop in %d ms", timeout_ms)

    # -- worker callbacks ------------------------------------------------------------------
    def _dispatch(self, job: Job) -> None:
        self._running = job
        self.busy_changed.emit(True)
        self._job_requested.emit(job)

    def _next(self) -> None:
        self._running = None
        if self._pending is not None:
            job, self._pending = self._pending, None
            self._dispatch(job)
        else:
            self.busy_changed.emit(False)

    @Slot(str)
    def _on_loaded(self, device: str) -> None:
        self.state, self.device, self.error = "ready", device, ""
        self.model_ready.emit(device)

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.state, self.error = "failed", message
        self.model_failed.emit(message)

    @Slot(object, object, list)
    def _on_done(self, job: Job, recognition: Any, messages: list) -> None:
        if job.id == self._latest:
            self.result_ready.emit(job, recognition, messages)
        else:
            self.job_dropped.emit(job)
        self._next()

    @Slot(object, str)
    def _on_failed(self, job: Job, message: str) -> None:
        if job.id == self._latest:
            self.job_failed.emit(job, message)
        else:
            self.job_dropped.emit(job)
        self._next()
