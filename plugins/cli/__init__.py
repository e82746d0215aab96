"""The ``neco`` command line: ``encode``, ``decode``, ``info``, ``eval``, ``list`` and ``batch``.

A thin shell over the public API (`neco.encode`, `neco.decode`, `neco.info`). What it adds is
the behaviour people expect from a file tool:

- ``-`` stands for stdin / stdout (binary) wherever a file is named.
- An existing output is never replaced without ``-y/--force``.
- Outputs are written atomically: bytes go to a temporary file in the output's directory,
  which is renamed over the output only once everything succeeded. On any failure --
  an error, a full disk, Ctrl-C -- the temporary file is removed and the output is untouched.
  An existing character device or FIFO (``/dev/null``, a named pipe) is written directly,
  like stdout, and needs no ``-y``; frame sequences refuse one (use ``-``).
  Data for stdout is produced completely before the first byte is written -- except for frame
  sequences (Y4M / raw / video in, ``-f y4m`` out), which stream frame by frame (`frames`);
  a failure midway leaves a stream that reads as truncated.
- Odd images are taken the way a viewer shows them (`neco.plugins.adapters.pil_image`): EXIF
  orientation applied, CMYK to sRGB, 16-bit to 8 bits, palette to RGB, alpha dropped with a warning. An
  animated or multi-page image is a frame sequence: all its frames go into one `.neco`, which
  ``neco decode`` writes back as an animated GIF or WebP (or Y4M, or a video).
- ``neco decode --lenient`` decodes what it can of a damaged file (`neco.open(strict=False)`)
  and reports each loss as a warning; by default any damage is an error.
- Expected failures (a corrupt or unsupported file, a missing input, an unreadable image,
  an OS error) print one line, ``neco: error: <message>``, on stderr and exit with status 1;
  Ctrl-C prints one line and exits with 130. Usage errors exit with 2, as click does.
  Anything else is a bug and keeps its traceback.
- Progress and summaries go to stderr, so stdout stays clean for data: a progress bar while long
  work runs, when stderr is a terminal (`progress`), then one summary line. ``neco -q CMD`` or
  ``CMD --quiet`` prints neither (warnings and errors still print).

This package: the group and its error handling here; one module per command (`encode_command`,
`decode_command`, `info_command`, `eval_command`, `list_command`, `batch_command`); `errors` (`CliError`, how
paths are named), `options` (shared click options), `inputs` (files, stdin, input images),
`output` (the one output writer) and `frames` (frame sequences: Y4M, raw and video files).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, NoReturn

import click
from PIL import Image

import neco

from .batch_command import batch
from .decode_command import decode
from .encode_command import encode
from .errors import EXIT_INTERRUPTED, CliError, describe
from .eval_command import evaluate
from .info_command import info
from .list_command import listing
from .options import quiet_option
from . import progress


def _show_warning(message: Warning | str, *_args: Any, **_kwargs: Any) -> None:
    """Warnings (alpha dropped, a large image) as one ``neco: warning:`` line, not a source dump."""
    progress.write(f"neco: warning: {' '.join(str(message).split())}")


class _EchoHandler(logging.Handler):
    """Library progress (e.g. long encoder efforts, logged at INFO): on the progress bar when one
    is drawn, else as ``neco: ...`` lines; none with -q. Warnings always print."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            progress.write(f"neco: warning: {message}")
        elif not progress.note(message):
            progress.echo(f"neco: {message}")


class _NecoGroup(click.Group):
    """Translates expected failures of every subcommand into `CliError`.

    Done here rather than in `main` so that click's `CliRunner` (the tests) sees the same
    behaviour as the installed ``neco`` script.
    """

    def invoke(self, ctx: click.Context) -> Any:
        logger, handler = logging.getLogger("neco"), _EchoHandler()
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except BrokenPipeError:
            raise  # the reader went away (`| head`): click exits quietly
        except (neco.NecoError, OSError, Image.DecompressionBombError) as exc:
            raise CliError(describe(exc)) from exc
        except KeyboardInterrupt as exc:
            raise CliError("interrupted", EXIT_INTERRUPTED) from exc
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"neco {neco.__version__}")
        ctx.exit()


@click.group(cls=_NecoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@quiet_option("-q", help="No progress and no summary lines on stderr (also --quiet after encode, decode and "
                         "eval, whose -q is --quality); warnings and errors still print.")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """neco: a neural image codec.

    Use "-" for stdin / stdout. Outputs are written atomically and never overwritten
    without -y/--force. Long work shows progress on stderr when it is a terminal.
    """


for _command in (batch, decode, encode, evaluate, info, listing):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``neco`` script."""
    cli.main(args=argv, prog_name="neco")
    raise AssertionError("click's standalone main always exits")  # pragma: no cover


if __name__ == "__main__":
    main()