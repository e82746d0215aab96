"""Atomic file output, for the CLI and the bench alike: never half a file.

Bytes go to a temporary file created next to the target (same folder, so same file system
and an atomic rename), which is synced and renamed over the target only once the block that
writes it succeeded. On any failure -- an error, a full disk, Ctrl-C -- the temporary file is
removed and the target keeps its old content. Temporary files get the usual umask-derived
permissions and a hidden name, ``.<name>.<random>.tmp``.

The temporary file can be created before the work (`reserve`), so that a folder that cannot
be written fails at once rather than after it. Errors about the temporary file, the rename,
or the output running out of room (a full disk or quota) name the target, never the
temporary file.
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


# Errors that say the output could not grow: about the file being written, whatever the call.
_NO_ROOM = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name))

Reserved = tuple[str, int]  # a temporary file's name and an open descriptor


@contextlib.contextmanager
def naming(path: str | os.PathLike, tmp: str | None = None) -> Iterator[None]:
    """OSErrors about `tmp`, or that the output ran out of room, name `path` instead."""
    try:
        yield
    except OSError as exc:
        if (tmp is not None and exc.filename == tmp) or (exc.filename is None and exc.errno in _NO_ROOM):
            # OSError(errno, ...) is the matching subclass (PermissionError, ...), with one filename.
            raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
        raise


def reserve(path: str | os.PathLike) -> Reserved:
    """Create the temporary file for `path` now, in its folder: fails (OSError naming `path`)
    when that folder cannot be written. Pass it to `atomic_file` / `atomic_path`, or `release` it."""
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            with naming(path, tmp):
                return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue


def release(reserved: Reserved) -> None:
    """Close and remove a reserved temporary file that was not used."""
    tmp, fd = reserved
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


@contextlib.contextmanager
def _replacing(path: str | os.PathLike, replace: bool, reserved: Reserved | None) -> Iterator[tuple[str, int]]:
    """A new (or the reserved) temporary file next to `path` (its name and an open descriptor),
    renamed over `path` when the block succeeds, else removed."""
    tmp, fd = reserved or reserve(path)
    try:
        with naming(path, tmp):
            yield tmp, fd
            if not replace and os.path.lexists(path):
                raise TargetExistsError(path)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, replace: bool = True,
                reserved: Reserved | None = None) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content into; renamed over `path` at the end.

    replace=False: refuse (`TargetExistsError`) when `path` exists by the time the work is done.
    reserved: the temporary file `reserve` created for `path` (default: one created now).
    """
    with _replacing(path, replace, reserved) as (_tmp, fd), os.fdopen(fd, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, replace: bool = True,
                reserved: Reserved | None = None) -> Iterator[str]:
    """The name of an empty temporary file, for writers that open a path themselves (PyAV,
    matplotlib); synced and renamed over `path` when the block succeeds."""
    with _replacing(path, replace, reserved) as (tmp, fd):
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())


def write_atomic(path: str | os.PathLike, data: bytes | str, *, replace: bool = True) -> None:
    """Write `data` (text is written as UTF-8, newlines as given) to `path` atomically."""
    with atomic_file(path, replace=replace) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
