"""Stand-ins with the recognizer's interface, for unit tests that must not load torch."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from model.errors import BlankImageError, ModelNotFoundError


@dataclass
class FakeAlternative:
    latex: str
    confidence: float


@dataclass
class FakeRecognition:
    latex: str
    confidence: float
    alternatives: list = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    warning: str | None = None
    stopped: str | None = None


class FakeRecognizer:
    """Answers ``latex`` for every image; records what it was given and on which thread."""

    def __init__(self, latex: str = r"\frac{a}{b}", confidence: float = 0.93, alternatives=(), delay: float = 0.0,
                 device: str = "cpu", missing: bool = False, warning: str | None = None, gate: threading.Event | None = None,
                 stopped: str | None = None):
        self.latex = latex
        self.confidence = confidence
        self.alternatives = [FakeAlternative(a, c) for a, c in alternatives]
        self.delay = delay
        self._device = device
        self.missing = missing
        self.warning = warning
        self.stopped = stopped   # what the fake reports cut its reading short: None, "time", "length", "repetition"
        self.gate = gate
        self.images: list[Image.Image] = []
        self.threads: list[str] = []
        self.loaded = False

    @property
    def device(self) -> str:
        return self._device

    def load(self) -> None:
        self.threads.append(threading.current_thread().name)
        if self.missing:
            raise ModelNotFoundError("No model was found at /nowhere/model.")
        self.loaded = True

    def recognize(self, image, beam: int = 1):
        self.threads.append(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)
        self.images.append(image.copy())
        if self.delay:
            time.sleep(self.delay)
        grey = image.convert("L")
        lo, hi = grey.getextrema()
        if hi - lo < 8:
            raise BlankImageError("The image is blank: there is no formula in it.")
        return FakeRecognition(self.latex, self.confidence, list(self.alternatives), 0.25, self._device, self.warning,
                               self.stopped)


def factory_for(recognizer: FakeRecognizer):
    calls = []

    def factory(model_path, device):
        calls.append((model_path, device))
        return recognizer

    factory.calls = calls
    return factory


def formula_image(width: int = 120, height: int = 40) -> Image.Image:
    """A black-on-white picture with some strokes: not blank, like a small formula."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.line((8, height // 2, width // 3, height // 2), fill="black", width=3)
    draw.line((width // 2, 6, width // 2, height - 6), fill="black", width=3)
    draw.ellipse((width - 40, 8, width - 12, height - 8), outline="black", width=3)
    return image
