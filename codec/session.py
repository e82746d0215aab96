"""The session layer: pixel arrays <-> `.neco` files and streams, for any model family (the `neco`
facade adds PIL images on top).

encode: array -> header + FRAME (+ ICC / EXIF) chunks -> bytes; decode: the reverse. Every
check on the input happens here, before any model runs, and raises a NecoError subclass.
Frame sequences stream: a `FrameWriter` writes each FRAME as it is coded, a `FrameReader`
decodes one frame at a time (and seeks in files). Both keep the state of a stream (its header,
its model); `StreamDecoder` is the one place a FRAME payload is decoded, for the strict reader,
the lenient one (lenient.py) and `decode_array`. The encoder side (rate_control.py, the families'
encoders) loads only when something is encoded.
"""

from collections.abc import Callable, Iterable, Iterator, Sized
import copy
from dataclasses import dataclass, field
from fractions import Fraction
import io
import itertools
import time
from typing import BinaryIO

import numpy as np

from neco.formats import (ChunkType, PrefixedStream, ContainerReader, ContainerWriter, CorruptDataError, Header,
                          InvalidArgumentError, Kind, ModelError, NecoError, PixelFormat, Profile, UnsupportedError,
                          read_container)

from . import registry
from .constants import MAX_EFFORT

# Largest image accepted, in pixels: Pillow's decompression-bomb warning limit.
MAX_PIXELS = 89_478_485
# Key-frame interval of the video profile: a key frame every DEFAULT_GOP frames (docs/RECORD.md).
DEFAULT_GOP = 32


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
    decoder adaptation to it (image_hp/refine.py, fit.py); one decoder reads every effort.
    """
    from .rate_control import code_frame  # the encoder side loads only when encoding
    start = time.perf_counter()
    _check_pixels(pixels)
    _check_rate(quality, bpp)
    check_effort(effort)
    coder = registry.get_encoder(model or registry.DEFAULT_IMAGE_MODEL)
    h, w = pixels.shape[:2]
    payload, stats = code_frame(coder, pixels, quality, bpp, device, effort)
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


def check_effort(effort: int) -> None:
    if not (isinstance(effort, int) and 0 <= effort <= MAX_EFFORT):
        raise InvalidArgumentError(f"effort must be an integer in 0..{MAX_EFFORT}, got {effort!r}")


def _check_rate(quality: float | None, bpp: float | None) -> None:
    if quality is not None and bpp is not None:
        raise InvalidArgumentError("give quality or bpp, not both")
    if bpp is not None and not (bpp > 0 and np.isfinite(bpp)):
        raise InvalidArgumentError(f"bpp must be a positive number, got {bpp}")


class StreamDecoder:
    """Decodes the FRAME payloads of one stream, given its header: the model is found and checked
    against the header once, before any model runs. The one place a payload is decoded (strict
    and lenient readers, `decode_array`)."""

    def __init__(self, header: Header, device: str = "cpu") -> None:
        if header.width * header.height > MAX_PIXELS:
            raise UnsupportedError(f"image of {header.width}x{header.height} exceeds the limit of "
                                   f"{MAX_PIXELS:,} pixels")
        family = registry.family_of(header.model_id)
        decoder = registry.get_decoder(header.model_id)
        profile = family.profile if family is not None else Profile(getattr(decoder, "profile", Profile.IMAGE))
        if profile != header.profile:
            raise UnsupportedError(f"profile {str(header.profile)!r} is not implemented by this build "
                                   f"(model {header.model_id!r} codes profile {str(profile)!r})")
        if decoder.digest != header.weights_digest:
            raise ModelError(f"file was encoded with other weights of model {header.model_id!r} (digest "
                             f"{header.weights_digest.hex()}, installed {decoder.digest.hex()})")
        self.header, self._decoder, self._device, self._plugin = header, decoder, device, family is None
        # a family whose frames reference earlier ones (video) decodes through a per-stream state
        # holding its reference buffer; other decoders decode each payload alone
        self._state = decoder.stream() if callable(getattr(decoder, "stream", None)) else None

    def fork(self) -> "StreamDecoder":
        """Another decoder of the same stream with its own (empty) reference buffer, e.g. for seeking."""
        other = copy.copy(self)
        other._state = self._decoder.stream() if self._state is not None else None
        return other

    def reset(self) -> None:
        """Forget the reference frames (the next frame must be a key frame)."""
        if self._state is not None:
            self._state.reset()

    def is_key(self, payload: bytes) -> bool:
        """Whether a FRAME payload is a key frame (decodes alone), from its fields (no model runs)."""
        return True if self._state is None else self._decoder.is_key(payload)

    def advance(self, payload: bytes) -> None:
        """Decode a frame only as far as the next frame's reference needs (its latents, no pixels)."""
        if self._state is not None:
            h = self.header
            self._guard(lambda: self._state.latents(payload, h.height, h.width))

    def frame(self, payload: bytes) -> np.ndarray:
        """One FRAME payload -> (H, W, 3) uint8 pixels (the next frame of the stream)."""
        h = self.header
        coder = self._decoder if self._state is None else self._state
        return self._guard(lambda: coder.decode(payload, h.height, h.width, self._device).permute(1, 2, 0).numpy())

    def _guard(self, decode):
        h = self.header
        try:
            return decode()
        except NecoError:
            raise
        except Exception as exc:
            if not self._plugin:
                raise  # neco's own decoders raise NecoError on bad data: anything else is a bug
            raise ModelError(f"model plugin {h.model_id!r} failed to decode a frame: {exc}") from exc


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
    pixels = StreamDecoder(header, device).frame(frames[0].payload)
    meta = {c.type: c.payload for c in container.chunks if c.type in (ChunkType.ICC, ChunkType.EXIF)}
    return DecodeResult(pixels, header, meta.get(ChunkType.ICC),
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
    profile: str = "image"
    key_frames: int = 0      # frames that decode alone (every frame in profile image)


class FrameWriter:
    """Writes a VIDEO `.neco` stream frame by frame: the state of one encoding session (its
    header, its model, the frames written so far).

        writer = FrameWriter(stream, width, height, quality=50)
        for pixels in frames:
            writer.write(pixels)            # coded and written at once, the stream flushed
        result = writer.close()             # INDEX and END

    The profile (`frames_profile`): ``video`` (the default for a quality) codes a key frame every
    `gop` frames and P frames predicted from the frame before between them (docs/FORMAT.md
    section 12), `quality` for the whole clip; ``image`` (the default for a `bpp` target, which
    the video profile does not take yet) codes every frame as an independent intra frame
    (section 10), `quality` / `bpp` per frame. Memory does not grow with the number of frames
    (the video profile keeps one reference frame). If close is never reached (an error,
    frames that stop early), no END is written: the stream reads as truncated, not complete.
    """

    def __init__(self, stream: BinaryIO, width: int, height: int, quality: float | None = None,
                 bpp: float | None = None, *, frame_rate: Fraction | int | None = None, num_frames: int = 0,
                 pixel_format: PixelFormat = PixelFormat.RGB8, device: str = "cpu", model: str | None = None,
                 effort: int = 0, profile: str | None = None, gop: int | None = None) -> None:
        from .rate_control import code_frame  # the encoder side loads only when encoding
        _check_rate(quality, bpp)
        check_effort(effort)
        self._start = time.perf_counter()
        model, self.profile = frames_profile(model, profile, bpp)
        self._coder = registry.get_encoder(model)
        if self.profile == Profile.VIDEO:
            coder = self._coder.stream(check_gop(gop), quality, effort, device)
            self._code = lambda pixels: coder.code(pixels)[:2]
        else:
            self._code = lambda pixels: (code_frame(self._coder, pixels, quality, bpp, device, effort)[0], True)
        header = Header(kind=Kind.VIDEO, width=width, height=height, pixel_format=pixel_format,
                        frame_rate=frame_rate, num_frames=num_frames, profile=self.profile,
                        model_id=self._coder.model_id, weights_digest=self._coder.digest)
        self._writer = ContainerWriter(stream, header, key_flags=self.profile == Profile.VIDEO)
        self._stream, self.frames, self.key_frames = stream, 0, 0

    def write(self, pixels: np.ndarray) -> None:
        """Code one (H, W, 3) uint8 frame of the stream's size and write it."""
        _check_pixels(pixels)
        h = self._writer.header
        if pixels.shape[:2] != (h.height, h.width):
            raise InvalidArgumentError(f"frame {self.frames + 1} is {pixels.shape[1]}x{pixels.shape[0]}; "
                                       f"the stream is {h.width}x{h.height}")
        payload, key = self._code(pixels)
        self._writer.write_chunk(ChunkType.FRAME, payload, key=key)
        self.frames += 1
        self.key_frames += key
        _flush(self._stream)

    def close(self) -> "FramesResult":
        """The INDEX chunk (frame offsets, for seeking) and END; what was written."""
        self._writer.write_index()
        self._writer.close()
        _flush(self._stream)
        h, size = self._writer.header, self._writer.offset
        return FramesResult(self.frames, h.width, h.height, size, 8 * size / (h.width * h.height * self.frames),
                            self._coder.model_id, time.perf_counter() - self._start, str(self.profile),
                            self.key_frames)


def frames_profile(model: str | None, profile: str | None, bpp: float | None) -> tuple[str, Profile]:
    """(model id, profile) of a frame sequence: the model's profile when a model is named (a
    `profile` must then agree), else the default model of `profile`, else of ``video`` for a
    quality and ``image`` for a bpp target (the video profile has no rate search yet)."""
    if profile is not None:
        try:
            profile = Profile(profile)
        except ValueError:
            raise InvalidArgumentError(f"unknown profile {profile!r} for frames (known: image, video)") from None
    if model is None:
        wanted = profile or (Profile.IMAGE if bpp is not None else Profile.VIDEO)
        model = registry.DEFAULT_VIDEO_MODEL if wanted == Profile.VIDEO else registry.DEFAULT_IMAGE_MODEL
    family = registry.family_of(model)
    coded = family.profile if family is not None else Profile(getattr(registry.get_decoder(model), "profile",
                                                                      Profile.IMAGE))
    if profile is not None and profile != coded:
        raise InvalidArgumentError(f"model {model!r} codes profile {str(coded)!r}, not {str(profile)!r}")
    if coded not in (Profile.IMAGE, Profile.VIDEO):
        raise InvalidArgumentError(f"profile {str(coded)!r} does not code frame sequences")
    if coded == Profile.VIDEO and bpp is not None:
        raise InvalidArgumentError("the video profile codes at a quality (no bpp target yet): give quality, "
                                   "or profile 'image' for intra frames at a bpp")
    return model, coded


def check_gop(gop: int | None) -> int:
    """The key-frame interval: DEFAULT_GOP, or an integer >= 1 (1: every frame a key frame)."""
    if gop is None:
        return DEFAULT_GOP
    if isinstance(gop, bool) or not isinstance(gop, int) or gop < 1:
        raise InvalidArgumentError(f"gop (the key-frame interval) must be an integer >= 1, got {gop!r}")
    return gop


def encode_frames(frames: Iterable[np.ndarray], stream: BinaryIO, quality: float | None = None,
                  bpp: float | None = None, *, frame_rate: Fraction | int | None = None,
                  num_frames: int | None = None, pixel_format: PixelFormat = PixelFormat.RGB8,
                  device: str = "cpu", model: str | None = None, effort: int = 0,
                  progress: Callable[[int, int | None], None] | None = None, profile: str | None = None,
                  gop: int | None = None) -> FramesResult:
    """Code (H, W, 3) uint8 frames into a VIDEO `.neco` stream through a `FrameWriter`.

    profile / gop: see `FrameWriter` (default: the video profile, a key frame every DEFAULT_GOP
    frames; the image profile, intra frames, for a bpp target).

    num_frames: declared in the header; default len(frames) when it has one, else 0 (unknown,
    e.g. a pipe). frame_rate: frames per second as a Fraction or int, or None (unknown).
    progress: called after each frame is written with (frames done, num_frames or None).
    """
    _check_rate(quality, bpp)
    check_effort(effort)
    frames_profile(model, profile, bpp)
    check_gop(gop)
    if num_frames is None:
        num_frames = len(frames) if isinstance(frames, Sized) else 0
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise InvalidArgumentError("no frames to encode")
    _check_pixels(first)
    writer = FrameWriter(stream, first.shape[1], first.shape[0], quality, bpp, frame_rate=frame_rate,
                         num_frames=num_frames, pixel_format=pixel_format, device=device, model=model, effort=effort,
                         profile=profile, gop=gop)
    for pixels in itertools.chain([first], iterator):
        writer.write(pixels)
        if progress is not None:
            progress(writer.frames, num_frames or None)
    return writer.close()


def _flush(stream) -> None:
    if callable(getattr(stream, "flush", None)):
        stream.flush()


def _seekable(stream) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class StreamReader:
    """What the strict and the lenient readers share: the stream (closed on exit if the reader
    opened it), the metadata chunks seen so far, and the context-manager protocol."""

    def __init__(self, stream: BinaryIO, close_stream: bool) -> None:
        self._stream, self._close_stream = stream, close_stream
        self.icc_profile: bytes | None = None
        self.exif: bytes | None = None

    def _note(self, chunk) -> None:
        """Keep an ICC or EXIF chunk's payload as it goes by."""
        if chunk.type == ChunkType.ICC:
            self.icc_profile = chunk.payload
        elif chunk.type == ChunkType.EXIF:
            self.exif = chunk.payload

    def close(self) -> None:
        if self._close_stream:
            self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FrameReader(StreamReader):
    """Decodes a `.neco` stream frame by frame: `neco.open(path_or_stream)`.

        with neco.open("clip.neco") as reader:
            for pixels in reader:              # (H, W, 3) uint8, one frame decoded at a time
                ...
            reader.frame(10)                   # random access (files and other seekable streams)
            reader.frame_count()

    Iterating streams: it works on pipes and holds one frame at a time (and the video profile's
    reference). `frame_count()` (when the header does not declare it) and `frame(i)` need a
    seekable input: the frame offsets and key frames come from one pass over the container
    (CRCs checked, each frame's type read, no frame decoded) that also verifies the INDEX chunk
    (offsets and key-frame flags); `frame(i)` then decodes from the last key frame at or before
    i (the frames before i only as far as their latents), or goes on from the frame it decoded
    last when that is on the way. Still images (kind IMAGE) read as a
    one-frame stream. Greyscale files decode to three channels, as `decode_array` does. The
    header, model and weights are checked before any model runs; `icc_profile` / `exif` are
    filled in as their chunks are read.
    """

    def __init__(self, stream: BinaryIO, *, device: str = "cpu", close_stream: bool = False) -> None:
        super().__init__(stream, close_stream)
        self._base = stream.tell() if _seekable(stream) else None
        self._reader = ContainerReader(stream)
        self.header = self._reader.header
        self._header_length = self._reader.offset
        self._decoder = StreamDecoder(self.header, device)
        self._offsets: list[int] | None = None
        self._keys: list[bool] = []
        self._seek, self._seek_at = self._decoder.fork(), None   # seeking's decoder and the frame it holds
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
        self._decoder.reset()
        for chunk in self._reader:
            self._note(chunk)
            if chunk.type == ChunkType.FRAME:
                yield self._decoder.frame(chunk.payload)

    def frame_count(self) -> int:
        """Number of frames: from the header, else counted (seekable inputs only)."""
        return self.header.num_frames or len(self._frame_offsets())

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (0-based) of a seekable input: decoded from the last key frame at or
        before it (for intra frames, only that FRAME chunk is read)."""
        offsets = self._frame_offsets()
        if not 0 <= index < len(offsets):
            raise InvalidArgumentError(f"frame {index} out of range: the stream has {len(offsets)} frame(s)")
        key = max(i for i in range(index + 1) if self._keys[i])
        start = key
        if self._seek_at is not None and key <= self._seek_at < index:
            start = self._seek_at + 1      # the reference it holds is on the way
        self._seek_at = None               # a failure below leaves no usable reference
        if start == key:
            self._seek.reset()
        for i in range(start, index):
            self._seek.advance(self._payload(i))
        pixels = self._seek.frame(self._payload(index))
        self._seek_at = index
        return pixels

    def _payload(self, index: int) -> bytes:
        """The payload of FRAME `index`, read at its offset (CRC checked)."""
        offsets = self._frame_offsets()
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
        return chunk.payload

    def _frame_offsets(self) -> list[int]:
        """Offsets of the FRAME chunks from one checked pass (the reader checks that an INDEX,
        when present, lists exactly these offsets), with each frame's key flag from its payload,
        checked against the INDEX's key-frame flags when it has them."""
        if self._offsets is None:
            if self._base is None:
                raise UnsupportedError("counting or seeking frames needs a seekable input (a file), not a pipe")
            position = self._stream.tell()
            try:
                self._stream.seek(self._base)
                frames, keys = [], []
                reader = ContainerReader(self._stream)
                for chunk in reader:
                    self._note(chunk)
                    if chunk.type == ChunkType.FRAME:
                        frames.append(chunk.offset)
                        keys.append(self._decoder.is_key(chunk.payload))
            finally:
                self._stream.seek(position)
            if keys and not keys[0]:
                raise CorruptDataError("the first frame is not a key frame: nothing before it to predict it from")
            if reader.key_frames is not None and reader.key_frames != keys:
                wrong = next(i for i, (a, b) in enumerate(zip(reader.key_frames, keys)) if a != b)
                raise CorruptDataError(f"INDEX key-frame flags do not match the frames (frame {wrong})")
            self._offsets, self._keys = frames, keys
        return self._offsets

