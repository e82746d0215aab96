"""The public coding API over pixel arrays (the `neco` facade adds PIL images on top).

encode: array -> header + FRAME (+ ICC / EXIF) chunks -> bytes; decode: the reverse. Every
check on the input happens here, before any model runs, and raises a NecoError subclass.
Frame sequences stream: `encode_frames` writes each FRAME as it is coded, `FrameReader`
decodes one frame at a time (and seeks in files).
"""

from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from fractions import Fraction
import io
import itertools
import time
from typing import BinaryIO
import warnings

import numpy as np
import torch

from neco.formats import (ChunkType, PrefixedStream, ContainerReader, ContainerWriter, CorruptDataError, Header,
                          InvalidArgumentError, Kind, ModelError, PixelFormat, Profile, UnsupportedError,
                          read_container)

from . import registry
from .refine import MAX_REFINE_PIXELS, check_effort

# Largest image accepted, in pixels: Pillow's decompression-bomb warning limit.
MAX_PIXELS = 89_478_485
# Rate search: stop when the achieved rate is this close to the target (relative).
BPP_TOLERANCE = 0.01
# Rate search: full codings (refinement, decoder adaptation) at most (see _search_rate).
SEARCH_ROUNDS = 3


@dataclass
class EncodeResult:
    """What encode produced, with the numbers people ask for."""
    data: bytes
    bpp: float
    model_id: str
    seconds: float
    stats: dict = field(default_factory=dict)


@dataclass
class DecodeResult:
    pixels: np.ndarray  # (H, W, 3) uint8
    header: Header
    icc_profile: bytes | None
    exif: bytes | None
    seconds: float


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise InvalidArgumentError("image must be a uint8 numpy array or a PIL image")
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InvalidArgumentError(f"image array must be HxWx3, got shape {pixels.shape}")
    h, w = pixels.shape[:2]
    if h < 1 or w < 1:
        raise InvalidArgumentError(f"image is empty ({w}x{h})")
    if h * w > MAX_PIXELS:
        raise InvalidArgumentError(f"image of {w}x{h} pixels exceeds the limit of {MAX_PIXELS:,} pixels")


def encode_array(pixels: np.ndarray, quality: float | None = None, bpp: float | None = None, *,
                 pixel_format: PixelFormat = PixelFormat.RGB8, icc_profile: bytes | None = None,
                 exif: bytes | None = None, device: str = "cpu", model: str | None = None,
                 effort: int = 0) -> EncodeResult:
    """Encode an (H, W, 3) uint8 array; `quality` (0-100, default 75) or a target `bpp`.

    effort 0..MAX_EFFORT: encoder time spent refining the latents for this image and fitting a
    decoder adaptation to it (refine.py, adapt.py); one decoder reads every effort.
    """
    start = time.perf_counter()
    _check_pixels(pixels)
    _check_rate(quality, bpp)
    check_effort(effort)
    coder = registry.get_model(model or registry.DEFAULT_IMAGE_MODEL)
    h, w = pixels.shape[:2]
    payload, stats = _code_frame(coder, pixels, quality, bpp, device, effort)
    header = Header(kind=Kind.IMAGE, width=w, height=h, pixel_format=pixel_format, frame_rate=None,
                    num_frames=1, profile=Profile.IMAGE, model_id=coder.model_id,
                    weights_digest=coder.digest)
    chunks = [(ChunkType.ICC, icc_profile)] if icc_profile else []
    chunks += [(ChunkType.EXIF, exif)] if exif else []
    chunks += [(ChunkType.FRAME, payload)]
    out = io.BytesIO()
    with ContainerWriter(out, header) as writer:
        for kind, data in chunks:
            writer.write_chunk(kind, data)
    data = out.getvalue()
    return EncodeResult(data, 8 * len(data) / (h * w), coder.model_id, time.perf_counter() - start, stats)


def _check_rate(quality: float | None, bpp: float | None) -> None:
    if quality is not None and bpp is not None:
        raise InvalidArgumentError("give quality or bpp, not both")
    if bpp is not None and not (bpp > 0 and np.isfinite(bpp)):
        raise InvalidArgumentError(f"bpp must be a positive number, got {bpp}")


