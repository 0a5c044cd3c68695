import os
import signal
import subprocess
import sys
import time

import pytest

from bart_pretrain.io import atomic_open, atomic_write_jsonl, atomic_write_text, clean_stale_tmp


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


def _killed_mid_write(path) -> None:
    """A process that dies (SIGKILL) inside atomic_open, as a killed training run or data build does."""
    code = (
        "import os, signal\nfrom bart_pretrain.io import atomic_open\n"
        f"with atomic_open({str(path)!r}, 'wb') as f:\n    f.write(b'half')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL


def test_stale_temporary_files_of_killed_writes_are_removed_saying_so(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    _killed_mid_write(tmp_path / "last.ckpt")
    _killed_mid_write(tmp_path / "sub" / "train.jsonl")
    left = sorted(p.name for p in tmp_path.rglob(".*.tmp"))
    assert len(left) == 2 and left[0].startswith(".last.ckpt.")
    with atomic_open(tmp_path / "live.txt") as f:  # a write in progress (this process) is not stale
        f.write("x")
        (tmp_path / ".notes.tmp").write_text("not ours")
        old = tmp_path / ".metrics.json.abcd1234.tmp"  # an older name without host and pid, 2 days untouched
        old.write_text("{")
        os.utime(old, (time.time() - 2 * 86400,) * 2)
        removed = clean_stale_tmp(tmp_path, recursive=True)
        assert len(list(tmp_path.glob(".live.txt.*.tmp"))) == 1
    assert sorted(p.name for p in removed) == sorted([*left, old.name])
    assert sorted(p.name for p in tmp_path.rglob(".*.tmp")) == [".notes.tmp"]
    err = capsys.readouterr().err
    assert "a temporary file an interrupted write of last.ckpt left behind" in err and err.count("removed ") == 3
    assert clean_stale_tmp(tmp_path / "sub") == []  # non-recursive, nothing left
