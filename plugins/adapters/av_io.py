"""Video files through PyAV (FFmpeg's libraries): read any video it opens, write mp4 / mkv / ...

    neco encode in.mp4 out.neco --frames 0:96 --scale 640x360
    neco decode out.neco out.mp4 --vcodec libx264

PyAV is optional (``pip install neco[video]``); without it these functions raise
`UnsupportedError` with the install hint. Frames are RGB (H, W, 3) uint8 arrays, decoded or
encoded one at a time, so memory does not grow with the length of the video. FFmpeg's
errors become NecoError subclasses naming the file: a file FFmpeg cannot open or a missing
encoder is `UnsupportedError`, damage found while decoding is `CorruptDataError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
import itertools

import numpy as np

from neco.formats import CorruptDataError, InvalidArgumentError, UnsupportedError

DEFAULT_VCODEC = "libx264"
DEFAULT_RATE = Fraction(25)    # written when the .neco file has no frame rate (ffmpeg's default)
PIX_FMTS = ("yuv420p", "yuv444p")
TEXT_FORMATS = {"tty"}         # FFmpeg demuxers that take any text file for "video"
# Output container per file extension; PyAV is told the format because outputs are written to
# a temporary name first.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
              ".avi": "avi", ".nut": "nut"}


def _av():
    try:
        import av
    except ImportError:
        raise UnsupportedError("video files need PyAV: pip install 'neco[video]'") from None
    return av


class AvReader:
    """The frames of the first video stream of `path`, as RGB arrays.

    frames: (start, stop) frame numbers, stop exclusive or None for the end; decoding stops at
    `stop`. scale: (width, height) to resize to (FFmpeg's swscale, bilinear).
    """

    def __init__(self, path: str, frames: tuple[int, int | None] = (0, None),
                 scale: tuple[int, int] | None = None) -> None:
        av = self._av = _av()
        self.path = path
        try:
            self._container = av.open(path)
        except av.error.FFmpegError as exc:
            raise UnsupportedError(f"not a video FFmpeg can open: {_message(exc)}") from None
        if not self._container.streams.video or self._container.format.name in TEXT_FORMATS:
            self._container.close()
            raise UnsupportedError("no video stream in the file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._range = frames
        rate = self._stream.guessed_rate or self._stream.average_rate
        self.frame_rate = Fraction(rate) if rate else None
        width, height = scale or (self._stream.codec_context.width, self._stream.codec_context.height)
        if width < 1 or height < 1:
            self._container.close()
            raise CorruptDataError("the video stream has no frame size")
        self.width, self.height = width, height

    def __iter__(self) -> Iterator[np.ndarray]:
        av = self._av
        start, stop = self._range
        try:
            decoded = itertools.islice(self._container.decode(self._stream), start, stop)
            for frame in decoded:
                yield frame.reformat(width=self.width, height=self.height, format="rgb24").to_ndarray()
        except av.error.FFmpegError as exc:
            raise CorruptDataError(f"cannot decode the video: {_message(exc)}") from None
        finally:
            self.close()

    def close(self) -> None:
        self._container.close()


class AvWriter:
    """Encodes RGB frames into a video file with an FFmpeg encoder (default libx264).

    container: FFmpeg's format name (see CONTAINERS), needed when `path`'s extension is not the
    format's. pix_fmt yuv420p (what players expect) needs even dimensions; yuv444p takes any.
    """

    def __init__(self, path: str, width: int, height: int, frame_rate: Fraction | None,
                 vcodec: str = DEFAULT_VCODEC, pix_fmt: str = "yuv420p", container: str | None = None) -> None:
        av = self._av = _av()
        if pix_fmt not in PIX_FMTS:
            raise InvalidArgumentError(f"video pixel format must be one of {', '.join(PIX_FMTS)}, got {pix_fmt!r}")
        if pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise InvalidArgumentError(f"yuv420p video needs even width and height, got {width}x{height}; "
                                       f"use --pix-fmt yuv444p")
        if vcodec not in av.codecs_available:
            raise UnsupportedError(f"FFmpeg (PyAV) has no encoder {vcodec!r}")
        try:
            self._container = av.open(path, "w", format=container)
            self._stream = self._container.add_stream(vcodec, rate=frame_rate or DEFAULT_RATE)
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, pix_fmt
        except av.error.FFmpegError as exc:
            raise UnsupportedError(f"cannot write {vcodec} video: {_message(exc)}") from None
        except ValueError as exc:  # PyAV: unknown codec or format name
            raise UnsupportedError(f"cannot write {vcodec} video: {exc}") from None
        self.frames_written = 0

    def write(self, rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self._mux(frame)
        self.frames_written += 1

    def _mux(self, frame) -> None:
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except self._av.error.FFmpegError as exc:
            raise UnsupportedError(f"video encoder failed: {_message(exc)}") from None

    def write_all(self, frames: Iterable[np.ndarray]) -> int:
        """Write every frame and finish the file (`close`); on a failure `abort` and re-raise.
        Returns the frames written."""
        try:
            for rgb in frames:
                self.write(rgb)
        except BaseException:
            self.abort()
            raise
        self.close()
        return self.frames_written

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        try:
            self._mux(None)
        finally:
            self._container.close()

    def abort(self) -> None:
        """Close without flushing, after a failure (the caller discards the file)."""
        try:
            self._container.close()
        except (self._av.error.FFmpegError, OSError, ValueError):
            pass


def _message(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)