def _code_frame(coder, pixels: np.ndarray, quality: float | None, bpp: float | None,
                device: str, effort: int) -> tuple[bytes, dict]:
    """One (H, W, 3) uint8 frame -> its FRAME payload, at a quality (default 75) or a target bpp."""
    h, w = pixels.shape[:2]
    if effort and h * w > MAX_REFINE_PIXELS:
        warnings.warn(f"effort {effort} refines images up to {MAX_REFINE_PIXELS:,} pixels; "
                      f"this {w}x{h} image is coded at effort 0", stacklevel=4)
        effort = 0
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    y0 = coder.analyse(x, device)

    def code(rate_fx: int, probe: bool = False) -> tuple[bytes, dict]:
        """The frame coded at a rate position: fully, or as a rate search's probe (latents as
        analysed, no adaptation: one forward pass)."""
        return coder.code_latents(y0, rate_fx, 0, None) if probe else coder.code_latents(y0, rate_fx, effort, x)

    if bpp is None:
        return code(coder.rate_fx_from_quality(75.0 if quality is None else quality))
    return _search_rate(code, coder.max_rate_fx, bpp * h * w / 8)


def _search_rate(code, max_rate_fx: int, target_bytes: float) -> tuple[bytes, dict]:
    """The payload closest to target_bytes; code(rate_fx, probe) codes the frame at a rate
    position (size grows with it).

    The rate position is bisected with probes (one forward pass each). Refinement and the
    decoder adaptation then change the size at a given position, so the probes' goal is
    rescaled by the full/probe size ratio seen and the search repeats: a few full codings in
    all rather than one per probe. A target beyond the model's range gives the nearest end of
    the range and a warning.
    """
    def off(coded) -> float:
        return _miss(coded, target_bytes)

    best, goal, tried = None, target_bytes, set()
    for _ in range(SEARCH_ROUNDS):
        rate_fx, _ = _bisect_rate(lambda r: code(r, probe=True), max_rate_fx, goal)
        if rate_fx in tried:  # an end of the range again: the same full coding
            break
        tried.add(rate_fx)
        full = code(rate_fx)
        best = full if best is None or off(full) < off(best) else best
        if off(best) <= BPP_TOLERANCE * target_bytes:
            return best
        goal *= target_bytes / len(full[0])
    if rate_fx in (0, max_rate_fx) and off(best) > BPP_TOLERANCE * target_bytes:
        warnings.warn(f"target rate not reachable; coded at the nearest achievable rate "
                      f"({len(best[0]) / target_bytes:.2f}x the target)", stacklevel=4)
    return best


def _miss(coded: tuple[bytes, dict], target_bytes: float) -> float:
    return abs(len(coded[0]) - target_bytes)


def _bisect_rate(code, max_rate_fx: int, target_bytes: float) -> tuple[int, tuple[bytes, dict]]:
    """(rate position, code(position)) with the size closest to target_bytes; an end of the
    range when the target lies beyond it."""
    def off(coded) -> float:
        return _miss(coded, target_bytes)

    lo, hi = 0, max_rate_fx
    ends = {r: code(r) for r in (lo, hi)}
    if not len(ends[lo][0]) <= target_bytes <= len(ends[hi][0]):
        r = lo if target_bytes < len(ends[lo][0]) else hi
        return r, ends[r]
    best = min(ends.items(), key=lambda rc: off(rc[1]))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        coded = code(mid)
        if off(coded) < off(best[1]):
            best = (mid, coded)
        if off(coded) <= BPP_TOLERANCE * target_bytes:
            break
        lo, hi = (mid, hi) if len(coded[0]) < target_bytes else (lo, mid)
    return best


def _coder_for(header: Header):
    """The installed model that decodes `header`'s frames; refuses other weights."""
    if header.width * header.height > MAX_PIXELS:
        raise UnsupportedError(f"image of {header.width}x{header.height} exceeds the limit of {MAX_PIXELS:,} pixels")
    coder = registry.get_model(header.model_id)
    if coder.digest != header.weights_digest:
        raise ModelError(f"file was encoded with other weights of model {header.model_id!r} "
                         f"(digest {header.weights_digest.hex()}, installed {coder.digest.hex()})")
    return coder


