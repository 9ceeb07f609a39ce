"""The history list: thumbnail, LaTeX and time of every result; copy, reopen or delete one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from im2latex_desktop.checks import stopped_note
from im2latex_desktop.history import Entry

CUT_SHORT = "cut short"


def entry_text(entry: Entry, now: float | None = None) -> str:
    """Two lines: the LaTeX (shortened) and when it was recognized (and whether it was cut short)."""
    latex = entry.latex if len(entry.latex) <= 80 else entry.latex[:77] + "…"
    now = time.time() if now is None else now
    day = time.strftime("%Y-%m-%d", time.localtime(entry.created))
    today = time.strftime("%Y-%m-%d", time.localtime(now))
    when = time.strftime("%H:%M" if day == today else "%Y-%m-%d %H:%M", time.localtime(entry.created))
    mark = f" · ⚠ {CUT_SHORT}" if entry.stopped else ""
    return f"{latex}\n{when} · {entry.confidence * 100:.0f}%{mark}"


class HistoryPanel(QWidget):
    copy_requested = Signal(str)     # entry id
    open_requested = Signal(str)
    delete_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("history")
        self.list.setIconSize(QSize(96, 32))
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.itemActivated.connect(lambda item: self.open_requested.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.list.itemDoubleClicked.connect(lambda item: self.open_requested.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.copy_button = QPushButton("Copy")
        self.copy_button.setObjectName("history_copy")
        self.copy_button.clicked.connect(self._copy_current)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("history_delete")
        self.delete_button.clicked.connect(self._delete_current)
        QShortcut(QKeySequence.StandardKey.Delete, self.list, self._delete_current, context=Qt.ShortcutContext.WidgetShortcut)
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self._update_buttons()

    def set_entries(self, entries: Sequence[Entry], thumbnail: Callable[[Entry], Path | None]) -> None:
        current = self.current_id()
        self.list.clear()
        for entry in entries:
            item = QListWidgetItem(entry_text(entry))
            item.setData(Qt.ItemDataRole.UserRole, entry.id)
            note = stopped_note(entry.stopped)
            item.setToolTip(f"{entry.latex}\n\n{note}" if note else entry.latex)
            path = thumbnail(entry)
            if path is not None:
                item.setIcon(QIcon(QPixmap(str(path))))
            self.list.addItem(item)
            if entry.id == current:
                self.list.setCurrentItem(item)
        self._update_buttons()

    def ids(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def current_id(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select(self, entry_id: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == entry_id:
                self.list.setCurrentRow(i)
                return

    def _copy_current(self) -> None:
        entry_id = self.current_id()
        if entry_id:
            self.copy_requested.emit(entry_id)

    def _delete_current(self) -> None:
        entry_id = self.current_id()
        if entry_id:
            self.delete_requested.emit(entry_id)

    def _update_buttons(self) -> None:
        has = self.list.currentItem() is not None
        self.copy_button.setEnabled(has)
        self.delete_button.setEnabled(has)
