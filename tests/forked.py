"""Run `bart-pretrain` (or any function) in a forked child of the test process: a real, separate process (its own
pid, killable with SIGKILL, its own stdout/stderr) that does not pay the ~10 s of importing torch, Lightning and
transformers again, as a fresh interpreter would. The test of the installed console script still starts one with
:mod:`subprocess`."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path


class Forked:
    """The child running ``target()`` (its return value, an int or None for 0, is the exit code) with ``env`` added
    to its environment; :meth:`cli` runs ``bart-pretrain`` with a command line.

    ``stdout`` is a text pipe from it, to read line by line as it runs; with ``log``, the child writes its stdout to
    that file instead and ``stdout`` is None (a pipe nobody reads fills up and blocks the writer). Its stderr goes to
    an unnamed temporary file, read by :meth:`stderr`. With ``own_group``, the child leads a process group of its own
    (``os.killpg(child.pid, sig)`` reaches it and the processes it starts, and nothing of the test's)."""

    def __init__(
        self,
        target: Callable[[], int | None],
        env: dict[str, str] | None = None,
        log: str | os.PathLike | None = None,
        own_group: bool = False,
    ):
        out_r, out_w = os.pipe() if log is None else (None, os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
        self._err = tempfile.TemporaryFile()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            if out_r is not None:
                os.close(out_r)
            if own_group:  # a process group of its own (it and its workers), to signal as a scheduler does
                os.setpgid(0, 0)
            _child(target, env or {}, out_w, self._err.fileno())
        os.close(out_w)
        self.pid, self.returncode = pid, None
        self.stdout = None if out_r is None else open(out_r, buffering=1)

    @classmethod
    def cli(cls, argv: list[str], **kwargs) -> Forked:
        """``python -m bart_pretrain.cli ARGV`` in a forked child (imported here, before the fork: the child starts
        with it all). The child's ``sys.argv`` and ``__main__`` are those of that command, so a launcher that starts
        more processes by re-running the command line (Lightning's DDP) starts that command."""
        import importlib.util

        import bart_pretrain.cli

        def run() -> int:
            import __main__

            sys.argv = [bart_pretrain.cli.__file__, *argv]
            __main__.__spec__ = importlib.util.find_spec("bart_pretrain.cli")
            return bart_pretrain.cli.main(argv)

        return cls(run, **kwargs)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child (``timeout`` in seconds: SIGKILL it after that and raise ``TimeoutError``); returns the
        exit code, or minus the signal number as :class:`subprocess.Popen` does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG if deadline else 0)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"pid {self.pid} still running after {timeout} s")
            else:
                time.sleep(0.05)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait()

    def stderr(self) -> str:
        """What the child wrote on stderr so far."""
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    def close(self) -> None:
        self.kill()
        if self.stdout is not None:
            self.stdout.close()
        self._err.close()

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _child(target: Callable[[], int | None], env: dict[str, str], out_fd: int, err_fd: int) -> None:
    code = 1
    try:
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        os.environ.update(env)
        if "PYTHONPATH" in env:  # as a fresh interpreter would see it
            sys.path[:0] = [p for p in env["PYTHONPATH"].split(os.pathsep) if p]
        import torch

        torch.set_num_threads(1)  # the parent's thread pool does not survive a fork; one thread also keeps runs equal
        code = int(target() or 0)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def wait_unlocked(run_dir: str | os.PathLike, timeout: float = 60) -> None:
    """Wait until no process holds the run directory's lock, as a scheduler restarts a job once all of its processes
    are gone: a SIGKILLed run's DataLoader workers (forked, so holding the lock's file) exit only when they notice
    their parent is gone, seconds later."""
    deadline = time.monotonic() + timeout
    with open(Path(run_dir) / ".lock", "a+") as f:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{run_dir}/.lock still held after {timeout} s"
                time.sleep(0.2)