def decode_array(data: bytes, *, device: str = "cpu") -> DecodeResult:
    """Decode `.neco` bytes to pixels; checks the model and container before any model runs."""
    start = time.perf_counter()
    container = read_container(data)
    header = container.header
    if header.kind != Kind.IMAGE or header.profile != Profile.IMAGE:
        raise UnsupportedError(f"a {header.kind.name.lower()} file (profile {header.profile}) is not a still image: "
                               f"decode its frames with neco.open() (CLI: -f y4m, or a video OUT such as .mp4)")
    frames = [c for c in container.chunks if c.type == ChunkType.FRAME]
    if len(frames) != 1:
        raise CorruptDataError(f"an image file holds exactly one FRAME chunk, found {len(frames)}")
    coder = _coder_for(header)
    pixels = coder.decode(frames[0].payload, header.height, header.width, device)
    meta = {c.type: c.payload for c in container.chunks if c.type in (ChunkType.ICC, ChunkType.EXIF)}
    return DecodeResult(pixels.permute(1, 2, 0).numpy(), header, meta.get(ChunkType.ICC),
                        meta.get(ChunkType.EXIF), time.perf_counter() - start)


@dataclass
class FramesResult:
    """What encode_frames wrote: the container went to the stream as the frames were coded."""
    frames: int
    width: int
    height: int
    bytes_written: int
    bpp: float               # over all frames
    model_id: str
    seconds: float


def encode_frames(frames: Iterable[np.ndarray], stream: BinaryIO, quality: float | None = None,
                  bpp: float | None = None, *, frame_rate: Fraction | int | None = None,
                  num_frames: int | None = None, pixel_format: PixelFormat = PixelFormat.RGB8,
                  device: str = "cpu", model: str | None = None, effort: int = 0) -> FramesResult:
    """Code (H, W, 3) uint8 frames into a VIDEO `.neco` stream, writing each FRAME as it is coded.

    Until the video profile exists every frame is an independent intra frame coded by the image
    model (profile ``image``, see docs/FORMAT.md section 10), so `quality` / `bpp` apply per
    frame. Memory does not grow with the number of frames: one frame is held at a time and the
    stream is flushed after each. An INDEX chunk (frame offsets, for seeking) precedes END.

    num_frames: declared in the header; default len(frames) when it has one, else 0 (unknown,
    e.g. a pipe). frame_rate: frames per second as a Fraction or int, or None (unknown).
    If the frames run out early or an error occurs, no END is written: the stream reads as
    truncated rather than complete.
    """
    start = time.perf_counter()
    _check_rate(quality, bpp)
    check_effort(effort)
    if num_frames is None:
        num_frames = len(frames) if isinstance(frames, Sized) else 0
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise InvalidArgumentError("no frames to encode")
    _check_pixels(first)
    coder = registry.get_model(model or registry.DEFAULT_IMAGE_MODEL)
    h, w = first.shape[:2]
    header = Header(kind=Kind.VIDEO, width=w, height=h, pixel_format=pixel_format, frame_rate=frame_rate,
                    num_frames=num_frames, profile=Profile.IMAGE, model_id=coder.model_id,
                    weights_digest=coder.digest)
    writer = ContainerWriter(stream, header)
    count = 0
    for pixels in itertools.chain([first], iterator):
        _check_pixels(pixels)
        if pixels.shape[:2] != (h, w):
            raise InvalidArgumentError(f"frame {count + 1} is {pixels.shape[1]}x{pixels.shape[0]}; "
                                       f"the stream is {w}x{h}")
        payload, _ = _code_frame(coder, pixels, quality, bpp, device, effort)
        writer.write_chunk(ChunkType.FRAME, payload)
        count += 1
        _flush(stream)
    writer.write_index()
    writer.close()
    _flush(stream)
    return FramesResult(count, w, h, writer.offset, 8 * writer.offset / (w * h * count), coder.model_id,
                        time.perf_counter() - start)


def _flush(stream) -> None:
    if callable(getattr(stream, "flush", None)):
        stream.flush()


