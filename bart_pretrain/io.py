"""Atomic file writes: a file is written under a temporary name in the same directory, fsynced, then renamed,
so a crash (even SIGKILL) during a write leaves the previous file intact and never a half-written one.

A killed writer leaves its temporary file behind (``.<name>.<host>-<pid>.<random>.tmp``); :func:`clean_stale_tmp`
removes those whose writer is gone, at the start of a run or a data build, and says so. Run directories:
:class:`DirectoryLock` (one run at a time), :func:`move_aside` (start over, nothing deleted), and the up-front
checks that an output can be written (:func:`check_writable_file`, :func:`check_writable_dir`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
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

from bart_pretrain.errors import UserError


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
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if e.errno is not None and e.filename is None:  # a write's error (disk full, ...) names no file: name ours
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
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


# --- run directories ------------------------------------------------------------------------------------------
LOCK_NAME = ".lock"


class DirectoryLock:
    """An exclusive ``fcntl.flock`` on ``<directory>/.lock``, held from :meth:`acquire` to :meth:`release` (or the
    process's end: the kernel drops the lock of a killed process, so a stale ``.lock`` file never blocks a run). The
    file records the holder's host and pid, for the message another run gets."""

    def __init__(self, directory: str | os.PathLike, what: str = "--run_dir"):
        self.directory, self.what = Path(directory), what
        self.path = self.directory / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> DirectoryLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise UserError(
                f"{self.what} {self.directory}: another run is using it ({holder}, holding {self.path}); wait for it "
                "to end, or pick another directory"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.truncate(0)
            self._file.close()  # closing the file drops the flock
            self._file = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire() if self._file is None else self

    def __exit__(self, *exc) -> None:
        self.release()


def move_aside(directory: str | os.PathLike, keep: tuple[str, ...] = (LOCK_NAME,)) -> Path | None:
    """Move everything in ``directory`` but ``keep`` into a new sibling ``<directory>.old-<YYYYmmdd-HHMMSS>`` (renames
    on one file system: nothing is copied or deleted); returns it, or None when there was nothing to move."""
    directory = Path(directory)
    entries = sorted(p for p in directory.iterdir() if p.name not in keep) if directory.is_dir() else []
    if not entries:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = directory.with_name(f"{directory.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = directory.with_name(f"{directory.name}.old-{stamp}-{n}")
    target.mkdir(parents=True)
    for entry in entries:
        os.replace(entry, target / entry.name)
    return target


def check_writable_dir(directory: str | os.PathLike, what: str, shown: str | os.PathLike | None = None) -> None:
    """Raise :class:`UserError` unless ``directory`` is, or can be created as, a directory this process may write:
    checked before any work, so that hours of work do not end at the first write. ``what`` names the flag, ``shown``
    the value (default: ``directory``)."""
    directory = Path(directory)
    shown = directory if shown is None else shown
    existing = directory
    while not existing.exists():
        if existing.is_symlink():  # a dangling link
            raise UserError(f"{what} {shown}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        detail = "" if existing == Path(shown) else f" ({existing} is a file)"
        raise UserError(f"{what} {shown}: not a directory{detail}; give a path in a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only(existing) else "permission denied"
        where = "" if existing == Path(shown) else f" (in {existing})"
        raise UserError(f"{what} {shown}: cannot write there{where}: {reason}")


def check_writable_file(path: str | os.PathLike, what: str) -> None:
    """Raise :class:`UserError` unless ``path`` can be written as a file (see :func:`check_writable_dir`)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path}: is a directory; give a file path")
    check_writable_dir(path.parent, what, shown=path)


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError as e:  # pragma: no cover - statvfs on an odd file system
        return e.errno == errno.EROFS
