"""``neco decode``: a `.neco` file into an image, an animated GIF or WebP, Y4M or a video file."""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
import warnings

import click
import numpy as np
from PIL import Image

import neco
from neco.plugins.adapters import av_io
from neco.plugins.adapters.pil_image import to_pil_image, to_rgb_array
from neco.plugins.bench.metrics import psnr_rgb

from . import frames as sequences
from . import progress
from .errors import STDIO, CliError, about, display
from .inputs import open_image, read_input, stdin
from .options import device_option, force_option, in_out_arguments, quiet_option
from .output import check_output, write_output

# Image formats a multi-frame .neco decodes to as an animation (APNG and multi-page TIFF are
# left out: people read a .png or .tiff as one picture).
ANIMATED_FORMATS = ("GIF", "WEBP")
EXIT_USAGE = 2  # click's status for usage errors


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


@click.command()
@in_out_arguments
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
@click.option("--frames", "frame_range", metavar="START:STOP", default=None,
              help="Decode only frames START (from 0) to STOP, STOP excluded as in a Python slice or ffmpeg's "
                   "trim=start_frame=START:end_frame=STOP (10:20 is ten frames, 10 to 19; 40:41 is frame 40 alone, "
                   "which any image format takes); either may be left out (:50, 40:); a STOP past the end stops "
                   "at the last frame. Frame-accurate: a predicted frame is decoded from the key frame before it. "
                   "Needs a file, or stdin read whole; not with --lenient.")
@click.option("--lenient", is_flag=True,
              help="Decode what can be decoded of a damaged file: a chunk that fails its check is skipped "
                   "and reported (a warning each); a truncated stream gives the frames before the cut. "
                   "Default: strict, any damage is an error.")
@device_option
@force_option
@quiet_option("-q")
def decode(input_path: str, output_path: str, fmt: str | None, reference: str | None, vcodec: str,
           pix_fmt: str | None, frame_range: str | None, lenient: bool, device: str, force: bool) -> None:
    """Decode the .neco file IN into the image OUT, or its frames (or --frames) into an animated
    GIF or WebP, Y4M or a video file."""
    span = _parse_span(frame_range, lenient)
    target = sequences.video_target(output_path, fmt)
    if target is not None:
        if reference is not None:
            raise click.UsageError("--reference applies to image output")
        check_output(output_path, force, streams=False)
        start = time.perf_counter()
        with contextlib.ExitStack() as stack, about(input_path, "stdin"):
            stream = stdin() if input_path == STDIO else stack.enter_context(open(input_path, "rb"))
            if span is not None and input_path == STDIO:
                stream = io.BytesIO(stream.read())  # seeking needs the whole (compressed) stream
            reader = neco.open(stream, device=device, strict=not lenient)
            selection = None if span is None else _select(span, frame_range, reader.frame_count(), input_path)
            count = sequences.decode_to(target, reader, output_path, force, vcodec=vcodec, pix_fmt=pix_fmt,
                                        what=progress.label("decode", input_path), selection=selection)
        header = reader.header
        losses = f" ({len(reader.lost)} loss(es) skipped)" if lenient and reader.lost else ""
        which = "" if selection is None else f" ({selection.start}:{selection.stop} of {reader.frame_count()})"
        progress.echo(f"{display(input_path, 'stdin')} -> {display(output_path, 'stdout')}: {count} frame(s)"
                      f"{which} {header.width}x{header.height}{losses}, {target}, {time.perf_counter() - start:.1f} s")
        return
    save_format = _save_format(output_path, fmt)
    check_output(output_path, force)
    start = time.perf_counter()
    data = read_input(input_path)
    name = display(input_path, "stdin")
    with about(input_path, "stdin"):
        if lenient:  # a damaged file has no trustworthy count before decoding
            frames = _decoded_frames(data, device, progress.label("decode", input_path), strict=False)
            count = len(frames)
        else:
            details = neco.info(data)  # no model runs: refuse early what cannot be written
            count = details.get("frames", 1)
            if span is not None:
                selection = _select(span, frame_range, count, input_path)
                count = len(selection)
        if count > 1 and save_format not in ANIMATED_FORMATS:
            raise CliError(f"{name} holds {count} frames and neco writes {save_format} as a still image: "
                           f"write an animated GIF or WebP, -f y4m, or a video (.mp4, .mkv, ...)")
        if count > 1 and reference is not None:
            raise click.UsageError("--reference applies to still images")
        if not lenient and details["kind"] == "video":
            frames = _decoded_frames(data, device, progress.label("decode", input_path),
                                     selection=None if span is None else selection)
        elif not lenient:
            with progress.working(progress.label("decode", input_path)):
                frames = [neco.decode(data, device=device)]
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
    with progress.working(f"write {save_format}" + (f", {len(frames)} frames" if len(frames) > 1 else "")):
        image.save(buffer, format=save_format, **options)
    write_output(output_path, buffer.getvalue(), force)
    elapsed = time.perf_counter() - start
    width, height = image.size
    pixels = width * height * len(frames)
    several = f"{len(frames)} frames " if len(frames) > 1 else ""
    progress.echo(
        f"{display(input_path, 'stdin')} -> {display(output_path, 'stdout')}: "
        f"{several}{width}x{height} {image.mode}, {len(data):,} bytes in ({8 * len(data) / pixels:.3f} bpp)"
        f"{quality}, {save_format}, {elapsed:.1f} s"
    )


