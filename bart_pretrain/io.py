"""Atomic file writes: a file is written under a temporary name in the same directory, fsynced, then renamed,
so a crash (even SIGKILL) during a write leaves the previous file intact and never a half-written one.

A killed writer leaves its temporary file behind (``.<name>.<host>-<pid>.<random>.tmp``); :func:`clean_stale_tmp`
removes those whose writer is gone, at the start of a run or a data build, and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; give the final file the mode a plain open() would (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname().split(".")[0]) or "host"  # as temporary names hold it
_TMP = re.compile(r"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
_OLD_TMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")  # written before the names held host and pid
_MAX_AGE_S = 24 * 3600  # a temporary file we cannot tie to a live process on this host is stale after a day


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def stale_tmp_files(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Temporary files of :func:`atomic_open` in ``directory`` whose writer is gone: its pid no longer runs on this
    host, or (another host's, or an older name without a pid) untouched for a day."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp")
    stale = []
    for path in sorted(found):
        if not path.is_file():
            continue
        m = _TMP.match(path.name)
        if m and m["host"] == HOST:
            gone = not _alive(int(m["pid"]))
        elif m or _OLD_TMP.match(path.name):
            gone = time.time() - path.stat().st_mtime > _MAX_AGE_S
        else:
            continue  # not ours
        if gone:
            stale.append(path)
    return stale


def clean_stale_tmp(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete :func:`stale_tmp_files` of ``directory``, one line on stderr per file; returns them."""
    removed = []
    for path in stale_tmp_files(directory, recursive):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
            target = (_TMP.match(path.name) or _OLD_TMP.match(path.name))["target"]
            print(f"removed {path}: a temporary file an interrupted write of {target} left behind", file=sys.stderr)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows) -> int:
    """Write one JSON object per line (keys sorted, so equal rows give equal bytes); returns the row count."""
    n = 0
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
            n += 1
    return n
