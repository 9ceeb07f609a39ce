"""Settings: global hotkey, default copy format, auto-copy, device, beam width, model folder."""

from __future__ import annotations

import dataclasses

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from im2latex_desktop.formats import FORMATS
from im2latex_desktop.settings import DEVICES, MAX_BEAM, Settings

DEVICE_LABELS = {"auto": "Automatic (GPU when available)", "cpu": "CPU", "cuda": "GPU (CUDA)"}


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, hotkey_note: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._original = settings

        self.hotkey_enabled = QCheckBox("Enable the global hotkey")
        self.hotkey_enabled.setChecked(settings.hotkey_enabled)
        self.hotkey_edit = QKeySequenceEdit(QKeySequence(settings.hotkey))
        self.hotkey_edit.setMaximumSequenceLength(1)
        self.hotkey_note = QLabel(hotkey_note)
        self.hotkey_note.setWordWrap(True)
        self.hotkey_note.setStyleSheet("color: #a15c00;")
        self.hotkey_note.setVisible(bool(hotkey_note))

        self.format_box = QComboBox()
        for key, label in FORMATS.items():
            self.format_box.addItem(label, key)
        self.format_box.setCurrentIndex(list(FORMATS).index(settings.default_format))
        self.auto_copy = QCheckBox("Copy the result to the clipboard as soon as it is recognized")
        self.auto_copy.setChecked(settings.auto_copy)

        self.device_box = QComboBox()
        for key in DEVICES:
            self.device_box.addItem(DEVICE_LABELS[key], key)
        self.device_box.setCurrentIndex(DEVICES.index(settings.device))
        self.beam_spin = QSpinBox()
        self.beam_spin.setRange(1, MAX_BEAM)
        self.beam_spin.setValue(settings.beam_width)
        self.beam_spin.setToolTip("1 is fastest; larger widths search more and offer alternatives.")

        self.model_edit = QLineEdit(settings.model_path)
        self.model_edit.setPlaceholderText("bundled model")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_edit, 1)
        model_row.addWidget(browse)

        self.close_to_tray = QCheckBox("Closing the window keeps the app in the tray")
        self.close_to_tray.setChecked(settings.close_to_tray)

        form = QFormLayout()
        form.addRow(self.hotkey_enabled)
        form.addRow("Global hotkey:", self.hotkey_edit)
        form.addRow("", self.hotkey_note)
        form.addRow("Default format:", self.format_box)
        form.addRow(self.auto_copy)
        form.addRow("Device:", self.device_box)
        form.addRow("Beam width:", self.beam_spin)
        form.addRow("Model folder:", model_row)
        form.addRow(self.close_to_tray)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def settings(self) -> Settings:
        """The settings as edited (validated: nothing invalid can come out of the dialog)."""
        sequence = self.hotkey_edit.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
        edited = dataclasses.replace(
            self._original,
            hotkey=sequence or self._original.hotkey,
            hotkey_enabled=self.hotkey_enabled.isChecked(),
            default_format=self.format_box.currentData(),
            auto_copy=self.auto_copy.isChecked(),
            device=self.device_box.currentData(),
            beam_width=self.beam_spin.value(),
            model_path=self.model_edit.text().strip(),
            close_to_tray=self.close_to_tray.isChecked(),
        )
        return edited.validated()[0]

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", self.model_edit.text())
        if folder:
            self.model_edit.setText(folder)