def _decoded_frames(data: bytes, device: str, what: str, strict: bool = True,
                    selection: range | None = None) -> list[Image.Image]:
    """Every frame of a .neco (or those of `selection`, seeked) as PIL images (L for greyscale
    files), for an image OUT (`what`: the progress bar's label).

    The first carries the ICC profile, EXIF and ``duration`` (ms per frame, when the rate is
    known). strict=False: the frames a lenient reader recovers (losses are warnings).
    """
    with neco.open(data, device=device, strict=strict) as reader:
        chosen = reader if selection is None else (reader.frame(i) for i in selection)
        total = sequences.frame_count(reader) if selection is None else len(selection)
        frames = [to_pil_image(pixels, reader.header.pixel_format)
                  for pixels in progress.counted(chosen, what, total)]
        info = {"icc_profile": reader.icc_profile, "exif": reader.exif}
        if reader.header.frame_rate:
            info["duration"] = float(1000 / reader.header.frame_rate)
    if frames:
        frames[0].info.update({key: value for key, value in info.items() if value})
    return frames


def _parse_span(text: str | None, lenient: bool) -> tuple[int, int | None] | None:
    """--frames as (start, stop or None); a malformed one, or one with --lenient, is a one-line
    usage error (exit 2) before anything is read or written."""
    if text is None:
        return None
    if lenient:
        raise CliError("--frames needs frame-accurate seeking and --lenient reads a damaged stream in order: "
                       "give one of them", EXIT_USAGE)
    try:
        return sequences.parse_frames(text)
    except click.BadParameter as exc:
        raise CliError(exc.format_message(), EXIT_USAGE) from None


def _select(span: tuple[int, int | None], text: str, count: int, input_path: str) -> range:
    """The frames --frames picks of a stream of `count`; a one-line usage error when it picks none."""
    start, stop = span
    if start >= count:
        raise CliError(f"--frames {text}: {display(input_path, 'stdin')} has {count} frame(s), numbered 0 to "
                       f"{count - 1}", EXIT_USAGE)
    return range(start, count if stop is None else min(stop, count))


def _psnr(reference: str, image: Image.Image) -> str:
    """'PSNR x dB' of a decoded image against the original file (RGB, 8 bits), taken as
    `neco encode` takes it (EXIF orientation applied, CMYK and 16-bit converted)."""
    with open(reference, "rb") as f:
        original = open_image(reference, f.read())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # about coding the reference (alpha dropped, ...), not about this decode
        pixels = to_rgb_array(original)[0]
    if pixels.shape[1::-1] != image.size:
        raise CliError(f"{click.format_filename(reference)}: size {pixels.shape[1::-1]} differs from the decoded "
                       f"{image.size}")
    value = psnr_rgb(pixels, np.asarray(image.convert("RGB")))
    return "PSNR inf dB" if math.isinf(value) else f"PSNR {value:.2f} dB (RGB)"
