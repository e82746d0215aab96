"""Frame sequences on the command line: what ``neco encode`` / ``neco decode`` add for video.

Inputs of ``neco encode`` (chosen in this order):

- ``--input-format rawvideo --size WxH --pix-fmt rgb24|yuv420p [--rate R]``: headerless frames;
- a stream starting with ``YUV4MPEG2`` (``ffmpeg ... -f yuv4mpegpipe -``), from stdin or a file;
- an image Pillow reads (the still-image path of the CLI; stdin that is not Y4M is an image);
- any other file: a video through PyAV (``--frames START:STOP``, ``--scale WxH``).

A frame sequence becomes a VIDEO `.neco` (the video profile's I/P frames, or intra frames with
``--profile image``), written frame by frame: memory does not grow with the number of frames.
To a file it is written atomically like every CLI output (`output`); to stdout it streams, so a
failure midway leaves a stream without END, which every reader reports as truncated.

Outputs of ``neco decode`` besides images: ``-f y4m`` (or OUT ending in ``.y4m``) writes Y4M,
frame by frame, also to stdout; OUT ending in ``.mp4``, ``.mkv``, ``.webm``, ``.mov``, ``.avi``
(or ``-f mp4`` ...) is encoded by PyAV with ``--vcodec`` (default libx264). Still images work
too (one frame). ``--frames START:STOP`` (STOP excluded) decodes only those frames, seeking
frame-accurately (`decode_to`'s `selection`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
import itertools
import os
import re
from typing import Any, BinaryIO

import click
import numpy as np
from PIL import Image, UnidentifiedImageError

import neco
from neco.formats import CorruptDataError, UnsupportedError
from neco.plugins.adapters import av_io, y4m

from . import progress
from .errors import STDIO
from .output import binary_output, temporary_path

Y4M_NAMES = ("y4m", "yuv4mpegpipe")


def parse_size(text: str | None, what: str) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX:]\s*(\d+)\s*", text)
    if not match or not all(0 < int(v) <= y4m.MAX_DIMENSION for v in match.groups()):
        raise click.BadParameter(f"expected WIDTHxHEIGHT (1 to {y4m.MAX_DIMENSION}), got {text!r}",
                                 param_hint=what)
    return int(match[1]), int(match[2])


def parse_rate(text: str | None) -> Fraction | None:
    if text is None:
        return None
    try:
        rate = Fraction(text.replace(":", "/").strip())
    except (ValueError, ZeroDivisionError):
        rate = None
    if rate is None or rate <= 0 or rate.numerator >= 2**32 or rate.denominator >= 2**32:
        raise click.BadParameter(f"expected a positive rate such as 25, 29.97 or 30000/1001, got {text!r}",
                                 param_hint="'--rate'")
    return rate


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """``START:STOP`` (either may be empty; STOP exclusive) -> (start, stop)."""
    if text is None:
        return 0, None
    match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    start, stop = (int(match[1] or 0), int(match[2]) if match[2] else None) if match else (0, 0)
    if not match or (stop is not None and stop <= start):
        raise click.BadParameter(f"expected START:STOP frame numbers with STOP > START (e.g. 0:96), got {text!r}",
                                 param_hint="'--frames'")
    return start, stop


@dataclass
class FrameSource:
    """Frames to encode, with what the header needs to know before the first one."""
    frames: Iterable[np.ndarray]
    width: int
    height: int
    frame_rate: Fraction | None
    kind: str
    total: int | None = None  # frames to code, when known before coding (for progress)


def open_source(path: str, options: dict[str, Any], stdin: BinaryIO | None) -> FrameSource | bytes | None:
    """What IN holds: a FrameSource, or for a still image the bytes read from stdin (or None
    for a file: the image path reads it). `stdin` is the binary stdin when IN is ``-``."""
    size = parse_size(options.get("size"), "'--size'")
    scale = parse_size(options.get("scale"), "'--scale'")
    rate = parse_rate(options.get("rate"))
    frame_range = parse_frames(options.get("frame_range"))
    if options.get("input_format") == "rawvideo":
        if size is None or options.get("pix_fmt") is None:
            raise click.UsageError("--input-format rawvideo needs --size WxH and --pix-fmt")
        stream = stdin if path == STDIO else _open_file(path)
        reader = y4m.RawReader(stream, *size, options["pix_fmt"], rate)
        return _shaped(reader, size, rate, "rawvideo", frame_range, scale, _count(stream, reader.frame_bytes))
    if size is not None or options.get("pix_fmt") is not None:
        raise click.UsageError("--size and --pix-fmt describe rawvideo input; add --input-format rawvideo")
    stream = stdin if path == STDIO else _open_file(path)
    head = y4m.read_exact(stream, len(y4m.MAGIC))
    if head == y4m.MAGIC:
        reader = y4m.Y4MReader(stream, prefix=head)
        return _shaped(reader, (reader.width, reader.height), rate or reader.frame_rate, "y4m", frame_range, scale,
                       _count(stream, len(y4m.FRAME_TAG) + 1 + reader.header.frame_bytes))
    sequence_options = options.get("frame_range") or options.get("scale") or options.get("rate")
    if path == STDIO:
        if sequence_options:
            raise click.UsageError("--frames, --scale and --rate apply to frame sequences; stdin holds an image")
        return head + stream.read()
    stream.close()
    if _is_image(path):
        if sequence_options:
            raise click.UsageError("--frames, --scale and --rate apply to frame sequences, not to an image")
        return None
    try:
        reader = av_io.AvReader(path, frame_range, scale)
    except (UnsupportedError, CorruptDataError) as exc:
        raise UnsupportedError(f"not an image Pillow can read, nor a video FFmpeg can open ({exc})") from None
    return FrameSource(reader, reader.width, reader.height, rate or reader.frame_rate, "video")


def _open_file(path: str) -> BinaryIO:
    return open(path, "rb")  # noqa: SIM115 (closed by its reader's end, or by the process)


def _is_image(path: str) -> bool:
    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, SyntaxError):
        return False
    except Image.DecompressionBombError:
        return True  # an image; the image path reports it


def _count(stream: BinaryIO, frame_bytes: int) -> int | None:
    """Frames left in a regular file of `frame_bytes`-long frames (Y4M: when no FRAME line has
    parameters); None for a pipe."""
    try:
        return (os.fstat(stream.fileno()).st_size - stream.tell()) // frame_bytes
    except (AttributeError, OSError, ValueError):
        return None


def _shaped(frames: Iterable[np.ndarray], size: tuple[int, int], rate: Fraction | None, kind: str,
            frame_range: tuple[int, int | None], scale: tuple[int, int] | None, count: int | None) -> FrameSource:
    """Apply --frames and --scale to a frame iterator (PyAV does both itself); `count`: the input's frames."""
    frames = itertools.islice(frames, *frame_range)
    if scale is not None and scale != size:
        frames = (np.asarray(Image.fromarray(f).resize(scale, Image.Resampling.BILINEAR)) for f in frames)
        size = scale
    start, stop = frame_range
    total = None if count is None else max(0, min(count, stop if stop is not None else count) - start)
    return FrameSource(frames, *size, rate, kind, total)


