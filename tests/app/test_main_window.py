"""The main window offscreen, with a fake recognizer: results, copying, inputs, history, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QToolButton

from im2latex_desktop.app import DesktopApp
from im2latex_desktop.gui.qt_image import pil_to_qimage
from im2latex_desktop.screenshot import CaptureError
from im2latex_desktop.settings import Settings, SettingsStore
from im2latex_desktop.worker import MODEL_HINT

from .fakes import FakeRecognizer, factory_for, formula_image


@pytest.fixture
def make_app(qtbot):
    apps = []

    def make(recognizer=None, capture=None, wait_ready=True, **kwargs) -> DesktopApp:
        recognizer = recognizer or FakeRecognizer(alternatives=[(r"\frac{a}{6}", 0.04), (r"\frac{a}{b}", 0.9)])
        extra = {"capture": capture} if capture is not None else {}
        app = DesktopApp(QGuiApplication.instance(), recognizer_factory=factory_for(recognizer), use_tray=False, **extra, **kwargs)
        app.recognizer = recognizer
        apps.append(app)
        qtbot.addWidget(app.window)
        if wait_ready and not recognizer.missing:
            with qtbot.waitSignal(app.service.model_ready, timeout=5000):
                app.start()
        else:
            app.start()
        return app

    yield make
    for app in apps:
        app.window.hide()
        app.shutdown()


def recognize(qtbot, app, image=None, source="paste"):
    with qtbot.waitSignal(app.window.result_shown, timeout=5000) as blocker:
        app.window.recognize_image(image or formula_image(), source)
    return blocker.args[0]


def test_result_is_shown_copied_and_kept(make_app, qtbot):
    app = make_app()
    w = app.window
    recognition = recognize(qtbot, app)
    view = w.result_view
    assert view.latex() == r"\frac{a}{b}"
    assert view.confidence_label.text() == "Confidence: 93%"
    assert w.device_label.text() == "Device: CPU" and w.time_label.text() == "Time: 0.25 s"
    assert "Recognized in 0.25 s on CPU" in w.statusBar().currentMessage()
    assert QGuiApplication.clipboard().text() == r"\frac{a}{b}"        # auto-copy, raw by default
    assert [e.latex for e in app.history.entries] == [recognition.latex]
    assert w.history_panel.ids() == [app.history.entries[0].id]
    # alternatives: the best first, then by confidence; clicking one puts it in the editor
    texts = [view.alternatives.item(i).data(Qt.ItemDataRole.UserRole) for i in range(view.alternatives.count())]
    assert texts == [r"\frac{a}{b}", r"\frac{a}{6}"] and view.alternatives_box.isVisibleTo(w)
    view._on_alternative(view.alternatives.item(1))
    assert view.latex() == r"\frac{a}{6}"
    view.copy_buttons["equation"].click()
    assert QGuiApplication.clipboard().text() == "\\begin{equation}\n\\frac{a}{6}\n\\end{equation}"
    assert app.history.entries[0].latex == r"\frac{a}{6}"   # the correction is remembered


def test_auto_copy_uses_the_default_format_or_stays_off(make_app, qtbot):
    SettingsStore().save(Settings(default_format="inline"))
    app = make_app()
    recognize(qtbot, app)
    assert QGuiApplication.clipboard().text() == r"$\frac{a}{b}$"
    app.window.apply_settings(Settings(auto_copy=False))
    QGuiApplication.clipboard().setText("untouched")
    recognize(qtbot, app)
    assert QGuiApplication.clipboard().text() == "untouched"
    assert SettingsStore().load() == Settings(auto_copy=False)


def test_history_survives_a_restart_and_can_be_copied_and_deleted(make_app, qtbot):
    first = make_app(FakeRecognizer(latex="x^{2}"))
    recognize(qtbot, first)
    first.window.apply_settings(Settings(default_format="display", beam_width=5))
    first.window.hide()
    first.shutdown()

    second = make_app(FakeRecognizer(latex="y"))
    assert second.window.settings.beam_width == 5
    panel = second.window.history_panel
    assert panel.list.count() == 1 and panel.list.item(0).text().startswith("x^{2}\n")
    assert not panel.list.item(0).icon().isNull()             # the thumbnail came back
    panel.list.setCurrentRow(0)
    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == r"\[x^{2}\]"
    second.window.open_history_entry(panel.ids()[0])
    assert second.window.result_view.latex() == "x^{2}"
    recognize(qtbot, second)
    assert [e.latex for e in second.history.entries] == ["y", "x^{2}"]
    panel.select(second.history.entries[1].id)
    panel.delete_button.click()
    assert panel.list.count() == 1
    second.window.hide()
    second.shutdown()
    third = make_app()
    assert [e.latex for e in third.history.entries] == ["y"]


def test_corrupt_history_is_recovered_and_the_user_told(make_app, app_dirs, qtbot):
    path = app_dirs["data"] / "history.json"
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    app = make_app()
    assert "history file was damaged" in app.window.banner.text()
    assert app.window.banner.level == "warning"
    assert list(path.parent.glob("history.json.corrupt-*"))
    recognize(qtbot, app)
    assert len(json.loads(path.read_text())["entries"]) == 1


def test_paste_open_and_drop(make_app, qtbot, tmp_path):
    app = make_app()
    w = app.window
    w.show()
    QGuiApplication.clipboard().setImage(pil_to_qimage(formula_image(90, 30)))
    with qtbot.waitSignal(w.result_shown, timeout=5000):
        QTest.keyClick(w, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)     # Ctrl+V
    assert app.recognizer.images[-1].size == (90, 30)

    path = tmp_path / "formula.png"
    formula_image(100, 30).save(path)
    with qtbot.waitSignal(w.result_shown, timeout=5000):
        w.open_path(path)
    assert app.recognizer.images[-1].size == (100, 30) and app.history.entries[0].source == "file"

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(w.result_shown, timeout=5000):
        w.dropEvent(event)
    assert event.isAccepted() and app.history.entries[0].source == "drop"

    QGuiApplication.clipboard().setText("just text")
    w.paste_image()
    assert "no image" in w.banner.text()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    w.open_path(broken)
    assert "broken.png" in w.banner.text() and w.banner.level == "error"


def test_blank_and_tiny_snips_are_explained_without_the_model(make_app, qtbot):
    app = make_app()
    assert app.window.recognize_image(Image.new("RGB", (200, 80), (240, 240, 240))) is None
    assert "blank" in app.window.banner.text()
    assert app.window.recognize_image(formula_image(3, 40)) is None
    assert "too small" in app.window.banner.text()
    assert app.recognizer.images == []


def test_missing_model_says_how_to_get_one(make_app, qtbot):
    app = make_app(FakeRecognizer(missing=True), wait_ready=False)
    qtbot.waitUntil(lambda: app.service.state == "failed", timeout=5000)
    assert MODEL_HINT in app.window.banner.text() and app.window.device_label.text() == "Device: no model"
    with qtbot.waitSignal(app.window.error_shown, timeout=5000) as shown:
        app.window.recognize_image(formula_image())
    assert MODEL_HINT in shown.args[0]


def test_recognizer_warning_is_shown(make_app, qtbot):
    app = make_app(FakeRecognizer(device="cpu", warning="The GPU ran out of memory, so this formula was read on the CPU."))
    recognize(qtbot, app)
    assert "ran out of memory" in app.window.banner.text() and app.window.banner.level == "warning"
    assert app.window.result_view.latex() == r"\frac{a}{b}"


@pytest.mark.parametrize("stopped, reason", [("time", "time limit"), ("length", "length limit"),
                                             ("repetition", "repeating")])
def test_cut_short_result_is_noted_in_the_window_and_the_history(make_app, qtbot, stopped, reason):
    app = make_app(FakeRecognizer(stopped=stopped))
    w = app.window
    recognize(qtbot, app)
    assert w.result_view.latex() == r"\frac{a}{b}"          # the partial reading is still given
    note = w.banner.text()
    assert "cut short" in note and reason in note and "check the end of the formula" in note
    assert w.banner.level == "warning" and w.banner.isVisible()
    assert not w.banner._buttons                           # a note, nothing to answer
    assert "cut short" in w.result_view.status_label.text()
    item = w.history_panel.list.item(0)
    assert "cut short" in item.text() and reason in item.toolTip()
    saved = json.loads(app.history.path.read_text())["entries"][0]
    assert saved["stopped"] == stopped

    w.banner.hide()
    w.open_history_entry(app.history.entries[0].id)        # reopened later: the note comes back
    assert "cut short" in w.banner.text() and reason in w.banner.text()


def test_complete_result_has_no_cut_short_note(make_app, qtbot):
    app = make_app(FakeRecognizer(stopped="time"))
    w = app.window
    recognize(qtbot, app)
    cut = app.history.entries[0].id
    app.recognizer.stopped = None
    recognize(qtbot, app)
    assert "cut short" not in w.banner.text() and "cut short" not in w.result_view.status_label.text()
    assert "cut short" not in w.history_panel.list.item(0).text()
    assert "cut short" in w.history_panel.list.item(1).text()
    w.open_history_entry(cut)
    assert "cut short" in w.banner.text()
    w.open_history_entry(app.history.entries[0].id)       # a complete entry takes the old note down
    assert w.banner.text() == ""


def test_capture_refused_offers_paste_and_open(make_app, qtbot):
    def refuse():
        raise CaptureError("Screen capture is not possible on Wayland from this app.")

    app = make_app(capture=refuse)
    with qtbot.waitSignal(app.window.error_shown, timeout=5000) as shown:
        app.window.start_snip()
    assert "Wayland" in shown.args[0]
    labels = [b.text() for b in app.window.banner._buttons]
    assert labels == ["Paste image", "Open file…"]


def test_hotkey_degrades_with_a_message(make_app, qtbot):
    app = make_app()
    qtbot.waitUntil(lambda: bool(app.window.hotkey_message))
    assert app.window.hotkey_message == "Global hotkeys need a desktop session."


def test_preview_renders_and_explains_what_mathtext_cannot_draw(qtbot):
    from im2latex_desktop.gui.preview import PreviewWidget

    preview = PreviewWidget()
    qtbot.addWidget(preview)
    outcomes = []
    preview.rendered.connect(outcomes.append)
    for text in (r"\frac{", r"\frac{a", r"\frac{a}{b}"):   # typing: only the last is drawn
        preview.set_latex(text)
    qtbot.waitUntil(lambda: outcomes == [True], timeout=5000)
    assert not preview.image_label.pixmap().isNull() and preview.note.isHidden()
    with qtbot.waitSignal(preview.rendered, timeout=5000) as drawn:
        preview.set_latex(r"\begin{array}{c} a \end{array}")
    assert drawn.args == [False]
    assert "cannot draw" in preview.note.text() and "\\begin" in preview.note.text()
    assert not preview.note.isHidden()


def test_window_snip_flow_with_a_frozen_screen(make_app, qtbot):
    """Snip button -> overlay on the (offscreen) screen -> drag -> the exact pixels are recognized."""
    from im2latex_desktop.screenshot import Capture, ScreenCapture
    from im2latex_desktop.gui.main_window import logical_screens

    screen = logical_screens()[0]
    rng = np.random.default_rng(0)
    frozen = Image.fromarray(rng.integers(0, 256, (screen.height * 2, screen.width * 2, 3), dtype=np.uint8))

    def capture():
        from im2latex_desktop.screenshot.geometry import Monitor

        monitor = Monitor(0, 0, frozen.width, frozen.height, screen.name)
        return Capture([ScreenCapture(screen, frozen, 2.0, monitor)], "test")

    app = make_app(capture=capture)
    w = app.window
    w.show()
    with qtbot.waitSignal(w.overlay_shown, timeout=5000) as shown:
        QTest.mouseClick(w.findChild(QToolButton, "snip_button"), Qt.MouseButton.LeftButton)
    session = shown.args[0]
    overlay = session.overlays[0]
    assert not w.isVisible()   # the window hides while the screen is frozen
    with qtbot.waitSignal(w.result_shown, timeout=5000):
        QTest.mousePress(overlay, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(30, 20))
        QTest.mouseMove(overlay, QPoint(60, 40))
        QTest.mouseRelease(overlay, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(91, 47))
    crop = app.recognizer.images[-1]
    assert np.array_equal(np.asarray(crop), np.asarray(frozen)[40:94, 60:182])
    assert w.isVisible()


def frozen_capture(color=(255, 255, 255)):
    """A capture of the offscreen screen: white with one black bar, at DPR 1."""
    from im2latex_desktop.gui.main_window import logical_screens
    from im2latex_desktop.screenshot import Capture, ScreenCapture
    from im2latex_desktop.screenshot.geometry import Monitor

    screen = logical_screens()[0]
    image = Image.new("RGB", (screen.width, screen.height), color)
    image.paste((0, 0, 0), (50, 50, 90, 60))
    return lambda: Capture([ScreenCapture(screen, image, 1.0, Monitor(0, 0, screen.width, screen.height, screen.name))], "test")


def test_starting_with_snip_snips_at_once_without_showing_the_window(qtbot):
    recognizer = FakeRecognizer()
    app = DesktopApp(QGuiApplication.instance(), recognizer_factory=factory_for(recognizer), use_tray=False,
                     capture=frozen_capture())
    try:
        with qtbot.waitSignal(app.window.overlay_shown, timeout=5000) as shown:
            app.start(snip=True)
        assert not app.window.isVisible()
        session = shown.args[0]
        QTest.keyClick(session.overlays[0], Qt.Key.Key_Escape)
        assert not session.active
    finally:
        app.window.hide()
        app.shutdown()


def test_changing_device_or_model_in_the_settings_reloads_the_model(make_app, qtbot):
    recognizer = FakeRecognizer()
    factory = factory_for(recognizer)
    app = DesktopApp(QGuiApplication.instance(), recognizer_factory=factory, use_tray=False)
    try:
        with qtbot.waitSignal(app.service.model_ready, timeout=5000):
            app.start()
        assert factory.calls == [(None, None)]
        with qtbot.waitSignal(app.service.model_ready, timeout=5000):
            app.window.apply_settings(Settings(device="cpu", model_path="/models/other"))
        assert factory.calls[-1] == ("/models/other", "cpu")
        app.window.apply_settings(Settings(device="cpu", model_path="/models/other", beam_width=2))
        qtbot.wait(100)
        assert len(factory.calls) == 2      # the beam width needs no reload
    finally:
        app.window.hide()
        app.shutdown()


def test_ctrl_v_in_the_editor_pastes_text_not_an_image(make_app, qtbot):
    app = make_app()
    w = app.window
    w.show()
    recognize(qtbot, app)
    editor = w.result_view.latex_edit
    editor.setFocus()
    qtbot.waitUntil(editor.hasFocus)
    QGuiApplication.clipboard().setText("+c")
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    QTest.keyClick(editor, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert w.result_view.latex() == r"\frac{a}{b}+c"
    assert len(app.recognizer.images) == 1
