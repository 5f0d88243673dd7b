"""``liftgs.atomic``: a write that fails leaves the previous file (or folder) whole."""

from __future__ import annotations

import json

import pytest

from liftgs.atomic import atomic_directory, atomic_open, is_temporary, write_json_atomic, write_text_atomic


def test_a_completed_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_written_files_and_folders_have_the_modes_plain_writes_give(tmp_path):
    write_text_atomic(tmp_path / "atomic.txt", "a")
    (tmp_path / "plain.txt").write_text("a")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode
    with atomic_directory(tmp_path / "atomic") as folder:
        (folder / "a.txt").write_text("a")
    (tmp_path / "plain").mkdir()
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_an_interrupted_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"intact")
    with pytest.raises(KeyboardInterrupt), atomic_open(target, "wb") as file:
        file.write(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"intact"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_json_refuses_nan_and_writes_nothing(tmp_path):
    target = tmp_path / "result.json"
    with pytest.raises(ValueError):
        write_json_atomic(target, {"threshold": float("nan")})
    assert not target.exists()
    write_json_atomic(target, {"threshold": 0.5})
    assert json.loads(target.read_text()) == {"threshold": 0.5}


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "scene"
    with pytest.raises(RuntimeError), atomic_directory(target) as partial:
        (partial / "a.txt").write_text("a")
        assert is_temporary(partial)
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as partial:
        (partial / "a.txt").write_text("a")
    with atomic_directory(target) as partial:
        (partial / "b.txt").write_text("b")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]
