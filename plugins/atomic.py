"""Atomic file output, for the CLI and the bench alike: never half a file.

Bytes go to a temporary file created next to the target (same folder, so same file system
and an atomic rename), which is synced and renamed over the target only once the block that
writes it succeeded. On any failure -- an error, a full disk, Ctrl-C -- the temporary file is
removed and the target keeps its old content. Temporary files get the usual umask-derived
permissions and a hidden name, ``.<name>.<random>.tmp``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO


class TargetExistsError(FileExistsError):
    """The target appeared while the work ran, and replacing it was not allowed."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path))


@contextlib.contextmanager
def _replacing(path: str | os.PathLike, replace: bool) -> Iterator[tuple[str, int]]:
    """A new temporary file next to `path` (its name and an open descriptor), renamed over
    `path` when the block succeeds, else removed."""
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        yield tmp, fd
        if not replace and os.path.lexists(path):
            raise TargetExistsError(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, replace: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content into; renamed over `path` at the end.

    replace=False: refuse (`TargetExistsError`) when `path` exists by the time the work is done.
    """
    with _replacing(path, replace) as (_tmp, fd), os.fdopen(fd, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, replace: bool = True) -> Iterator[str]:
    """The name of an empty temporary file, for writers that open a path themselves (PyAV,
    matplotlib); synced and renamed over `path` when the block succeeds."""
    with _replacing(path, replace) as (tmp, fd):
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())


def write_atomic(path: str | os.PathLike, data: bytes | str, *, replace: bool = True) -> None:
    """Write `data` (text is written as UTF-8, newlines as given) to `path` atomically."""
    with atomic_file(path, replace=replace) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
