"""Settings: round trip, bad values reset one by one, a corrupt file moved aside and reported."""

from __future__ import annotations

import json

from im2latex_desktop import paths
from im2latex_desktop.settings import Settings, SettingsStore


def test_round_trip_in_the_config_dir_from_the_environment(app_dirs):
    store = SettingsStore()
    assert store.path == app_dirs["config"] / "settings.json" == paths.config_dir() / "settings.json"
    assert store.load() == Settings() and store.message is None
    changed = Settings(hotkey="Ctrl+Shift+F9", hotkey_enabled=False, default_format="equation", auto_copy=False,
                       device="cpu", beam_width=7, model_path="/models/big", close_to_tray=False)
    store.save(changed)
    again = SettingsStore()
    assert again.load() == changed and again.message is None


def test_invalid_values_take_their_defaults_and_are_named(app_dirs):
    path = app_dirs["config"] / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"beam_width": 99, "device": "tpu", "auto_copy": "yes", "default_format": "inline",
                                "hotkey_enabled": 1, "unknown": 3}))
    store = SettingsStore()
    settings = store.load()
    assert settings == Settings(default_format="inline")
    for name in ("beam_width", "device", "auto_copy", "hotkey_enabled"):
        assert name in store.message


def test_corrupt_file_is_moved_aside_and_the_user_told(app_dirs):
    path = app_dirs["config"] / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"beam_width": 4, "devi\x00\xff')
    store = SettingsStore()
    assert store.load() == Settings()
    assert "damaged" in store.message and "moved" in store.message
    assert not path.exists()
    moved = list(path.parent.glob("settings.json.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b'{"beam_width": 4')
    store.save(Settings(beam_width=4))
    assert SettingsStore().load().beam_width == 4


def test_a_list_instead_of_settings_gives_defaults(app_dirs):
    path = app_dirs["config"] / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2]")
    store = SettingsStore()
    assert store.load() == Settings() and "does not hold settings" in store.message


def test_settings_dialog_round_trip(qtbot):
    from im2latex_desktop.gui.settings_dialog import SettingsDialog

    original = Settings(hotkey="Ctrl+Alt+K", default_format="display", auto_copy=False, device="cpu", beam_width=5,
                        model_path="/m", close_to_tray=False)
    dialog = SettingsDialog(original, "Global hotkeys need a desktop session.")
    qtbot.addWidget(dialog)
    assert dialog.settings() == original
    assert dialog.hotkey_note.text() == "Global hotkeys need a desktop session."
    dialog.beam_spin.setValue(2)
    dialog.format_box.setCurrentIndex(dialog.format_box.findData("equation"))
    dialog.auto_copy.setChecked(True)
    edited = dialog.settings()
    assert (edited.beam_width, edited.default_format, edited.auto_copy) == (2, "equation", True)
    assert edited.hotkey == "Ctrl+Alt+K"
