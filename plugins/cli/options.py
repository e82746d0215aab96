"""Click options that more than one command shares, or that come as a set."""

from __future__ import annotations

from typing import Any

import click

from neco.plugins.adapters import y4m

from .progress import set_quiet


def in_out_arguments(function: Any) -> Any:
    """IN and OUT, files or ``-`` for stdin / stdout."""
    function = click.argument("output_path", metavar="OUT", type=click.Path(allow_dash=True))(function)
    return click.argument("input_path", metavar="IN", type=click.Path(allow_dash=True))(function)


def device_option(function: Any) -> Any:
    return click.option(
        "--device",
        default="cpu",
        show_default=True,
        metavar="DEVICE",
        help="Where the model runs: cpu, cuda, cuda:1, ...",
    )(function)


def force_option(function: Any) -> Any:
    return click.option(
        "-y", "--force", is_flag=True, help="Overwrite OUT if it exists."
    )(function)


def quiet_option(*names: str, help: str = "No progress and no summary line on stderr; warnings and "  # noqa: A002
                 "errors still print.") -> Any:
    """``--quiet`` (commands whose ``-q`` is --quality) or ``-q/--quiet`` (the group): see `progress`."""
    return click.option(*names, "--quiet", is_flag=True, expose_value=False, callback=set_quiet, help=help)


def sequence_options(function: Any) -> Any:
    """The options of ``neco encode`` for frame sequences (raw, Y4M, video files)."""
    options = [
        click.option("--input-format", type=click.Choice(["auto", "rawvideo"]), default="auto", show_default=True,
                     help="auto: Y4M by its magic, else an image, else a video file (PyAV); "
                          "rawvideo: headerless frames (needs --size and --pix-fmt)."),
        click.option("--size", metavar="WxH", default=None, help="Frame size of rawvideo input."),
        click.option("--pix-fmt", type=click.Choice(list(y4m.RAW_PIX_FMTS)), default=None,
                     help="Pixel format of rawvideo input (yuv420p: BT.601 limited range)."),
        click.option("--rate", metavar="R", default=None,
                     help="Frame rate (25, 29.97, 30000/1001): of rawvideo input, or overriding the input's."),
        click.option("--frames", "frame_range", metavar="START:STOP", default=None,
                     help="Code only frames START (from 0) to STOP (exclusive) of a frame sequence."),
        click.option("--scale", metavar="WxH", default=None, help="Resize the frames of a frame sequence."),
    ]
    for option in reversed(options):
        function = option(function)
    return function
