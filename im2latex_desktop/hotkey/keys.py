"""Translate Qt key-sequence text ("Ctrl+Alt+M") into pynput's hotkey syntax ("<ctrl>+<alt>+m")."""

from __future__ import annotations

from model.errors import Im2LatexError

MODIFIERS = {"ctrl": "<ctrl>", "control": "<ctrl>", "alt": "<alt>", "shift": "<shift>", "meta": "<cmd>", "super": "<cmd>", "win": "<cmd>"}
NAMED_KEYS = {
    "space": "space", "tab": "tab", "esc": "esc", "escape": "esc", "return": "enter", "enter": "enter",
    "backspace": "backspace", "ins": "insert", "insert": "insert", "del": "delete", "delete": "delete",
    "home": "home", "end": "end", "pgup": "page_up", "pgdown": "page_down", "up": "up", "down": "down",
    "left": "left", "right": "right", "print": "print_screen", "pause": "pause",
}


class HotkeyError(Im2LatexError):
    """The hotkey text cannot be used as a global hotkey."""


def to_pynput(sequence: str) -> str:
    """Convert one Qt shortcut (``QKeySequence.toString()`` text) to a pynput hotkey string."""
    text = sequence.strip()
    if not text:
        raise HotkeyError("The hotkey is empty.")
    if "," in text:
        raise HotkeyError(f"“{text}” is a sequence of several shortcuts; a global hotkey must be one.")
    parts = text.split("+")
    if text.endswith("++"):  # "Ctrl++": the key is the plus sign
        parts = parts[:-2] + ["+"]
    *mods, key = [p.strip() for p in parts]
    translated = []
    for mod in mods:
        if mod.lower() not in MODIFIERS:
            raise HotkeyError(f"“{mod}” in “{text}” is not a modifier key (use Ctrl, Alt, Shift or Meta).")
        if MODIFIERS[mod.lower()] not in translated:
            translated.append(MODIFIERS[mod.lower()])
    lower = key.lower()
    if len(key) == 1:
        name = lower
    elif lower in NAMED_KEYS:
        name = f"<{NAMED_KEYS[lower]}>"
    elif lower.startswith("f") and lower[1:].isdigit() and 1 <= int(lower[1:]) <= 24:
        name = f"<{lower}>"
    else:
        raise HotkeyError(f"The key “{key}” in “{text}” cannot be used in a global hotkey.")
    bare_ok = name.startswith("<f") or name == "<print_screen>"
    if not translated and not bare_ok:
        raise HotkeyError(f"“{text}” needs a modifier (Ctrl, Alt or Meta), or it would fire on every key press.")
    return "+".join(translated + [name])
