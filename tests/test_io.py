import os

import pytest

from bart_pretrain.io import atomic_open, atomic_write_jsonl, atomic_write_text


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_written_files_get_the_mode_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "a.txt").st_mode & 0o777) == oct(0o644)


def test_jsonl_rows_are_written_with_sorted_keys_and_counted(tmp_path):
    n = atomic_write_jsonl(tmp_path / "r.jsonl", [{"b": 1, "a": "é"}, {"a": 2}])
    assert n == 2
    assert (tmp_path / "r.jsonl").read_text(encoding="utf-8") == '{"a": "é", "b": 1}\n{"a": 2}\n'
