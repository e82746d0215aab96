"""How the CLI names its failures and the paths they are about (every command imports this)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import click

from neco.formats import NecoError

STDIO = "-"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class CliError(click.ClickException):
    """An expected failure: printed as one ``neco: error: ...`` line, never a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"neco: error: {self.format_message()}", file=file, err=True)


def describe(exc: BaseException) -> str:
    """One line for an expected exception, without the ``[Errno N]`` noise of OSError."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def display(path: str, stream: str) -> str:
    """A path as messages show it; ``-`` is ``<stdin>`` or ``<stdout>``."""
    return f"<{stream}>" if path == STDIO else click.format_filename(path)


def warn(message: str) -> None:
    click.echo(f"neco: warning: {message}", err=True)


@contextlib.contextmanager
def about(path: str, stream: str) -> Iterator[None]:
    """Prefix a NecoError's message with the file it is about."""
    try:
        yield
    except NecoError as exc:
        raise CliError(f"{display(path, stream)}: {describe(exc)}") from exc