def _seekable(stream) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class FrameReader:
    """Decodes a `.neco` stream frame by frame: `neco.open(path_or_stream)`.

        with neco.open("clip.neco") as reader:
            for pixels in reader:              # (H, W, 3) uint8, one frame decoded at a time
                ...
            reader.frame(10)                   # random access (files and other seekable streams)
            reader.frame_count()

    Iterating streams: it works on pipes and holds one frame at a time. `frame_count()` (when
    the header does not declare it) and `frame(i)` need a seekable input: the frame offsets
    come from one pass over the container (CRCs checked, no frame decoded) that also verifies
    the INDEX chunk; a FRAME is then read at its offset. Still images (kind IMAGE) read as a
    one-frame stream. Greyscale files decode to three channels, as `decode_array` does. The
    header, model and weights are checked before any model runs; `icc_profile` / `exif` are
    filled in as their chunks are read.
    """

    def __init__(self, stream: BinaryIO, *, device: str = "cpu", close_stream: bool = False) -> None:
        self._stream, self._device, self._close_stream = stream, device, close_stream
        self._base = stream.tell() if _seekable(stream) else None
        self._reader = ContainerReader(stream)
        self.header = self._reader.header
        self._header_length = self._reader.offset
        if self.header.profile != Profile.IMAGE:
            raise UnsupportedError(f"profile {self.header.profile!r} is not implemented by this build")
        self._coder = _coder_for(self.header)
        self.icc_profile: bytes | None = None
        self.exif: bytes | None = None
        self._offsets: list[int] | None = None
        self._started = False

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame in order. A seekable input can be iterated again; a pipe only once."""
        if self._started:
            if self._base is None:
                raise InvalidArgumentError("a stream that cannot seek (a pipe) can be read only once")
            self._stream.seek(self._base)
            self._reader = ContainerReader(self._stream)
        self._started = True
        for chunk in self._reader:
            self._note(chunk)
            if chunk.type == ChunkType.FRAME:
                yield self._decode(chunk.payload)

    def frame_count(self) -> int:
        """Number of frames: from the header, else counted (seekable inputs only)."""
        return self.header.num_frames or len(self._frame_offsets())

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (0-based) of a seekable input; reads only that FRAME chunk."""
        offsets = self._frame_offsets()
        if not 0 <= index < len(offsets):
            raise InvalidArgumentError(f"frame {index} out of range: the stream has {len(offsets)} frame(s)")
        position = self._stream.tell()
        try:
            self._stream.seek(self._base)
            head = self._stream.read(self._header_length)
            self._stream.seek(self._base + offsets[index])
            chunk = next(ContainerReader(PrefixedStream(head, self._stream)), None)
        finally:
            self._stream.seek(position)
        if chunk is None or chunk.type != ChunkType.FRAME:
            raise CorruptDataError(f"no FRAME chunk at the offset of frame {index}")
        return self._decode(chunk.payload)

    def _frame_offsets(self) -> list[int]:
        """Offsets of the FRAME chunks from one checked pass (the reader checks that an INDEX,
        when present, lists exactly these offsets)."""
        if self._offsets is None:
            if self._base is None:
                raise UnsupportedError("counting or seeking frames needs a seekable input (a file), not a pipe")
            position = self._stream.tell()
            try:
                self._stream.seek(self._base)
                frames = []
                for chunk in ContainerReader(self._stream):
                    self._note(chunk)
                    if chunk.type == ChunkType.FRAME:
                        frames.append(chunk.offset)
            finally:
                self._stream.seek(position)
            self._offsets = frames
        return self._offsets

    def _note(self, chunk) -> None:
        if chunk.type == ChunkType.ICC:
            self.icc_profile = chunk.payload
        elif chunk.type == ChunkType.EXIF:
            self.exif = chunk.payload

    def _decode(self, payload: bytes) -> np.ndarray:
        h = self.header
        return self._coder.decode(payload, h.height, h.width, self._device).permute(1, 2, 0).numpy()

    def close(self) -> None:
        if self._close_stream:
            self._stream.close()

    def __enter__(self) -> "FrameReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
