"""The ``neco`` command line: ``encode``, ``decode``, ``info``, ``eval`` and ``list``.

A thin shell over the public API (`neco.encode`, `neco.decode`, `neco.info`). What it adds is
the behaviour people expect from a file tool:

- ``-`` stands for stdin / stdout (binary) wherever a file is named.
- An existing output is never replaced without ``-y/--force``.
- Outputs are written atomically: bytes go to a temporary file in the output's directory,
  which is renamed over the output only once everything succeeded. On any failure --
  an error, a full disk, Ctrl-C -- the temporary file is removed and the output is untouched.
  Data for stdout is produced completely before the first byte is written -- except for frame
  sequences (Y4M / raw / video in, ``-f y4m`` out), which stream frame by frame
  (`neco.plugins.video_cli`); a failure midway leaves a stream that reads as truncated.
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
import math
import os
import secrets
import time
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

import click
import numpy as np
from PIL import Image, UnidentifiedImageError

import neco
from neco.plugins import av_io, video_cli
from neco.plugins.eval_cli import eval_command
from neco.plugins.eval_metrics import psnr_rgb
from neco.plugins.registry import list_command

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


class _NecoGroup(click.Group):
    """Translates expected failures of every subcommand into `CliError`.

    Done here rather than in `main` so that click's `CliRunner` (the tests) sees the same
    behaviour as the installed ``neco`` script.
    """

    def invoke(self, ctx: click.Context) -> Any:
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


def _check_output(path: str, force: bool) -> None:
    """Fail before any work when the output cannot be written; a usage mistake costs no encode."""
    if path == STDIO:
        if click.open_file(STDIO, "wb").isatty():
            raise CliError("refusing to write binary data to a terminal; redirect stdout")
        return
    if os.path.isdir(path):
        raise CliError(f"{click.format_filename(path)}: is a directory")
    if os.path.lexists(path) and not force:
        raise CliError(f"{click.format_filename(path)} already exists; use -y/--force to overwrite")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"{click.format_filename(directory)}: no such directory")


def _write_output(path: str, data: bytes, force: bool) -> None:
    """Write `data` to `path` atomically (temp file + `os.replace`), or to stdout for ``-``.

    The temporary file lives next to the output (same file system, so the rename is atomic)
    and is created with the usual umask-derived permissions. Whatever goes wrong -- including
    KeyboardInterrupt -- it is removed and an existing output keeps its old content.
    """
    if path == STDIO:
        stdout = click.open_file(STDIO, "wb")
        stdout.write(data)
        stdout.flush()
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
    """Decode an input image with Pillow, fully, so every failure surfaces here.

    Pillow reports a damaged file as OSError ("image file is truncated") and, from some
    plugins, SyntaxError; both become one line naming the input.
    """
    name = _display(path, "stdin")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError as exc:
        raise CliError(f"{name}: not an image Pillow can read") from exc
    except (Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise CliError(f"{name}: {_describe(exc)}") from exc
    return image


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
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("output_path", metavar="OUT", type=click.Path(dir_okay=False, allow_dash=True))
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
    model: str | None,
    device: str,
    force: bool,
    **sequence: Any,
) -> None:
    """Encode the image or frame sequence IN into the .neco file OUT.

    IN is an image (any format Pillow reads), a Y4M stream (ffmpeg -f yuv4mpegpipe), raw
    frames (--input-format rawvideo) or a video file (PyAV). Frame sequences are coded frame
    by frame and stream to OUT.
    """
    if quality is not None and bpp is not None:
        raise click.UsageError("--quality and --bpp are mutually exclusive")
    _check_output(output_path, force)
    start = time.perf_counter()
    with _about(input_path, "stdin"):
        source = video_cli.open_source(input_path, sequence, _stdin() if input_path == STDIO else None)
        if isinstance(source, video_cli.FrameSource):
            summary = video_cli.encode_source(source, output_path, force, quality=quality, bpp=bpp, device=device,
                                              model=model)
    if isinstance(source, video_cli.FrameSource):
        click.echo(f"{_display(input_path, 'stdin')} -> {_display(output_path, 'stdout')}: {summary}", err=True)
        return
    image = _open_image(input_path, _read_input(input_path) if source is None else source)
    with _about(input_path, "stdin"):
        data = neco.encode(image, quality=quality, bpp=bpp, device=device, model=model)
    _write_output(output_path, data, force)
    elapsed = time.perf_counter() - start
    width, height = image.size
    click.echo(
        f"{_display(input_path, 'stdin')} -> {_display(output_path, 'stdout')}: "
        f"{width}x{height}, {8 * len(data) / (width * height):.3f} bpp, "
        f"{len(data):,} bytes, {elapsed:.1f} s",
        err=True,
    )


@cli.command()
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("output_path", metavar="OUT", type=click.Path(dir_okay=False, allow_dash=True))
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
@_device_option
@_force_option
def decode(input_path: str, output_path: str, fmt: str | None, reference: str | None, vcodec: str,
           pix_fmt: str | None, device: str, force: bool) -> None:
    """Decode the .neco file IN into the image OUT, or its frames into Y4M / a video file."""
    target = video_cli.video_target(output_path, fmt)
    if target is not None:
        if reference is not None:
            raise click.UsageError("--reference applies to image output")
        _check_output(output_path, force)
        start = time.perf_counter()
        with contextlib.ExitStack() as stack, _about(input_path, "stdin"):
            stream = _stdin() if input_path == STDIO else stack.enter_context(open(input_path, "rb"))
            reader = neco.open(stream, device=device)
            count = video_cli.decode_to(target, reader, output_path, force, vcodec=vcodec, pix_fmt=pix_fmt)
        header = reader.header
        click.echo(f"{_display(input_path, 'stdin')} -> {_display(output_path, 'stdout')}: {count} frame(s) "
                   f"{header.width}x{header.height}, {target}, {time.perf_counter() - start:.1f} s", err=True)
        return
    save_format = _save_format(output_path, fmt)
    _check_output(output_path, force)
    start = time.perf_counter()
    data = _read_input(input_path)
    with _about(input_path, "stdin"):
        image = neco.decode(data, device=device)
    quality = f", {_psnr(reference, image)}" if reference else ""
    options = {key: image.info[key] for key in ("icc_profile", "exif") if image.info.get(key)}
    buffer = io.BytesIO()
    image.save(buffer, format=save_format, **options)
    _write_output(output_path, buffer.getvalue(), force)
    elapsed = time.perf_counter() - start
    width, height = image.size
    click.echo(
        f"{_display(input_path, 'stdin')} -> {_display(output_path, 'stdout')}: "
        f"{width}x{height} {image.mode}, {len(data):,} bytes in ({8 * len(data) / (width * height):.3f} bpp)"
        f"{quality}, {save_format}, {elapsed:.1f} s",
        err=True,
    )


def _psnr(reference: str, image: Image.Image) -> str:
    """'PSNR x dB' of a decoded image against the original file (RGB, 8 bits)."""
    with open(reference, "rb") as f:
        original = _open_image(reference, f.read()).convert("RGB")
    if original.size != image.size:
        raise CliError(f"{click.format_filename(reference)}: size {original.size} differs from the decoded {image.size}")
    value = psnr_rgb(np.asarray(original), np.asarray(image.convert("RGB")))
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
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
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
