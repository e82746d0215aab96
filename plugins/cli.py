"""The ``neco`` command line: ``encode``, ``decode``, ``info``, ``eval`` and ``list``.

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
  sequences (Y4M / raw / video in, ``-f y4m`` out), which stream frame by frame
  (`neco.plugins.video_cli`); a failure midway leaves a stream that reads as truncated.
- Odd images are taken the way a viewer shows them (`image_input.to_rgb_array`): EXIF orientation
  applied, CMYK to sRGB, 16-bit to 8 bits, palette to RGB, alpha dropped with a warning. An
  animated or multi-page image is a frame sequence: all its frames go into one `.neco`, which
  ``neco decode`` writes back as an animated GIF or WebP (or Y4M, or a video).
- ``neco decode --lenient`` decodes what it can of a damaged file (`neco.open(strict=False)`)
  and reports each loss as a warning; by default any damage is an error.
- Expected failures (a corrupt or unsupported file, a missing input, an unreadable image,
  an OS error) print one line, ``neco: error: <message>``, on stderr and exit with status 1;
  Ctrl-C prints one line and exits with 130. Usage errors exit with 2, as click does.
  Anything else is a bug and keeps its traceback.
- Progress summaries go to stderr, so stdout stays clean for data.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from fractions import Fraction
import math
import os
import secrets
import stat
import time
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

import click
import numpy as np
from PIL import Image, UnidentifiedImageError

import neco
from neco import image_input
from neco.formats import PixelFormat
from neco.plugins import av_io, video_cli
from neco.plugins.eval_cli import eval_command
from neco.plugins.eval_metrics import psnr_rgb
from neco.plugins.registry import list_command

STDIO = "-"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
# Image formats a multi-frame .neco decodes to as an animation (APNG and multi-page TIFF are
# left out: people read a .png or .tiff as one picture).
ANIMATED_FORMATS = ("GIF", "WEBP")


class CliError(click.ClickException):
    """An expected failure: printed as one ``neco: error: ...`` line, never a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"neco: error: {self.format_message()}", file=file, err=True)


