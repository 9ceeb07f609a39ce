"""History in the data folder: persists, deletes, survives corruption and damaged entries."""

from __future__ import annotations

import json

from PIL import Image

from im2latex_desktop import paths
from im2latex_desktop.history import History


def test_add_reload_delete(app_dirs):
    history = History()
    assert history.directory == paths.data_dir() == app_dirs["data"]
    history.load()
    first = history.add(r"a^{2}", 0.5, Image.new("RGB", (800, 100), "white"), "snip")
    second = history.add(r"\frac{1}{2}", 0.9, None, "paste")
    assert [e.id for e in history.entries] == [second.id, first.id]
    thumb = history.thumbnail_path(first)
    assert thumb is not None and max(Image.open(thumb).size) <= 360
    assert history.thumbnail_path(second) is None

    again = History()
    again.load()
    assert [(e.latex, e.source) for e in again.entries] == [(r"\frac{1}{2}", "paste"), ("a^{2}", "snip")]
    again.update_latex(first.id, "a^{3}")
    again.delete(second.id)
    third = History()
    third.load()
    assert [e.latex for e in third.entries] == ["a^{3}"]
    third.delete(first.id)
    assert not thumb.exists()


def test_corrupt_file_moved_aside_and_reported(app_dirs):
    path = app_dirs["data"] / "history.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "entries": [{"id": "x", "latex"')
    history = History()
    assert history.load() == []
    assert "damaged" in history.message and "moved" in history.message
    assert list(path.parent.glob("history.json.corrupt-*"))
    history.add("x", 1.0)
    assert json.loads(path.read_text())["entries"][0]["latex"] == "x"


def test_damaged_entries_are_skipped_not_the_whole_history(app_dirs):
    path = app_dirs["data"] / "history.json"
    path.parent.mkdir(parents=True)
    good = {"id": "1", "created": 10.0, "latex": "y", "confidence": 0.5, "thumbnail": "../../etc/passwd"}
    path.write_text(json.dumps({"version": 1, "entries": [good, {"id": "2"}, "junk", {"created": "soon"}]}))
    history = History()
    entries = history.load()
    assert [e.latex for e in entries] == ["y"]
    assert entries[0].thumbnail == ""   # never a path outside the thumbnails folder
    assert "3 damaged history entries were skipped" in history.message


def test_oldest_entries_pruned_with_their_thumbnails(app_dirs):
    history = History(max_entries=3)
    history.load()
    entries = [history.add(str(i), 0.1, Image.new("RGB", (20, 10), "white")) for i in range(5)]
    assert [e.latex for e in history.entries] == ["4", "3", "2"]
    assert len(list(history.thumbnail_dir.iterdir())) == 3
    assert history.thumbnail_path(entries[0]) is None


def test_cut_short_flag_persists_and_old_files_read_as_complete(app_dirs):
    path = app_dirs["data"] / "history.json"
    path.parent.mkdir(parents=True)
    old = {"id": "1", "created": 10.0, "latex": "y", "confidence": 0.5}    # written before the flag existed
    path.write_text(json.dumps({"version": 1, "entries": [old]}))
    history = History()
    assert history.load()[0].stopped == ""
    history.add("x^{2}", 0.3, None, "snip", stopped="time")
    again = History()
    again.load()
    assert [(e.latex, e.stopped) for e in again.entries] == [("x^{2}", "time"), ("y", "")]
