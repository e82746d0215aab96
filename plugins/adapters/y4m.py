"""Frames over pipes, the way ffmpeg speaks them: Y4M (``yuv4mpegpipe``) and raw video.

    ffmpeg -i in.mp4 -f yuv4mpegpipe - | neco encode - out.neco
    neco decode out.neco -f y4m - | ffmpeg -i - out.mp4

Y4M is a text header line, then per frame a ``FRAME`` line and the planes Y, U, V (8 bits):

    YUV4MPEG2 W640 H360 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\\n
    FRAME\\n <Y: W*H bytes> <U> <V>

Read: chroma ``420``/``420jpeg``/``420mpeg2``/``420paldv``, ``422``, ``444`` and ``mono``, at 8
bits. The interlace (``I``) and aspect (``A``) fields are read and ignored; a missing frame rate
is "unknown". 4:2:0 and 4:2:2 need even dimensions (this reader refuses odd ones rather than
guess the rounding). Written: ``C420jpeg`` (what ffmpeg writes for yuv420p), or ``C444``.

Colour: the YUV <-> RGB matrix is BT.601, limited range (Y 16-235, chroma 16-240) -- what
ffmpeg assumes for untagged YUV -- unless the header says ``XCOLORRANGE=FULL`` (ffmpeg's own
extension; ``Cmono`` from ffmpeg is full range too). Y4M cannot say BT.709, so HD sources
piped from ffmpeg are read with BT.601, as ffmpeg's own conversion would. Chroma is
upsampled by pixel repetition and downsampled by 2x2 averaging (centred, ``420jpeg`` siting);
the siting of ``420mpeg2`` and ``420paldv`` is not compensated (a quarter-pixel chroma shift).

Every frame is read with exact-size reads and checked, so a pipe that ends inside a frame is
a `CorruptDataError`, never a short frame; memory holds one frame at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import numpy as np

from neco.formats import CorruptDataError, InvalidArgumentError, UnsupportedError

MAGIC = b"YUV4MPEG2"
FRAME_TAG = b"FRAME"
MAX_LINE_BYTES = 4096          # a header or FRAME line longer than this is not Y4M
MAX_DIMENSION = 1 << 16        # pixels per side accepted from a Y4M / raw header
MAX_RATE_TERM = 2**32 - 1      # frame rate numerator / denominator, as in the .neco header
READ_PIECE_BYTES = 1 << 20     # read pipes in pieces of this size

# chroma tag -> (horizontal, vertical) subsampling; None = no chroma planes (mono)
CHROMA = {
    "420": (2, 2), "420jpeg": (2, 2), "420mpeg2": (2, 2), "420paldv": (2, 2),
    "422": (2, 1), "444": (1, 1), "mono": None,
}
WRITE_CHROMA = {"420": "C420jpeg XYSCSS=420JPEG", "444": "C444 XYSCSS=444"}

# BT.601 luma weights (Kr, Kb); limited range scales Y to 219 levels from 16, chroma to 224 from 128.
KR, KB = 0.299, 0.114
_RGB_TO_YUV = np.array([
    [KR, 1 - KR - KB, KB],
    [-KR / (2 * (1 - KB)), -(1 - KR - KB) / (2 * (1 - KB)), 0.5],
    [0.5, -(1 - KR - KB) / (2 * (1 - KR)), -KB / (2 * (1 - KR))],
], dtype=np.float64)
_YUV_TO_RGB = np.linalg.inv(_RGB_TO_YUV)


def _range(full: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per Y, U, V plane: code value = scale * normalized + offset."""
    if full:
        return np.array([255.0, 255.0, 255.0]), np.array([0.0, 128.0, 128.0])
    return np.array([219.0, 224.0, 224.0]), np.array([16.0, 128.0, 128.0])


