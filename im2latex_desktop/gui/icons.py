"""Icons from ``resources/icons`` (SVG), with Qt's standard icons where we ship none."""

from __future__ import annotations

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle

from model.resources import icon_dir

ICON_DIR = icon_dir()  # the checkout's resources/icons, the wheel's im2latex_resources/icons, or a bundle's
STANDARD = {
    "open": QStyle.StandardPixmap.SP_DialogOpenButton,
    "paste": QStyle.StandardPixmap.SP_FileDialogDetailedView,
    "settings": QStyle.StandardPixmap.SP_FileDialogInfoView,
    "quit": QStyle.StandardPixmap.SP_DialogCloseButton,
    "history": QStyle.StandardPixmap.SP_FileDialogListView,
}


def icon(name: str) -> QIcon:
    """``resources/icons/<name>.svg`` when it exists, else a standard icon, else an empty one."""
    path = ICON_DIR / f"{name}.svg"
    if path.is_file():
        return QIcon(str(path))
    themed = QIcon.fromTheme(name)
    if not themed.isNull():
        return themed
    if name in STANDARD and QApplication.instance() is not None:
        return QApplication.style().standardIcon(STANDARD[name])
    return QIcon()


def app_icon() -> QIcon:
    return icon("im2latex")
