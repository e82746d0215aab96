"""Progress on stderr while long work runs, drawn by tqdm: only when stderr is a terminal and
neither ``-q`` (before the command) nor ``--quiet`` was given. Elsewhere nothing is drawn.

- `frames`: a bar over frames (done / total when known, elapsed, rate, ETA); yields the
  ``progress(done, total)`` callback `neco.encode_frames` takes. `counted` wraps an iterable.
- `working`: one line for work that reports no steps (a still image, a rate search, a save):
  what and the elapsed time, redrawn every second.
- `Progress`: ``neco eval``'s bar over its measurements, with log lines printed above it.

Every bar also redraws once a second, so the elapsed time moves during a long frame, and shows
the last library progress message (`note`, e.g. a refinement's steps) after its counts. Bars
are cleared when their work ends: the command's summary line follows.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import click
from tqdm import tqdm

from .errors import STDIO

QUIET = "neco.quiet"  # key in click's context meta, shared by the group and its commands
REDRAW_SECONDS = 1.0

_bars: list[tqdm] = []  # open bars, innermost last


def quiet() -> bool:
    """Whether ``-q`` / ``--quiet`` was given to this invocation."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(QUIET))


def set_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """Callback of the ``--quiet`` options (`options.quiet_option`)."""
    if value:
        ctx.meta[QUIET] = True


def stderr_is_terminal() -> bool:
    return sys.stderr is not None and sys.stderr.isatty()  # sys.stderr as now (click's test runner swaps it)


def shown() -> bool:
    """Whether progress is drawn: stderr is a terminal and no ``-q``."""
    return not quiet() and stderr_is_terminal()


def echo(line: str) -> None:
    """A summary line on stderr, unless ``-q``."""
    if not quiet():
        write(line)


def write(line: str) -> None:
    """A line on stderr, above the bars being drawn (a warning, a log line)."""
    if not _bars:
        click.echo(line, err=True)
        return
    with tqdm.get_lock():  # reentrant; the redrawing threads wait
        for bar in _bars:
            bar.clear()
        click.echo(line, err=True)
        for bar in _bars:
            bar.refresh()


def label(verb: str, path: str) -> str:
    """A bar's label: the verb and the file's name (bars are one line: no folders)."""
    return f"{verb} {'<stdin>' if path == STDIO else os.path.basename(click.format_filename(path))}"


def note(message: str) -> bool:
    """Show a library progress message after the counts of the innermost bar; False when none is drawn."""
    if not _bars:
        return False
    _bars[-1].set_postfix_str(message)
    return True


@contextlib.contextmanager
def _bar(what: str, total: int | None, **options: Any) -> Iterator[tqdm | None]:
    """An open tqdm bar on stderr, redrawn every second; None when progress is not shown."""
    if not shown():
        yield None
        return
    bar = tqdm(desc=what, total=total or None, file=sys.stderr, leave=False, dynamic_ncols=True, smoothing=0,
               miniters=1, **options)
    stop = threading.Event()

    def redraw() -> None:
        while not stop.wait(REDRAW_SECONDS):
            bar.refresh()

    ticker = threading.Thread(target=redraw, name="neco-progress", daemon=True)
    ticker.start()
    _bars.append(bar)
    try:
        yield bar
    finally:
        _bars.remove(bar)
        stop.set()
        ticker.join()
        bar.close()


@contextlib.contextmanager
def frames(what: str, total: int | None = None, unit: str = "frame") -> Iterator[Callable[[int, int | None], None]]:
    """A bar over frames (or other `unit`s: ``neco batch``'s files); yields ``progress(done, total)``
    (`total`: the caller's when it is None)."""
    with _bar(what, total, unit=unit) as bar:
        def progress(done: int, known: int | None = None) -> None:
            if bar is None:
                return
            if known and bar.total != known:
                bar.total = known
            bar.update(done - bar.n)

        yield progress


def counted(items: Iterable[Any], what: str, total: int | None = None) -> Iterator[Any]:
    """`items`, one at a time, counted on a bar of frames."""
    with frames(what, total) as progress:
        for done, item in enumerate(items, 1):
            yield item
            progress(done)


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """``what: elapsed`` on one line while the work inside runs (no steps to count)."""
    with _bar(what, None, bar_format="{desc}: {elapsed}{postfix}"):
        yield


class Progress:
    """``neco eval``'s measurements: a bar (done / total, elapsed, rate and ETA of the fresh
    measurements: cached ones take no time) and, printed above it, log lines; without a
    terminal, the log lines only."""

    def __init__(self, total: int) -> None:
        self._stack = contextlib.ExitStack()
        self._bar = self._stack.enter_context(_bar("eval", total, unit="task"))

    def advance(self, what: str, cached: bool) -> None:
        if self._bar is None:
            return
        if cached:
            self._bar.initial += 1  # tqdm's rate (smoothing 0) is (n - initial) / elapsed
        self._bar.set_postfix_str(what, refresh=False)
        self._bar.update()

    def log(self, line: str) -> None:
        write(line)

    def close(self) -> None:
        self._stack.close()
        self._bar = None
