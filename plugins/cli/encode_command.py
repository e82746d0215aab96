"""``neco encode``: an image, an animation or a frame sequence into a `.neco` file."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
import time
import warnings
from typing import Any

import click
from PIL import Image

import neco

from . import frames as sequences
from . import progress
from .errors import STDIO, CliError, about, describe, display
from .inputs import check_input, load_image, open_image, probe_image, read_input, stdin
from .options import device_option, force_option, in_out_arguments, quiet_option, sequence_options
from .output import binary_output, check_output, write_output


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
            raise CliError(f"{name}: frame {index}: {describe(exc)}") from exc
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
            raise CliError(f"{name}: frame {index}: {describe(exc)}") from exc
        yield image if scale is None or scale == image.size else image.resize(scale, Image.Resampling.BILINEAR)


def _encode_animation(image: Image.Image, input_path: str, output_path: str, force: bool,
                      sequence: dict[str, Any], **coding: Any) -> str:
    """Code every frame (or --frames) of an animated / multi-page image into OUT; the summary line."""
    name = display(input_path, "stdin")
    check_output(output_path, force, streams=False)
    count = image.n_frames
    first, stop = sequences.parse_frames(sequence.get("frame_range"))
    frames = range(first, min(count, stop) if stop is not None else count)
    if not frames:
        raise CliError(f"{name}: --frames {sequence['frame_range']} selects none of its {count} frames")
    scale = sequences.parse_size(sequence.get("scale"), "'--scale'")
    rate = sequences.parse_rate(sequence.get("rate")) or _animation_rate(image, frames, name)
    with binary_output(output_path, force) as out, about(input_path, "stdin"), \
            progress.frames(progress.label("encode", input_path), len(frames)) as report:
        result = neco.encode_frames(_animation_frames(image, frames, scale, name), out, frame_rate=rate,
                                    num_frames=len(frames), progress=report, **coding)
    shown = f" @ {rate} fps" if rate else ""
    return (f"{result.frames} of {count} frame(s) {result.width}x{result.height}{shown} ({image.format}), "
            f"{result.bpp:.3f} bpp, {result.bytes_written:,} bytes")


@click.command()
@in_out_arguments
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
              help="Model id (see `neco list`)  [default: the shipped image model; for a frame sequence, the "
                   "shipped video model, or the image model with --bpp or --profile image].")
@click.option("--profile", type=click.Choice(["video", "image"]), default=None,
              help="Frame sequences: video (key frames and frames predicted from the frame before; the "
                   "default with --quality) or image (independent intra frames; the default with --bpp).")
@click.option("--gop", type=click.IntRange(min=1), default=None, metavar="N",
              help="Frame sequences, profile video: a key frame every N frames (seek and resync points)  "
                   "[default: 32].")
@device_option
@force_option
@sequence_options
@quiet_option()
def encode(
    input_path: str,
    output_path: str,
    quality: float | None,
    bpp: float | None,
    effort: int,
    model: str | None,
    profile: str | None,
    gop: int | None,
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
    check_output(output_path, force)
    check_input(input_path)
    start = time.perf_counter()
    coding = {"quality": quality, "bpp": bpp, "effort": effort, "device": device, "model": model}
    clip = {"profile": profile, "gop": gop}     # frame sequences only
    image = None
    if input_path != STDIO and sequence.get("input_format") == "auto":
        image = probe_image(input_path)
    if image is None:
        with about(input_path, "stdin"):
            source = sequences.open_source(input_path, sequence, stdin() if input_path == STDIO else None)
            if isinstance(source, sequences.FrameSource):
                check_output(output_path, force, streams=False)
                summary = sequences.encode_source(source, output_path, force, what=progress.label("encode", input_path),
                                                  **coding, **clip)
        if isinstance(source, sequences.FrameSource):
            progress.echo(f"{display(input_path, 'stdin')} -> {display(output_path, 'stdout')}: {summary}")
            return
        image = open_image(input_path, read_input(input_path) if source is None else source)
    with image:  # closes the file an image from a path keeps open (all of them, for animations)
        summary = _encode_image(load_image(image, display(input_path, "stdin")), input_path, output_path, force,
                                sequence, coding, clip)
    progress.echo(f"{display(input_path, 'stdin')} -> {display(output_path, 'stdout')}: {summary}, "
                  f"{time.perf_counter() - start:.1f} s")


def _encode_image(image: Image.Image, input_path: str, output_path: str, force: bool, sequence: dict[str, Any],
                  coding: dict[str, Any], clip: dict[str, Any]) -> str:
    """Code a loaded still image, or every frame of an animated one, into OUT; the summary line."""
    if getattr(image, "is_animated", False):
        return _encode_animation(image, input_path, output_path, force, sequence, **coding, **clip)
    if sequence.get("frame_range") or sequence.get("scale") or sequence.get("rate") or any(clip.values()):
        raise click.UsageError("--frames, --scale, --rate, --profile and --gop apply to frame sequences, "
                               "not to a still image")
    searching = f", searching {coding['bpp']:g} bpp" if coding.get("bpp") else ""
    with about(input_path, "stdin"), progress.working(progress.label("encode", input_path) + searching):
        data = neco.encode(image, **coding)
    write_output(output_path, data, force)
    width, height = image.size
    return f"{width}x{height}, {8 * len(data) / (width * height):.3f} bpp, {len(data):,} bytes"