def yuv_to_rgb(y: np.ndarray, u: np.ndarray | None, v: np.ndarray | None, full_range: bool = False) -> np.ndarray:
    """Planes (chroma possibly subsampled, or None for mono) -> (H, W, 3) uint8 RGB, BT.601."""
    h, w = y.shape
    if u is None or v is None:
        grey = y if full_range else np.clip(np.round((y.astype(np.float32) - 16) * (255 / 219)), 0, 255)
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)
    sy, sx = h // u.shape[0], w // u.shape[1]
    planes = [y, np.repeat(np.repeat(u, sy, axis=0), sx, axis=1), np.repeat(np.repeat(v, sy, axis=0), sx, axis=1)]
    scale, offset = _range(full_range)
    yuv = np.stack(planes, axis=2).astype(np.float32)
    yuv = (yuv - offset.astype(np.float32)) / scale.astype(np.float32)
    rgb = yuv @ (_YUV_TO_RGB.T * 255).astype(np.float32)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def rgb_to_yuv(rgb: np.ndarray, chroma: str = "420", full_range: bool = False) -> list[np.ndarray]:
    """(H, W, 3) uint8 RGB -> [Y, U, V] uint8 planes, BT.601; chroma "420" (2x2 mean) or "444"."""
    h, w = rgb.shape[:2]
    if chroma == "420" and (h % 2 or w % 2):
        raise InvalidArgumentError(f"4:2:0 needs even width and height, got {w}x{h}")
    scale, offset = _range(full_range)
    norm = rgb.astype(np.float32) @ (_RGB_TO_YUV.T / 255).astype(np.float32)
    y = norm[:, :, 0] * np.float32(scale[0]) + np.float32(offset[0])
    planes = [y]
    for c in (1, 2):
        plane = norm[:, :, c]
        if chroma == "420":
            plane = plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        planes.append(plane * np.float32(scale[c]) + np.float32(offset[c]))
    return [np.clip(np.round(p), 0, 255).astype(np.uint8) for p in planes]


def read_exact(stream: BinaryIO, n: int) -> bytes:
    """Up to n bytes: fewer only at the end of the stream (pipes may return short reads)."""
    pieces, got = [], 0
    while got < n:
        piece = stream.read(min(n - got, READ_PIECE_BYTES))
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def _read_line(stream: BinaryIO, what: str, first: bytes = b"") -> bytes:
    """A line ending in LF (not included), at most MAX_LINE_BYTES; the stream may be a pipe."""
    line = bytearray(first)
    while True:
        byte = stream.read(1)
        if not byte:
            raise CorruptDataError(f"truncated y4m {what}: the input ends before its end of line")
        if byte == b"\n":
            return bytes(line)
        line += byte
        if len(line) > MAX_LINE_BYTES:
            raise CorruptDataError(f"y4m {what} longer than {MAX_LINE_BYTES} bytes")


