"""The CLI's one output writer: OUT checked before any work, then written atomically.

- ``-`` is stdout (binary, refused when it is a terminal).
- An existing character device or FIFO (``/dev/null``, a named pipe) is written directly,
  like stdout, and needs no ``-y``; frame sequences refuse one (use ``-``).
- Anything else is written through `neco.plugins.atomic` (temporary file in OUT's folder,
  renamed at the end; nothing left behind on failure), and an existing OUT is replaced only
  with ``-y/--force``. `check_output` creates that temporary file before any work, so a folder
  that cannot be written (no permission, read-only, /proc, /sys, missing) fails at once; the
  file is kept for the write, and removed when the command ends without writing.

Every error names OUT as the user gave it, never the temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

import click

from neco.plugins import atomic
from neco.plugins.atomic import TargetExistsError, atomic_file, atomic_path

from .errors import STDIO, CliError


def is_stream(path: str) -> bool:
    """True when `path` is an existing character device or FIFO: written directly, never renamed over."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _exists(path: str) -> CliError:
    return CliError(f"{click.format_filename(path)} already exists; use -y/--force to overwrite")


def check_output(path: str, force: bool, *, streams: bool = True) -> None:
    """Fail before any work when the output cannot be written; a usage mistake costs no encode.

    `streams`: whether OUT may be a character device or FIFO (written directly, like stdout).
    Frame sequences are written to a temporary file renamed over OUT, so they refuse one.
    """
    if path == STDIO:
        if click.open_file(STDIO, "wb").isatty():
            raise CliError("refusing to write binary data to a terminal; redirect stdout")
        return
    name = click.format_filename(path)
    if os.path.isdir(path):
        raise CliError(f"{name}: {os.strerror(errno.EISDIR)}")
    if is_stream(path):
        if streams:
            return
        raise CliError(f"{name}: frame sequences are written to a regular file or to '-' (stdout), "
                       f"not to a device or FIFO")
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        raise CliError(f"{name}: not a regular file")
    if os.path.lexists(path) and not force:
        raise _exists(path)
    _reserve(path)


# OUT (absolute) -> its temporary file, created by `check_output` and taken by the writers below.
_reserved: dict[str, atomic.Reserved] = {}


def _reserve(path: str) -> None:
    """Create OUT's temporary file now (an OSError naming OUT when its folder cannot be written).

    Within a command it is kept for the write and released when the command ends unused;
    outside one (no click context) it is only a probe, removed at once.
    """
    key = os.path.abspath(path)
    if key in _reserved:
        return
    reserved = atomic.reserve(path)
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        atomic.release(reserved)
        return
    _reserved[key] = reserved

    def discard() -> None:
        if _reserved.get(key) is reserved:
            del _reserved[key]
            atomic.release(reserved)

    ctx.call_on_close(discard)


def _take(path: str) -> atomic.Reserved | None:
    """OUT's reserved temporary file, now owned by the caller's writer (None when there is none)."""
    return _reserved.pop(os.path.abspath(path), None)


@contextlib.contextmanager
def _refusing_to_replace(path: str) -> Iterator[None]:
    """OUT that appeared while the work ran (without force) as the CLI's one-line error."""
    try:
        yield
    except TargetExistsError:
        raise _exists(path) from None


def write_output(path: str, data: bytes, force: bool) -> None:
    """Write `data` to OUT: stdout for ``-``, a device or FIFO directly (unbuffered, so an
    error such as the ENOSPC of /dev/full surfaces once, from the write), else atomically."""
    if path == STDIO:
        stdout = click.open_file(STDIO, "wb")
        stdout.write(data)
        stdout.flush()
        return
    if is_stream(path):
        with atomic.naming(path), open(path, "wb", buffering=0) as stream:
            stream.write(data)
        return
    with _refusing_to_replace(path), atomic_file(path, replace=force, reserved=_take(path)) as f:
        f.write(data)


@contextlib.contextmanager
def binary_output(path: str, force: bool) -> Iterator[BinaryIO]:
    """A binary stream for OUT: stdout for ``-`` (written as it comes), else an atomic file."""
    if path == STDIO:
        yield click.open_file(STDIO, "wb")
        return
    with _refusing_to_replace(path), atomic_file(path, replace=force, reserved=_take(path)) as f:
        yield f


@contextlib.contextmanager
def temporary_path(path: str, force: bool) -> Iterator[str]:
    """A temporary path for a writer that opens OUT by name (PyAV), renamed over OUT at the end."""
    with _refusing_to_replace(path), atomic_path(path, replace=force, reserved=_take(path)) as tmp:
        yield tmp
