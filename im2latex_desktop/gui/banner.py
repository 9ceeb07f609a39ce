"""A message strip above the result: errors and warnings the user should read, with actions."""

from __future__ import annotations

from typing import Callable, Sequence

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

STYLES = {
    "error": "QFrame#banner { background: #fde7e7; border: 1px solid #e0a0a0; } QLabel { color: #7a1010; }",
    "warning": "QFrame#banner { background: #fff4dc; border: 1px solid #e6c780; } QLabel { color: #6b4a00; }",
    "info": "QFrame#banner { background: #e8f1fd; border: 1px solid #a8c4ea; } QLabel { color: #143d73; }",
}


class MessageBanner(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(8, 6, 4, 6)
        self._layout.addWidget(self.label, 1)
        self._buttons: list[QPushButton] = []
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        self._layout.addWidget(close)
        self.level = ""
        self.tag = ""
        self.hide()

    def show_message(self, text: str, level: str = "error", actions: Sequence[tuple[str, Callable[[], None]]] = (),
                     tag: str = "") -> None:
        """``tag`` names what the message is about, so it can be taken down when that is fixed."""
        self.level = level
        self.tag = tag
        self.setStyleSheet(STYLES.get(level, STYLES["info"]))
        self.label.setText(text)
        for button in self._buttons:
            button.deleteLater()
        self._buttons = []
        for label, callback in actions:
            button = QPushButton(label)
            button.clicked.connect(callback)
            self._layout.insertWidget(self._layout.count() - 1, button)
            self._buttons.append(button)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""
