"""Cheap checks on a snip before it is sent to the model, so obvious mistakes get a quick answer."""

from __future__ import annotations

import numpy as np
from PIL import Image

MIN_SIDE = 4            # physical pixels
MIN_CONTRAST = 16       # grey levels between the darkest and the lightest pixel


def snip_problem(image: Image.Image) -> str | None:
    """A sentence saying why ``image`` cannot hold a formula, or ``None`` when it might."""
    if image.width < MIN_SIDE or image.height < MIN_SIDE:
        return f"The selection is too small ({image.width} × {image.height} px): drag a rectangle around the formula."
    grey = np.asarray(image.convert("L"), dtype=np.uint8)
    if int(grey.max()) - int(grey.min()) < MIN_CONTRAST:
        return "The selection is blank: there is no formula in it. Drag a rectangle around the formula."
    return None


def describe_device(device: str) -> str:
    """How the status bar names a torch device: CPU, or GPU with its name."""
    name = (device or "").lower()
    if name.startswith("cuda"):
        return f"GPU ({name})"
    if name == "mps":
        return "GPU (Apple MPS)"
    if name == "cpu":
        return "CPU"
    return device or "?"


# What cut a reading short (``Recognition.stopped``), in the user's words.
STOP_REASONS = {
    "time": "time limit",
    "length": "length limit",
    "repetition": "the model began repeating itself",
}


def stopped_note(stopped: str | None) -> str | None:
    """The note shown with a result whose decoding was cut short, or ``None`` for a complete one."""
    if not stopped:
        return None
    reason = STOP_REASONS.get(stopped, stopped)
    return f"The reading was cut short ({reason}); check the end of the formula."