def _dimension(text: str, what: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_DIMENSION:
        raise CorruptDataError(f"bad y4m {what} {text!r} (1 to {MAX_DIMENSION} pixels)")
    return int(text)


def _rate(text: str) -> Fraction | None:
    """A ``F`` field: ``num:den`` -> Fraction; ``0:0`` (or any 0 term) -> unknown."""
    num, sep, den = text.partition(":")
    if not sep or not num.isdigit() or not den.isdigit():
        raise CorruptDataError(f"bad y4m frame rate {text!r} (expected NUM:DEN)")
    num, den = int(num), int(den)
    if num == 0 or den == 0:
        return None
    if num > MAX_RATE_TERM or den > MAX_RATE_TERM:
        raise CorruptDataError(f"y4m frame rate {text!r} out of range")
    return Fraction(num, den)


@dataclass(frozen=True)
class Y4MHeader:
    width: int
    height: int
    frame_rate: Fraction | None
    chroma: str = "420jpeg"
    full_range: bool = False

    @property
    def plane_shapes(self) -> list[tuple[int, int]]:
        sub = CHROMA[self.chroma]
        if sub is None:
            return [(self.height, self.width)]
        return [(self.height, self.width)] + [(self.height // sub[1], self.width // sub[0])] * 2

    @property
    def frame_bytes(self) -> int:
        return sum(h * w for h, w in self.plane_shapes)


def parse_header(line: bytes) -> Y4MHeader:
    """The fields of a ``YUV4MPEG2 ...`` header line (without its LF)."""
    try:
        fields = line.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise CorruptDataError("y4m header is not ASCII") from None
    if fields[0] != MAGIC.decode():
        raise CorruptDataError("not a y4m stream (no YUV4MPEG2 magic)")
    width = height = None
    rate, chroma, full = None, "420jpeg", False
    for field in filter(None, fields[1:]):
        tag, value = field[0], field[1:]
        if tag == "W":
            width = _dimension(value, "width")
        elif tag == "H":
            height = _dimension(value, "height")
        elif tag == "F":
            rate = _rate(value)
        elif tag == "C":
            if value not in CHROMA:
                raise UnsupportedError(f"y4m colour space C{value} is not supported "
                                       f"(8-bit {', '.join(CHROMA)} are; try ffmpeg -pix_fmt yuv420p)")
            chroma = value
        elif tag == "X" and value.startswith("COLORRANGE="):
            full = value.partition("=")[2].upper() == "FULL"
        elif tag not in "IAX":
            raise CorruptDataError(f"unknown y4m header field {field!r}")
    if width is None or height is None:
        raise CorruptDataError("y4m header lacks the width (W) or height (H)")
    sub = CHROMA[chroma]
    if sub is not None and (width % sub[0] or height % sub[1]):
        raise UnsupportedError(f"y4m C{chroma} with odd dimensions {width}x{height} is not supported; "
                               f"use an even size or C444")
    return Y4MHeader(width, height, rate, chroma, full)


class Y4MReader:
    """Iterates the frames of a Y4M stream as (H, W, 3) uint8 RGB arrays, one frame in memory.

    `prefix` holds bytes already taken from the stream (e.g. by a sniffer).
    """

    def __init__(self, stream: BinaryIO, prefix: bytes = b"") -> None:
        self._stream = stream
        head = prefix + read_exact(stream, max(0, len(MAGIC) - len(prefix)))
        if not head.startswith(MAGIC):
            raise CorruptDataError("not a y4m stream (no YUV4MPEG2 magic)" if head else "empty input: no y4m header")
        self.header = parse_header(_read_line(stream, "header", head))
        self.frame_rate = self.header.frame_rate
        self.width, self.height = self.header.width, self.header.height
        self.frames_read = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        tag = read_exact(self._stream, len(FRAME_TAG))
        if not tag:
            raise StopIteration
        number = self.frames_read + 1
        if tag != FRAME_TAG[:len(tag)] or len(tag) < len(FRAME_TAG):
            raise CorruptDataError(f"y4m frame {number}: expected a FRAME line"
                                   + (" (truncated)" if FRAME_TAG.startswith(tag) else ""))
        rest = _read_line(self._stream, f"FRAME line of frame {number}")
        if rest and not rest.startswith(b" "):
            raise CorruptDataError(f"y4m frame {number}: bad FRAME line")
        size = self.header.frame_bytes
        data = read_exact(self._stream, size)
        if len(data) < size:
            raise CorruptDataError(f"truncated y4m frame {number}: {len(data)} of {size} bytes")
        planes, pos = [], 0
        for h, w in self.header.plane_shapes:
            planes.append(np.frombuffer(data, np.uint8, h * w, pos).reshape(h, w))
            pos += h * w
        self.frames_read = number
        if len(planes) == 1:
            return yuv_to_rgb(planes[0], None, None, self.header.full_range)
        return yuv_to_rgb(*planes, full_range=self.header.full_range)


class Y4MWriter:
    """Writes (H, W, 3) uint8 RGB frames as Y4M (BT.601 limited range); each frame is flushed.

    chroma "420" (``C420jpeg``) needs even dimensions; "444" takes any. An unknown frame rate
    is written as 25 fps, ffmpeg's default.
    """

    DEFAULT_RATE = Fraction(25)

    def __init__(self, stream: BinaryIO, width: int, height: int, frame_rate: Fraction | None = None,
                 chroma: str = "420") -> None:
        if chroma not in WRITE_CHROMA:
            raise InvalidArgumentError(f"y4m output chroma must be one of {', '.join(WRITE_CHROMA)}, got {chroma!r}")
        if chroma == "420" and (width % 2 or height % 2):
            raise InvalidArgumentError(f"4:2:0 output needs even width and height, got {width}x{height}; use yuv444p")
        self._stream, self.width, self.height, self.chroma = stream, width, height, chroma
        rate = frame_rate or self.DEFAULT_RATE
        stream.write(f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 "
                     f"{WRITE_CHROMA[chroma]} XCOLORRANGE=LIMITED\n".encode("ascii"))
        self.frames_written = 0

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise InvalidArgumentError(f"frame of shape {rgb.shape} does not match the y4m size "
                                       f"{self.width}x{self.height}")
        self._stream.write(FRAME_TAG + b"\n")
        for plane in rgb_to_yuv(rgb, self.chroma):
            self._stream.write(plane.tobytes())
        self._stream.flush()
        self.frames_written += 1


RAW_PIX_FMTS = ("rgb24", "yuv420p")


class RawReader:
    """Frames of a headerless raw stream (``ffmpeg -f rawvideo``): rgb24 or yuv420p (BT.601 limited).

    The size and pixel format come from the caller; a stream whose length is not a whole number
    of frames is a `CorruptDataError` naming the likely cause (a wrong --size or --pix-fmt).
    """

    def __init__(self, stream: BinaryIO, width: int, height: int, pix_fmt: str = "rgb24",
                 frame_rate: Fraction | None = None, prefix: bytes = b"") -> None:
        if pix_fmt not in RAW_PIX_FMTS:
            raise InvalidArgumentError(f"raw pixel format must be one of {', '.join(RAW_PIX_FMTS)}, got {pix_fmt!r}")
        for value, what in ((width, "width"), (height, "height")):
            if not 1 <= value <= MAX_DIMENSION:
                raise InvalidArgumentError(f"raw {what} must be 1 to {MAX_DIMENSION}, got {value}")
        if pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise InvalidArgumentError(f"yuv420p needs even width and height, got {width}x{height}")
        self._stream, self._prefix = stream, prefix
        self.width, self.height, self.pix_fmt, self.frame_rate = width, height, pix_fmt, frame_rate
        self.frame_bytes = width * height * 3 if pix_fmt == "rgb24" else width * height * 3 // 2
        self.frames_read = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        data = self._prefix + read_exact(self._stream, self.frame_bytes - len(self._prefix))
        self._prefix = b""
        if not data:
            if self.frames_read == 0:
                raise CorruptDataError("empty raw input: no frames")
            raise StopIteration
        if len(data) < self.frame_bytes:
            raise CorruptDataError(f"raw input ends within frame {self.frames_read + 1}: {len(data)} of "
                                   f"{self.frame_bytes} bytes ({self.width}x{self.height} {self.pix_fmt}); "
                                   f"wrong --size or --pix-fmt?")
        self.frames_read += 1
        w, h = self.width, self.height
        if self.pix_fmt == "rgb24":
            return np.frombuffer(data, np.uint8).reshape(h, w, 3)
        y = np.frombuffer(data, np.uint8, w * h).reshape(h, w)
        u = np.frombuffer(data, np.uint8, w * h // 4, w * h).reshape(h // 2, w // 2)
        v = np.frombuffer(data, np.uint8, w * h // 4, w * h * 5 // 4).reshape(h // 2, w // 2)
        return yuv_to_rgb(y, u, v)
