"""Errors that are the user's, not the program's: :class:`UserError` (a bad flag, config value, file or environment)
and :class:`Interrupted` (a stop signal, after the checkpoint is saved). ``bart-pretrain`` prints either as one line
and exits 2 (a user error) or 128 + the signal number; any other exception is a bug and keeps its traceback.
:func:`reading_input` marks the stretches of code that read user input, where a ``ValueError``/``TypeError`` is one;
:func:`usage_error` is how every command's parser says a bad command line (``bart_pretrain.commands.parsing``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import NoReturn

DEBUG_ENV = "BART_PRETRAIN_DEBUG"
"""Set to 1: user errors and stop signals raise with their traceback instead of one line (for bug reports)."""

ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOENT,  # no such file or directory
        errno.EACCES,  # permission denied
        errno.EPERM,
        errno.ENOTDIR,  # a path through a file
        errno.EISDIR,  # a directory where a file was expected
        errno.EROFS,  # read-only file system
        errno.ENOSPC,  # no space left on device
        errno.EDQUOT,  # disk quota exceeded
        errno.EFBIG,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.ELOOP,
    }
)
"""``OSError`` numbers that describe the user's files or machine (a path, a permission, a full disk), not a bug."""


class UserError(ValueError):
    """Bad input: its message is one line naming the flag, field or file, the value and what is allowed."""


class Interrupted(Exception):
    """Training stopped on a signal after saving a checkpoint (``message`` says where and how to resume)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process the signal ended: 143 (SIGTERM), 130 (SIGINT)."""
        return 128 + self.signum


def debugging() -> bool:
    """Whether :data:`DEBUG_ENV` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def reading_input() -> Iterator[None]:
    """Inside, code reads and checks the user's configuration and files, so a ``ValueError`` or ``TypeError`` raised
    there is about that input: it leaves as a :class:`UserError` with the same message (the original chained; with
    :data:`DEBUG_ENV`, the original itself)."""
    try:
        yield
    except UserError:
        raise
    except (ValueError, TypeError) as e:
        if debugging():
            raise
        raise UserError(str(e)) from e


def environment_error(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` about the user's files or machine (:data:`ENVIRONMENT_ERRNOS`)."""
    return isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS


def os_error_line(error: OSError) -> str:
    """``<path>: <reason>`` (``[Errno 28] No space left on device: 'x'`` reads ``x: No space left on device``)."""
    names = [n for n in (error.filename, error.filename2) if n is not None]
    reason = error.strerror or str(error)
    return f"{' -> '.join(map(str, names))}: {reason}" if names else reason


def usage_error(prog: str, message: str) -> NoReturn:
    """What a command does with a bad command line or config file: ``<prog>: error: <message>`` on one line (nested
    reasons joined), a pointer to ``--help``, exit status 2; the full usage only with :data:`DEBUG_ENV`."""
    reason = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    sys.stderr.write(f"{prog}: error: {reason}; `{prog} --help` lists every option\n")
    sys.exit(2)
