"""A failed write keeps the old file and leaves no temporary behind."""

import pytest

from model.atomic import atomic_write


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_write_replaces_and_is_readable(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    with atomic_write(path, "wb") as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and oct(path.stat().st_mode & 0o777) == "0o644"