def _describe(exc: BaseException) -> str:
    """One line for an expected exception, without the ``[Errno N]`` noise of OSError."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _show_warning(message: Warning | str, *_args: Any, **_kwargs: Any) -> None:
    """Warnings (alpha dropped, a large image) as one ``neco: warning:`` line, not a source dump."""
    click.echo(f"neco: warning: {' '.join(str(message).split())}", err=True)


class _EchoHandler(logging.Handler):
    """Library progress (e.g. long encoder efforts, logged at INFO) as ``neco: ...`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"neco: {record.getMessage()}", err=True)


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
            raise CliError(_describe(exc)) from exc
        except KeyboardInterrupt as exc:
            raise CliError("interrupted", EXIT_INTERRUPTED) from exc
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


def _display(path: str, stream: str) -> str:
    return f"<{stream}>" if path == STDIO else click.format_filename(path)


@contextlib.contextmanager
def _about(path: str, stream: str) -> Iterator[None]:
    """Prefix a NecoError's message with the file it is about."""
    try:
        yield
    except neco.NecoError as exc:
        raise CliError(f"{_display(path, stream)}: {_describe(exc)}") from exc


def _stdin() -> Any:
    """Binary stdin, refused when it is a terminal."""
    stdin = click.open_file(STDIO, "rb")
    if stdin.isatty():
        raise CliError("refusing to read binary data from a terminal; pipe a file into stdin")
    return stdin


def _read_input(path: str) -> bytes:
    """All bytes of a file, or of stdin for ``-``."""
    if path == STDIO:
        return _stdin().read()
    with open(path, "rb") as f:
        return f.read()


def _check_input(path: str) -> None:
    """One-line errors for an input that is a directory or an empty file (a missing one fails on open)."""
    if path == STDIO:
        return
    if os.path.isdir(path):
        raise CliError(f"{click.format_filename(path)}: is a directory")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise CliError(f"{click.format_filename(path)}: empty file")


def _is_stream(path: str) -> bool:
    """True when `path` is an existing character device or FIFO: written directly, never renamed over."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _check_output(path: str, force: bool, *, streams: bool = True) -> None:
    """Fail before any work when the output cannot be written; a usage mistake costs no encode.

    `streams`: whether OUT may be a character device or FIFO (written directly, like stdout).
    The atomic writers of frame sequences (`video_cli.atomic_path`) would rename a file over
    one, so they refuse it.
    """
    if path == STDIO:
        if click.open_file(STDIO, "wb").isatty():
            raise CliError("refusing to write binary data to a terminal; redirect stdout")
        return
    name = click.format_filename(path)
    if os.path.isdir(path):
        raise CliError(f"{name}: is a directory")
    if _is_stream(path):
        if streams:
            return
        raise CliError(f"{name}: frame sequences are written to a regular file or to '-' (stdout), "
                       f"not to a device or FIFO")
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        raise CliError(f"{name}: not a regular file")
    if os.path.lexists(path) and not force:
        raise CliError(f"{name} already exists; use -y/--force to overwrite")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"{click.format_filename(directory)}: no such directory")


def _write_output(path: str, data: bytes, force: bool) -> None:
    """Write `data` to `path` atomically (temp file + `os.replace`), or to stdout for ``-``.

    The temporary file lives next to the output (same file system, so the rename is atomic)
    and is created with the usual umask-derived permissions. Whatever goes wrong -- including
    KeyboardInterrupt -- it is removed and an existing output keeps its old content. A
    character device or FIFO is written directly (unbuffered, so an error such as the
    ENOSPC of /dev/full surfaces once, from the write).
    """
    if path == STDIO:
        stdout = click.open_file(STDIO, "wb")
        stdout.write(data)
        stdout.flush()
        return
    if _is_stream(path):
        with open(path, "wb", buffering=0) as stream:
            stream.write(data)
        return
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if os.path.lexists(path) and not force:  # appeared while we were working
            raise CliError(f"{click.format_filename(path)} already exists; use -y/--force to overwrite")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _open_image(path: str, data: bytes) -> Image.Image:
    """Decode an input image held in memory (stdin) with Pillow, fully, so every failure surfaces here."""
    name = _display(path, "stdin")
    if not data:
        raise CliError(f"{name}: empty input")
    image = _pillow_open(io.BytesIO(data), name)
    if image is None:
        raise CliError(f"{name}: not an image Pillow can read")
    return _load_image(image, name)


def _probe_image(path: str) -> Image.Image | None:
    """The image file at `path`, opened (header only), or None when Pillow does not know it (Y4M, video)."""
    return _pillow_open(path, click.format_filename(path))


def _pillow_open(source: str | io.BytesIO, name: str) -> Image.Image | None:
    """`Image.open`, with a decompression bomb -- an image over `Image.MAX_IMAGE_PIXELS`, which
    Pillow only warns about up to twice that -- as a one-line error. None: not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source)
    except UnidentifiedImageError:
        return None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CliError(f"{name}: {_describe(exc)}") from exc


def _load_image(image: Image.Image, name: str) -> Image.Image:
    """Decode the pixels of an opened image, so every failure of the file surfaces here.

    Pillow reports a damaged file as OSError ("image file is truncated") and, from some
    plugins, SyntaxError; both become one line naming the input. 16-bit RGB, which Pillow
    delivers as 8 bits, is only visible before loading: the warning is given here.
    """
    if image_input.high_bit_depth_truncated(image):
        warnings.warn(image_input.HIGH_BIT_DEPTH_WARNING, stacklevel=2)
    try:
        image.load()
    except (OSError, SyntaxError) as exc:
        raise CliError(f"{name}: {_describe(exc)}") from exc
    return image


def _animation_rate(image: Image.Image, frames: range, name: str) -> Fraction | None:
    """Frame rate of an animated image from its frame durations (ms), checking every frame's size.

    None when the durations are missing or zero (multi-page TIFF; GIFs that say "as fast as
    possible"). Durations that vary are averaged, with a warning: a `.neco` has one rate.
    """
    durations, size = [], None
    for index in frames:
        try:
            image.seek(index)
            if image.format == "WEBP":
                image.load()  # WebP tells a frame's duration only once it is decoded
        except (EOFError, OSError, SyntaxError) as exc:
            raise CliError(f"{name}: frame {index}: {_describe(exc)}") from exc
        size = size or image.size
        if image.size != size:
            raise CliError(f"{name}: frame {index} is {image.width}x{image.height} but frame {frames.start} is "
                           f"{size[0]}x{size[1]}; the frames of a .neco share one size (choose some with --frames)")
        durations.append(image.info.get("duration") or 0)
    image.seek(frames.start)
    if not all(d > 0 for d in durations):
        return None
    if max(durations) != min(durations):
        warnings.warn(f"frame durations vary ({min(durations):g} to {max(durations):g} ms); coded at one "
                      f"constant rate from their mean (use --rate to choose it)", stacklevel=2)
    mean = Fraction(sum(Fraction(d).limit_denominator(1000) for d in durations), len(durations))
    return Fraction(1000) / mean.limit_denominator(1000)


def _animation_frames(image: Image.Image, frames: range, scale: tuple[int, int] | None,
                      name: str) -> Iterator[Image.Image]:
    """The frames of an animated image, one loaded at a time (the same object, seeked)."""
    for index in frames:
        try:
            image.seek(index)
            image.load()
        except (EOFError, OSError, SyntaxError) as exc:
            raise CliError(f"{name}: frame {index}: {_describe(exc)}") from exc
        yield image if scale is None or scale == image.size else image.resize(scale, Image.Resampling.BILINEAR)


def _encode_animation(image: Image.Image, input_path: str, output_path: str, force: bool,
                      sequence: dict[str, Any], **coding: Any) -> str:
    """Code every frame (or --frames) of an animated / multi-page image into OUT; the summary line."""
    name = _display(input_path, "stdin")
    _check_output(output_path, force, streams=False)
    count = image.n_frames
    first, stop = video_cli.parse_frames(sequence.get("frame_range"))
    frames = range(first, min(count, stop) if stop is not None else count)
    if not frames:
        raise CliError(f"{name}: --frames {sequence['frame_range']} selects none of its {count} frames")
    scale = video_cli.parse_size(sequence.get("scale"), "'--scale'")
    rate = video_cli.parse_rate(sequence.get("rate")) or _animation_rate(image, frames, name)
    with video_cli.binary_output(output_path, force) as out, _about(input_path, "stdin"):
        result = neco.encode_frames(_animation_frames(image, frames, scale, name), out, frame_rate=rate,
                                    num_frames=len(frames), **coding)
    shown = f" @ {rate} fps" if rate else ""
    return (f"{result.frames} of {count} frame(s) {result.width}x{result.height}{shown} ({image.format}), "
            f"{result.bpp:.3f} bpp, {result.bytes_written:,} bytes")


def _save_format(out: str, fmt: str | None) -> str:
    """The Pillow format name for an output: from ``-f`` (a format or extension) or OUT's suffix."""
    Image.init()
    extensions = Image.registered_extensions()
    if fmt is not None:
        key = fmt.lower().lstrip(".")
        name = extensions.get(f".{key}") or (key.upper() if key.upper() in Image.SAVE else None)
        if name is None or name not in Image.SAVE:
            raise click.BadParameter(f"unknown image format {fmt!r}", param_hint="'-f' / '--format'")
        return name
    if out == STDIO:
        raise click.UsageError("writing to stdout needs -f/--format (e.g. -f png)")
    suffix = os.path.splitext(out)[1].lower()
    name = extensions.get(suffix)
    if name is None or name not in Image.SAVE:
        raise click.UsageError(
            f"cannot tell the output format from {click.format_filename(out)!r}; use -f/--format"
        )
    return name


def _device_option(function: Any) -> Any:
    return click.option(
        "--device",
        default="cpu",
        show_default=True,
        metavar="DEVICE",
        help="Where the model runs: cpu, cuda, cuda:1, ...",
    )(function)


def _force_option(function: Any) -> Any:
    return click.option(
        "-y", "--force", is_flag=True, help="Overwrite OUT if it exists."
    )(function)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"neco {neco.__version__}")
        ctx.exit()


@click.group(cls=_NecoGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    without -y/--force.
    """


@cli.command()
@click.argument("input_path", metavar="IN", type=click.Path(allow_dash=True))
@click.argument("output_path", metavar="OUT", type=click.Path(allow_dash=True))
@click.option(
    "-q",
    "--quality",
    type=click.FloatRange(0, 100),
    default=None,
    help="Quality 0-100, higher is better and larger  [default: 75].",
)
@click.option(
    "-b",
    "--bpp",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Target rate in bits per pixel (searched); excludes --quality.",
)
@click.option(
    "-e",
    "--effort",
    type=click.IntRange(0, 3),
    default=0,
    show_default=True,
    help="Encoder effort: 0 is one analysis pass and a closed-form fit of the decoder's last "
    "layer; 1-3 also refine the latents for this image and fit more of the decoder to it "
    "(smaller files at the same quality, much slower to encode; decoding takes the same time).",
)
@click.option("--model", metavar="NAME", default=None,
              help="Model id (see `neco list`)  [default: the shipped image model].")
@_device_option
@_force_option
@video_cli.encode_options
def encode(
    input_path: str,
    output_path: str,
    quality: float | None,
    bpp: float | None,
    effort: int,
    model: str | None,
    device: str,
    force: bool,
    **sequence: Any,
) -> None:
    """Encode the image or frame sequence IN into the .neco file OUT.

    IN is an image (any format Pillow reads), a Y4M stream (ffmpeg -f yuv4mpegpipe), raw
    frames (--input-format rawvideo) or a video file (PyAV). Frame sequences are coded frame
    by frame and stream to OUT.

    Images are coded as a viewer shows them: EXIF orientation applied (the EXIF carried
    says upright), CMYK converted to sRGB (through its ICC profile when it has a usable
    one), 16-bit samples reduced to 8 bits, palette images to RGB; greyscale stays
    greyscale; alpha is dropped (neco codes colour only), with a warning when some pixel was
    not opaque. ICC profiles and EXIF are carried. An animated GIF, PNG or WebP, or a
    multi-page TIFF, is a frame sequence: all its frames (or --frames) go into one .neco,
    at the rate of its frame durations (or --rate); it decodes to an animated GIF or WebP,
    Y4M or a video.
    """
    if quality is not None and bpp is not None:
        raise click.UsageError("--quality and --bpp are mutually exclusive")
    _check_output(output_path, force)
    _check_input(input_path)
    start = time.perf_counter()
    coding = {"quality": quality, "bpp": bpp, "effort": effort, "device": device, "model": model}
    image = None
    if input_path != STDIO and sequence.get("input_format") == "auto":
        image = _probe_image(input_path)
    if image is None:
        with _about(input_path, "stdin"):
            source = video_cli.open_source(input_path, sequence, _stdin() if input_path == STDIO else None)
            if isinstance(source, video_cli.FrameSource):
                _check_output(output_path, force, streams=False)
                summary = video_cli.encode_source(source, output_path, force, **coding)
        if isinstance(source, video_cli.FrameSource):
            click.echo(f"{_display(input_path, 'stdin')} -> {_display(output_path, 'stdout')}: {summary}", err=True)
            return
        image = _open_image(input_path, _read_input(input_path) if source is None else source)
    with image:  # closes the file an image from a path keeps open (all of them, for animations)
        summary = _encode_image(_load_image(image, _display(input_path, "stdin")), input_path, output_path, force,
                                sequence, coding)
    click.echo(f"{_display(input_path, 'stdin')} -> {_display(output_path, 'stdout')}: {summary}, "
               f"{time.perf_counter() - start:.1f} s", err=True)


def _encode_image(image: Image.Image, input_path: str, output_path: str, force: bool, sequence: dict[str, Any],
                  coding: dict[str, Any]) -> str:
    """Code a loaded still image, or every frame of an animated one, into OUT; the summary line."""
    if getattr(image, "is_animated", False):
        return _encode_animation(image, input_path, output_path, force, sequence, **coding)
    if sequence.get("frame_range") or sequence.get("scale") or sequence.get("rate"):
        raise click.UsageError("--frames, --scale and --rate apply to frame sequences, not to a still image")
    with _about(input_path, "stdin"):
        data = neco.encode(image, **coding)
    _write_output(output_path, data, force)
    width, height = image.size
    return f"{width}x{height}, {8 * len(data) / (width * height):.3f} bpp, {len(data):,} bytes"


@cli.command()
@click.argument("input_path", metavar="IN", type=click.Path(allow_dash=True))
@click.argument("output_path", metavar="OUT", type=click.Path(allow_dash=True))
@click.option(
    "-f",
    "--format",
    "fmt",
    metavar="FORMAT",
    default=None,
    help="Output format: an image format (png, jpg, webp, tiff, ...), y4m, or a video container "
    "(mp4, mkv, webm, mov, avi); default: from OUT's extension. Required when OUT is -.",
)
@click.option("--reference", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Original image: also print the RGB PSNR of the decoded image against it.")
@click.option("--vcodec", default=av_io.DEFAULT_VCODEC, show_default=True,
              help="Encoder of a video OUT (libx264, libx265, libsvtav1, ffv1, ...).")
@click.option("--pix-fmt", type=click.Choice(list(av_io.PIX_FMTS)), default=None,
              help="Chroma of y4m / video output  [default: yuv420p; yuv444p for odd sizes].")
@click.option("--lenient", is_flag=True,
              help="Decode what can be decoded of a damaged file: a chunk that fails its check is skipped "
                   "and reported (a warning each); a truncated stream gives the frames before the cut. "
                   "Default: strict, any damage is an error.")
@_device_option
@_force_option
def decode(input_path: str, output_path: str, fmt: str | None, reference: str | None, vcodec: str,
           pix_fmt: str | None, lenient: bool, device: str, force: bool) -> None:
    """Decode the .neco file IN into the image OUT, or its frames into an animated GIF or WebP,
    Y4M or a video file."""
    target = video_cli.video_target(output_path, fmt)
    if target is not None:
        if reference is not None:
            raise click.UsageError("--reference applies to image output")
        _check_output(output_path, force, streams=False)
        start = time.perf_counter()
        with contextlib.ExitStack() as stack, _about(input_path, "stdin"):
            stream = _stdin() if input_path == STDIO else stack.enter_context(open(input_path, "rb"))
            reader = neco.open(stream, device=device, strict=not lenient)
            count = video_cli.decode_to(target, reader, output_path, force, vcodec=vcodec, pix_fmt=pix_fmt)
        header = reader.header
        losses = f" ({len(reader.lost)} loss(es) skipped)" if lenient and reader.lost else ""
        click.echo(f"{_display(input_path, 'stdin')} -> {_display(output_path, 'stdout')}: {count} frame(s) "
                   f"{header.width}x{header.height}{losses}, {target}, {time.perf_counter() - start:.1f} s", err=True)
        return
    save_format = _save_format(output_path, fmt)
    _check_output(output_path, force)
    start = time.perf_counter()
    data = _read_input(input_path)
    name = _display(input_path, "stdin")
    with _about(input_path, "stdin"):
        if lenient:  # a damaged file has no trustworthy count before decoding
            frames = _decoded_frames(data, device, strict=False)
            count = len(frames)
        else:
            details = neco.info(data)  # no model runs: refuse early what cannot be written
            count = details.get("frames", 1)
        if count > 1 and save_format not in ANIMATED_FORMATS:
            raise CliError(f"{name} holds {count} frames and neco writes {save_format} as a still image: "
                           f"write an animated GIF or WebP, -f y4m, or a video (.mp4, .mkv, ...)")
        if count > 1 and reference is not None:
            raise click.UsageError("--reference applies to still images")
        if not lenient:
            frames = _decoded_frames(data, device) if details["kind"] == "video" else [neco.decode(data, device=device)]
    if not frames:
        raise CliError(f"{name}: no frame could be decoded" if lenient else f"{name}: the stream holds no frame")
    image = frames[0]
    quality = f", {_psnr(reference, image)}" if reference else ""
    options = {key: image.info[key] for key in ("icc_profile", "exif") if image.info.get(key)}
    if len(frames) > 1:
        options.update(save_all=True, append_images=frames[1:])
        if image.info.get("duration"):
            options["duration"] = image.info["duration"]
        options["loop"] = 0  # neco does not store a loop count; animations loop, as GIFs usually do
    buffer = io.BytesIO()
    image.save(buffer, format=save_format, **options)
    _write_output(output_path, buffer.getvalue(), force)
    elapsed = time.perf_counter() - start
    width, height = image.size
    pixels = width * height * len(frames)
    several = f"{len(frames)} frames " if len(frames) > 1 else ""
    click.echo(
        f"{_display(input_path, 'stdin')} -> {_display(output_path, 'stdout')}: "
        f"{several}{width}x{height} {image.mode}, {len(data):,} bytes in ({8 * len(data) / pixels:.3f} bpp)"
        f"{quality}, {save_format}, {elapsed:.1f} s",
        err=True,
    )


def _decoded_frames(data: bytes, device: str, strict: bool = True) -> list[Image.Image]:
    """Every frame of a .neco as PIL images (L for greyscale files), for an image OUT.

    The first carries the ICC profile, EXIF and ``duration`` (ms per frame, when the rate is
    known). strict=False: the frames a lenient reader recovers (losses are warnings).
    """
    with neco.open(data, device=device, strict=strict) as reader:
        grey = reader.header.pixel_format == PixelFormat.GRAY8
        frames = [Image.fromarray(np.round(pixels.mean(axis=2)).astype(np.uint8), "L") if grey
                  else Image.fromarray(pixels, "RGB") for pixels in reader]
        info = {"icc_profile": reader.icc_profile, "exif": reader.exif}
        if reader.header.frame_rate:
            info["duration"] = float(1000 / reader.header.frame_rate)
    if frames:
        frames[0].info.update({key: value for key, value in info.items() if value})
    return frames


def _psnr(reference: str, image: Image.Image) -> str:
    """'PSNR x dB' of a decoded image against the original file (RGB, 8 bits), taken as
    `neco encode` takes it (EXIF orientation applied, CMYK and 16-bit converted)."""
    with open(reference, "rb") as f:
        original = _open_image(reference, f.read())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # about coding the reference (alpha dropped, ...), not about this decode
        pixels = image_input.to_rgb_array(original)[0]
    if pixels.shape[1::-1] != image.size:
        raise CliError(f"{click.format_filename(reference)}: size {pixels.shape[1::-1]} differs from the decoded "
                       f"{image.size}")
    value = psnr_rgb(pixels, np.asarray(image.convert("RGB")))
    return "PSNR inf dB" if math.isinf(value) else f"PSNR {value:.2f} dB (RGB)"


_INFO_ORDER = (
    "kind",
    "width",
    "height",
    "pixel_format",
    "profile",
    "model_id",
    "weights_digest",
    "bpp",
    "size_bytes",
    "version",
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def _format_value(key: str, value: Any) -> str:
    if key == "version" and isinstance(value, (tuple, list)):
        return ".".join(map(str, value))
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value)) if value else "none"
    if isinstance(value, float):
        return f"{value:.4f}" if key == "bpp" else f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and key.endswith("bytes"):
        return f"{value:,}"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)


def _format_chunk(chunk: Any) -> str:
    if not isinstance(chunk, dict):
        return str(chunk)
    name = chunk.get("type", chunk.get("name", "?"))
    length = chunk.get("length")
    rest = [
        f"{key}={_format_value(key, value)}"
        for key, value in chunk.items()
        if key not in ("type", "name", "length")
    ]
    text = f"{name!s:<6}" + (f" {length:>10,} bytes" if isinstance(length, int) else "")
    return "  ".join([text, *rest]) if rest else text


def _format_info(source: str, info: dict[str, Any]) -> str:
    keys = [key for key in _INFO_ORDER if key in info]
    keys += [key for key in info if key not in keys and key != "chunks"]
    width = max(len(key) for key in [*keys, "file"]) + 2
    lines = [f"{'file:':<{width}}{source}"]
    lines += [f"{key + ':':<{width}}{_format_value(key, info[key])}" for key in keys]
    chunks = info.get("chunks")
    if chunks:
        lines.append(f"chunks ({len(chunks)}):")
        lines += [f"  {_format_chunk(chunk)}" for chunk in chunks]
    return "\n".join(lines)


@cli.command()
@click.argument("path", metavar="FILE", type=click.Path(allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(path: str, as_json: bool) -> None:
    """Describe the .neco file FILE (no model runs)."""
    data = _read_input(path)
    with _about(path, "stdin"):
        details = neco.info(data)
    if as_json:
        click.echo(json.dumps(details, indent=2, default=_jsonable))
    else:
        click.echo(_format_info(_display(path, "stdin"), details))


cli.add_command(eval_command)
cli.add_command(list_command)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``neco`` script."""
    cli.main(args=argv, prog_name="neco")
    raise AssertionError("click's standalone main always exits")  # pragma: no cover


if __name__ == "__main__":
    main()