def encode_source(source: FrameSource, output_path: str, force: bool, *, quality: float | None,
                  bpp: float | None, device: str, model: str | None = None, effort: int = 0,
                  what: str = "encode", profile: str | None = None, gop: int | None = None) -> str:
    """Encode a frame sequence into OUT (`what`: its progress bar's label); returns the summary line."""
    with binary_output(output_path, force) as out, progress.frames(what, source.total) as report:
        result = neco.encode_frames(source.frames, out, quality, bpp, frame_rate=source.frame_rate, num_frames=0,
                                    device=device, model=model, effort=effort, progress=report, profile=profile,
                                    gop=gop)
    rate = f" @ {source.frame_rate} fps" if source.frame_rate else ""
    keys = f", {result.key_frames} key frame(s)" if result.profile == "video" else ""
    return (f"{result.frames} frame(s) {result.width}x{result.height}{rate} ({source.kind}{keys}), "
            f"{result.bpp:.3f} bpp, {result.bytes_written:,} bytes, {result.seconds:.1f} s")


def video_target(output_path: str, fmt: str | None) -> str | None:
    """``"y4m"``, an FFmpeg container name, or None when OUT is an image."""
    if fmt is not None:
        key = fmt.lower().lstrip(".")
        if key in Y4M_NAMES:
            return "y4m"
        if f".{key}" in av_io.CONTAINERS:
            return av_io.CONTAINERS[f".{key}"]
        return key if key in set(av_io.CONTAINERS.values()) else None
    if output_path == STDIO:
        return None
    suffix = os.path.splitext(output_path)[1].lower()
    return "y4m" if suffix == ".y4m" else av_io.CONTAINERS.get(suffix)


def decode_to(target: str, reader: Any, output_path: str, force: bool, *, vcodec: str,
              pix_fmt: str | None, what: str = "decode", selection: range | None = None) -> int:
    """Decode every frame of `reader` (`neco.open`), or those of `selection` (``reader.frame(i)``:
    from the key frame before the first, then on frame by frame), into Y4M or a video file, one
    frame at a time (`what`: the progress bar's label); returns the count."""
    header = reader.header
    if selection is None:
        frames = progress.counted(reader, what, frame_count(reader))
    else:
        frames = progress.counted((reader.frame(i) for i in selection), what, len(selection))
    if pix_fmt is None:  # 4:2:0 where the size allows it, as players expect
        pix_fmt = "yuv444p" if header.width % 2 or header.height % 2 else "yuv420p"
    chroma = pix_fmt.removeprefix("yuv").removesuffix("p")
    if target == "y4m":
        with binary_output(output_path, force) as out:
            writer = y4m.Y4MWriter(out, header.width, header.height, header.frame_rate, chroma)
            for pixels in frames:
                writer.write(pixels)
        return writer.frames_written
    if output_path == STDIO:
        raise click.UsageError(f"{target} video cannot stream to stdout; use -f y4m")
    with temporary_path(output_path, force) as tmp:
        writer = av_io.AvWriter(tmp, header.width, header.height, header.frame_rate, vcodec, pix_fmt,
                                container=target)
        return writer.write_all(frames)




def frame_count(reader: Any) -> int | None:
    """The frames of a `neco.open` reader when known without decoding (its header, or one pass over
    a file's chunks); None for a pipe or a lenient reader."""
    if reader.header.num_frames:
        return reader.header.num_frames
    try:
        return reader.frame_count() if hasattr(reader, "frame_count") else None
    except UnsupportedError:
        return None
