"""The `.neco` container: magic, version, a CRC-protected header, then typed, CRC-protected chunks.

The byte layout is specified in docs/FORMAT.md; this module is its reference implementation.
It knows nothing about models: a FRAME payload is opaque bytes produced by `neco.codec`, so a
file can be inspected and validated without torch or weights.

    magic(4) version(2) header-length(varint) header CRC-32(4)
    { chunk-type(1) payload-length(varint) payload CRC-32(4) } ...  END-chunk

Each CRC-32 covers every byte from the end of the previous CRC (or the file start) up to
itself, so every byte of a file is checked. Writer and reader are streaming: the writer only
calls `.write`, the reader only `.read(n)` in bounded pieces, so both work on pipes, and memory
follows the bytes actually present, never a length claimed by the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from fractions import Fraction
import io
from numbers import Rational
import operator
import re
from typing import BinaryIO, Iterable, Iterator, Sequence
import zlib

from .errors import CorruptDataError, InvalidArgumentError, UnsupportedError
from .varint import MAX_VARINT_BYTES, decode_varint, encode_varint

MAGIC = b"\x8fN\r\n"            # high-bit byte, 'N', CR LF: text-mode and 7-bit transfers break it
VERSION = (1, 0)                # (major, minor) written by this build for a stream without key flags; reads any 1.x
KEY_FLAGS_VERSION = (1, 1)      # written for a stream whose INDEX carries key-frame flags (FORMAT.md 4.1)
MAX_HEADER_BYTES = 1024         # bytes of header body (between header length and header CRC)
MAX_DIMENSION = 1 << 20         # pixels, per side
MAX_MODEL_ID_BYTES = 64         # bytes of ASCII
WEIGHTS_DIGEST_BYTES = 4        # bytes: SHA-256 of the weights file, truncated
MAX_FRAMES = 2**32 - 1          # frames in one stream
MAX_RATE_TERM = 2**32 - 1       # frame rate numerator / denominator (frames per second)
MAX_CHUNK_BYTES = 1 << 31       # bytes of one chunk payload
READ_PIECE_BYTES = 1 << 20      # bytes per .read() call: bounds memory for lying lengths
CRC_BYTES = 4                   # CRC-32, little-endian
ANCILLARY_BIT = 0x80            # chunk type bit: set = ancillary (skippable), clear = critical

_MODEL_ID = re.compile(r"[A-Za-z0-9._-]+")


class Kind(IntEnum):
    """What the stream holds. Ids are fixed by the format."""

    IMAGE = 1
    VIDEO = 2


class PixelFormat(IntEnum):
    """Pixel layout of the decoded frames. Ids are fixed by the format."""

    RGB8 = 1
    GRAY8 = 2
    RGBA8 = 3
    YUV420P8 = 4


class Profile(StrEnum):
    """Family of coding tools a decoder needs, independent of any model's weights.

    The model id names the exact network; the profile tells a reader (and `neco info`) what
    kind of decoder that is before any model is loaded. A profile is named by its stable
    string (`Profile("image") == "image"`) and stored as the fixed numeric id in PROFILE_IDS.
    """

    IMAGE = "image"            # learned transform + hyperprior / context prior
    VIDEO = "video"            # I-frames with the image tools, P-frames coded conditionally
    GENERATIVE = "generative"  # binary / FSQ latents, refining decoder with a stored seed


PROFILE_IDS = {Profile.IMAGE: 1, Profile.VIDEO: 2, Profile.GENERATIVE: 3}  # wire ids, fixed
_PROFILE_BY_ID = {number: profile for profile, number in PROFILE_IDS.items()}


class ChunkType(IntEnum):
    """Chunk type ids; bit 7 (ANCILLARY_BIT) set means a reader may skip an unknown one."""

    FRAME = 0x01   # critical: one coded frame (image) payload, opaque to formats
    END = 0x02     # critical: empty; marks a complete stream
    INDEX = 0x81   # ancillary: offsets of the FRAME chunks, for seeking
    ICC = 0x82     # ancillary: ICC colour profile, passed through
    EXIF = 0x83    # ancillary: EXIF metadata, passed through


_KNOWN_TYPES = frozenset(ChunkType)
_SINGLETONS = frozenset({ChunkType.INDEX, ChunkType.ICC, ChunkType.EXIF})  # at most one per stream


def is_critical(chunk_type: int) -> bool:
    """True when a reader that does not know `chunk_type` must refuse the stream."""
    return not chunk_type & ANCILLARY_BIT


def _chunk_name(chunk_type: int) -> str:
    try:
        return ChunkType(chunk_type).name
    except ValueError:
        return f"type 0x{chunk_type:02x}"


def _enum(enum: type[IntEnum], value: object, what: str) -> IntEnum:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be a {enum.__name__}, got {value!r}")
    try:
        return enum(value)
    except ValueError:
        raise InvalidArgumentError(f"unknown {what} {value}") from None


def _int_in(value: object, lo: int, hi: int, what: str) -> int:
    """`value` as a plain int (numpy integers accepted), checked to lie in [lo, hi]."""
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or not lo <= number <= hi:
        raise InvalidArgumentError(f"{what} must be an integer in [{lo}, {hi}], got {value!r}")
    return number


@dataclass(frozen=True)
class Header:
    """Everything a reader learns before the first chunk; validated on construction.

    An IMAGE has `frame_rate=None` and `num_frames=1`. A VIDEO has a positive rational
    `frame_rate` (None if unknown) and `num_frames` (0 if unknown, e.g. while streaming).
    Invalid values raise InvalidArgumentError (the reader turns that into CorruptDataError).
    """

    kind: Kind
    width: int
    height: int
    pixel_format: PixelFormat
    frame_rate: Fraction | None
    num_frames: int
    profile: Profile
    model_id: str
    weights_digest: bytes

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        put("kind", _enum(Kind, self.kind, "kind"))
        put("pixel_format", _enum(PixelFormat, self.pixel_format, "pixel format"))
        if not isinstance(self.profile, str) or self.profile not in PROFILE_IDS:
            raise InvalidArgumentError(f"unknown profile {self.profile!r} (known: {', '.join(PROFILE_IDS)})")
        put("profile", Profile(self.profile))
        put("width", _int_in(self.width, 1, MAX_DIMENSION, "width"))
        put("height", _int_in(self.height, 1, MAX_DIMENSION, "height"))
        if self.kind is Kind.IMAGE:
            if self.frame_rate is not None:
                raise InvalidArgumentError("an image has no frame rate (use None)")
            put("num_frames", _int_in(self.num_frames, 1, 1, "number of frames of an image"))
        else:
            put("num_frames", _int_in(self.num_frames, 0, MAX_FRAMES, "number of frames"))
            if self.frame_rate is not None:
                put("frame_rate", _frame_rate(self.frame_rate))
        if not isinstance(self.model_id, str) or not _MODEL_ID.fullmatch(self.model_id):
            raise InvalidArgumentError(f"model id must be ASCII letters, digits, '.', '_', '-', got {self.model_id!r}")
        if len(self.model_id) > MAX_MODEL_ID_BYTES:
            raise InvalidArgumentError(f"model id longer than {MAX_MODEL_ID_BYTES} bytes: {self.model_id!r}")
        if not isinstance(self.weights_digest, (bytes, bytearray)) or len(self.weights_digest) != WEIGHTS_DIGEST_BYTES:
            raise InvalidArgumentError(f"weights digest must be {WEIGHTS_DIGEST_BYTES} bytes, "
                                       f"got {self.weights_digest!r}")
        put("weights_digest", bytes(self.weights_digest))

    def pretty(self) -> str:
        """A short multi-line, human-readable description (for `neco info`)."""
        lines = [
            f"kind          {self.kind.name.lower()}",
            f"size          {self.width} x {self.height} px",
            f"pixel format  {self.pixel_format.name}",
        ]
        if self.kind is Kind.VIDEO:
            rate = self.frame_rate
            lines.append(f"frame rate    {'unknown' if rate is None else f'{rate} fps ({float(rate):.3f})'}")
            lines.append(f"frames        {self.num_frames or 'unknown'}")
        lines.append(f"profile       {self.profile}")
        lines.append(f"model         {self.model_id} (weights sha256 {self.weights_digest.hex()}...)")
        return "\n".join(lines)


def _frame_rate(value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, Rational):
        raise InvalidArgumentError(f"frame rate must be a Fraction or int (not a float), got {value!r}")
    rate = Fraction(value)
    if rate <= 0 or rate.numerator > MAX_RATE_TERM or rate.denominator > MAX_RATE_TERM:
        raise InvalidArgumentError(f"frame rate must be positive with terms <= {MAX_RATE_TERM}, got {rate}")
    return rate


@dataclass(frozen=True)
class Chunk:
    """One known chunk: its type, payload and the file offset of its type byte."""

    type: int
    payload: bytes = field(repr=False)
    offset: int

    def __repr__(self) -> str:
        return f"Chunk({_chunk_name(self.type)}, {len(self.payload)} bytes at offset {self.offset})"


@dataclass(frozen=True)
class SkippedChunk:
    """An unknown ancillary chunk the reader skipped (CRC checked, payload discarded)."""

    type: int
    offset: int
    length: int


@dataclass(frozen=True)
class Container:
    """A whole `.neco` stream read into memory by `read_container`."""

    header: Header
    chunks: list[Chunk]
    skipped: list[SkippedChunk]
    total_size: int
    version: tuple[int, int] = VERSION
    key_frames: list[bool] | None = None   # the INDEX's key-frame flags (format 1.1); None: not given

    def is_key(self, frame: int) -> bool:
        """Whether FRAME number `frame` is a key frame: per the INDEX flags, else every frame is."""
        return self.key_frames is None or self.key_frames[frame]

    @property
    def frames(self) -> list[bytes]:
        """The FRAME payloads, in stream order."""
        return [c.payload for c in self.chunks if c.type == ChunkType.FRAME]

    def payload(self, chunk_type: int) -> bytes | None:
        """The payload of the first chunk of `chunk_type` (e.g. ICC, EXIF), or None."""
        return next((c.payload for c in self.chunks if c.type == chunk_type), None)


def _crc_bytes(crc: int) -> bytes:
    return crc.to_bytes(CRC_BYTES, "little")


def _encode_header(header: Header, version: tuple[int, int] = VERSION) -> bytes:
    """Magic, version, header length, header body and header CRC."""
    model_id = header.model_id.encode("ascii")
    fields = [
        encode_varint(header.kind),
        encode_varint(header.width),
        encode_varint(header.height),
        encode_varint(header.pixel_format),
        encode_varint(PROFILE_IDS[header.profile]),
        encode_varint(len(model_id)),
        model_id,
        header.weights_digest,
    ]
    if header.kind is Kind.VIDEO:
        rate = header.frame_rate
        num, den = (0, 1) if rate is None else (rate.numerator, rate.denominator)
        fields += [encode_varint(num), encode_varint(den), encode_varint(header.num_frames)]
    body = b"".join(fields)
    head = MAGIC + bytes(version) + encode_varint(len(body)) + body
    return head + _crc_bytes(zlib.crc32(head))


class _Fields:
    """Cursor over a header body; running off its end is CorruptDataError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def varint(self, what: str) -> int:
        value, self.pos = decode_varint(self.data, self.pos, f"header {what}")
        return value

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise CorruptDataError(f"header too short: it ends inside the {what}")
        self.pos += n
        return self.data[self.pos - n:self.pos]


def _known(enum: type[IntEnum], value: int, what: str) -> IntEnum:
    try:
        return enum(value)
    except ValueError:
        raise UnsupportedError(f"unknown {what} id {value} (this build knows "
                               f"{', '.join(f'{e.value}={e.name}' for e in enum)})") from None


def _decode_header(body: bytes) -> Header:
    """Parse a CRC-checked header body; bytes after the known fields are ignored."""
    f = _Fields(body)
    kind = _known(Kind, f.varint("kind"), "kind")
    width, height = f.varint("width"), f.varint("height")
    pixel_format = _known(PixelFormat, f.varint("pixel format"), "pixel format")
    profile_id = f.varint("profile")
    if profile_id not in _PROFILE_BY_ID:
        raise UnsupportedError(f"unknown profile id {profile_id} (this build knows "
                               f"{', '.join(f'{n}={p}' for p, n in PROFILE_IDS.items())})")
    profile = _PROFILE_BY_ID[profile_id]
    id_len = f.varint("model id length")
    if not 1 <= id_len <= MAX_MODEL_ID_BYTES:
        raise CorruptDataError(f"header model id length {id_len} not in [1, {MAX_MODEL_ID_BYTES}]")
    try:
        model_id = f.take(id_len, "model id").decode("ascii")
    except UnicodeDecodeError:
        raise CorruptDataError("header model id is not ASCII") from None
    digest = f.take(WEIGHTS_DIGEST_BYTES, "weights digest")
    frame_rate, num_frames = None, 1
    if kind is Kind.VIDEO:
        num, den = f.varint("frame rate numerator"), f.varint("frame rate denominator")
        num_frames = f.varint("number of frames")
        if den == 0 or (num == 0 and den != 1):
            raise CorruptDataError(f"header frame rate {num}/{den} is invalid (0/1 means unknown)")
        frame_rate = Fraction(num, den) if num else None
    try:
        return Header(kind, width, height, pixel_format, frame_rate, num_frames, profile, model_id, digest)
    except InvalidArgumentError as e:
        raise CorruptDataError(f"header: {e}") from None


def encode_index(frame_offsets: Sequence[int], key_frames: Sequence[bool] | None = None) -> bytes:
    """INDEX payload: count, first offset, then the gaps between successive offsets (varints);
    then, when `key_frames` is given (format 1.1), one key-frame flag per frame, a bit each."""
    out, previous = [encode_varint(len(frame_offsets))], None
    for offset in frame_offsets:
        if previous is not None and offset <= previous:
            raise InvalidArgumentError(f"frame offsets must increase, got {offset} after {previous}")
        out.append(encode_varint(offset if previous is None else offset - previous))
        previous = offset
    if key_frames is not None:
        if len(key_frames) != len(frame_offsets):
            raise InvalidArgumentError(f"{len(key_frames)} key-frame flags for {len(frame_offsets)} frames")
        if key_frames and not key_frames[0]:
            raise InvalidArgumentError("the first frame of a stream must be a key frame")
        flags = bytearray((len(key_frames) + 7) // 8)
        for i, key in enumerate(key_frames):
            flags[i // 8] |= bool(key) << (i % 8)
        out.append(bytes(flags))
    return b"".join(out)


def decode_index(payload: bytes) -> list[int]:
    """FRAME offsets from an INDEX payload; bytes after the list are ignored (future fields)."""
    return _decode_offsets(payload)[0]


def decode_index_keys(payload: bytes) -> tuple[list[int], list[bool] | None]:
    """FRAME offsets and key-frame flags from the INDEX payload of a format 1.1 (or later) stream:
    the flags are None when the payload ends after the offsets (every frame is then a key frame);
    bytes after the flags are ignored (later fields). The flags of padding bits must be 0 and the
    first frame must be a key frame, else the INDEX is corrupt."""
    offsets, pos = _decode_offsets(payload)
    if pos == len(payload):
        return offsets, None
    flags = payload[pos:pos + (len(offsets) + 7) // 8]
    if len(flags) < (len(offsets) + 7) // 8:
        raise CorruptDataError(f"INDEX ends inside its key-frame flags ({len(flags)} bytes for {len(offsets)} frames)")
    keys = [bool(flags[i // 8] >> (i % 8) & 1) for i in range(len(offsets))]
    if len(offsets) % 8 and flags[-1] >> (len(offsets) % 8):
        raise CorruptDataError("INDEX key-frame flags set past the last frame")
    if keys and not keys[0]:
        raise CorruptDataError("INDEX says the first frame is not a key frame")
    return offsets, keys


def _decode_offsets(payload: bytes) -> tuple[list[int], int]:
    """The offsets of an INDEX payload and the position after them."""
    count, pos = decode_varint(payload, 0, "INDEX count")
    if count > len(payload) - pos:  # each entry takes at least one byte
        raise CorruptDataError(f"INDEX claims {count} entries in {len(payload) - pos} bytes")
    offsets: list[int] = []
    for i in range(count):
        step, pos = decode_varint(payload, pos, f"INDEX entry {i}")
        if i and step == 0:
            raise CorruptDataError(f"INDEX entry {i} does not increase")
        offsets.append(step + (offsets[-1] if offsets else 0))
    return offsets, pos


class ContainerWriter:
    """Streams a `.neco` file to a binary file-like object, calling only `.write`.

    The magic and header are written on construction; `close()` writes END (it does not close
    the stream). As a context manager it writes END only when the block ends without an
    exception, so a failed encode never looks like a complete stream.

    key_flags=True: the stream's INDEX carries a key-frame flag per frame (`write_chunk`'s `key`),
    and the version written is KEY_FLAGS_VERSION (1.1); otherwise VERSION (1.0), as before.
    """

    def __init__(self, stream: BinaryIO, header: Header, *, key_flags: bool = False) -> None:
        if not isinstance(header, Header):
            raise InvalidArgumentError(f"header must be a Header, got {type(header).__name__}")
        self.header = header
        self.offset = 0                       # bytes written so far
        self.frame_offsets: list[int] = []    # offsets of the FRAME chunks, for INDEX
        self.key_frames: list[bool] | None = [] if key_flags else None   # key flag of each FRAME, for INDEX
        self.closed = False
        self._stream = stream
        self._seen: set[int] = set()
        self._write(_encode_header(header, KEY_FLAGS_VERSION if key_flags else VERSION))

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self.offset += len(data)

    def write_chunk(self, chunk_type: int, payload: bytes, *, key: bool = True) -> int:
        """Append one chunk; return its offset. Any type but END (see `close`) is allowed. `key`:
        whether a FRAME is a key frame (decodable without earlier frames), for the INDEX's flags."""
        if self.closed:
            raise InvalidArgumentError("write_chunk after close()")
        chunk_type = _int_in(chunk_type, 0, 0xFF, "chunk type")
        if chunk_type == ChunkType.END:
            raise InvalidArgumentError("END is written by close()")
        try:
            view = memoryview(payload).cast("B")
        except TypeError:
            raise InvalidArgumentError(f"payload must be bytes-like, got {type(payload).__name__}") from None
        if len(view) > MAX_CHUNK_BYTES:
            raise InvalidArgumentError(f"chunk payload of {len(view)} bytes exceeds {MAX_CHUNK_BYTES}")
        if chunk_type in _SINGLETONS and chunk_type in self._seen:
            raise InvalidArgumentError(f"at most one {_chunk_name(chunk_type)} chunk per stream")
        if chunk_type == ChunkType.FRAME and 0 < self.header.num_frames <= len(self.frame_offsets):
            raise InvalidArgumentError(f"header declares {self.header.num_frames} frame(s); cannot write more")
        self._seen.add(chunk_type)
        offset = self.offset
        if chunk_type == ChunkType.FRAME:
            self.frame_offsets.append(offset)
            if self.key_frames is not None:
                self.key_frames.append(bool(key))
        head = bytes([chunk_type]) + encode_varint(len(view))
        self._write(head)
        self._write(view)
        self._write(_crc_bytes(zlib.crc32(view, zlib.crc32(head))))
        return offset

    def write_index(self) -> int:
        """Write an INDEX chunk listing the FRAME chunks written so far (and their key flags when
        the stream has them); return its offset."""
        return self.write_chunk(ChunkType.INDEX, encode_index(self.frame_offsets, self.key_frames))

    def close(self) -> None:
        """Write END, marking the stream complete. A second call does nothing."""
        if self.closed:
            return
        declared = self.header.num_frames
        if declared and len(self.frame_offsets) != declared:
            raise InvalidArgumentError(f"header declares {declared} frame(s) but "
                                       f"{len(self.frame_offsets)} were written")
        head = bytes([ChunkType.END, 0])
        self._write(head + _crc_bytes(zlib.crc32(head)))
        self.closed = True

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


class PrefixedStream:
    """A read-only stream: `head`, then whatever `stream` reads from its current position.

    Reading one chunk at a known offset goes through it: a `ContainerReader` over the file's
    header bytes followed by the stream positioned at that chunk.
    """

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def read(self, n: int) -> bytes:
        if self._head:
            piece, self._head = self._head[:n], self._head[n:]
            return piece
        return self._stream.read(n)


class ContainerReader:
    """Reads a `.neco` stream from a binary file-like object, calling only `.read(n)`.

    The header is parsed on construction. Iterating yields the known chunks (FRAME, ICC, EXIF,
    INDEX) and stops after END, leaving the stream just past it (streams may be concatenated).
    Unknown ancillary chunks are CRC-checked, discarded and listed in `skipped`. Every CRC is
    checked before the bytes it covers are trusted.
    """

    def __init__(self, stream: BinaryIO) -> None:
        if not callable(getattr(stream, "read", None)):
            raise InvalidArgumentError("ContainerReader needs a binary stream with .read(); "
                                       "use read_container() for bytes")
        self._stream = stream
        self.offset = 0                      # bytes consumed so far
        self.skipped: list[SkippedChunk] = []
        self.complete = False                # True once END has been read
        self._crc = 0                        # running CRC-32 since the previous CRC field
        self._frame_offsets: list[int] = []
        self._index: list[int] | None = None
        self.key_frames: list[bool] | None = None   # the INDEX's key-frame flags (format 1.1), once read
        self._seen: set[int] = set()
        self.version = VERSION
        self.header = self._read_header()

    def _consume(self, n: int, checked: bool = True, keep: bool = True) -> tuple[bytes, int]:
        """Read up to n bytes (fewer only at end of stream) in pieces of READ_PIECE_BYTES.

        Returns (the bytes, or b"" when not `keep`, and how many were read). `checked` bytes
        feed the running CRC.
        """
        pieces, got = [], 0
        while got < n:
            piece = self._stream.read(min(n - got, READ_PIECE_BYTES))
            if isinstance(piece, str):
                raise InvalidArgumentError("stream is in text mode; open it in binary mode ('rb')")
            if not piece:
                break
            got += len(piece)
            if checked:
                self._crc = zlib.crc32(piece, self._crc)
            if keep:
                pieces.append(piece)
        self.offset += got
        return b"".join(pieces), got

    def _read(self, n: int, what: str, keep: bool = True) -> bytes:
        start = self.offset
        data, got = self._consume(n, keep=keep)
        if got < n:
            raise CorruptDataError(f"truncated {what}: {got} of {n} bytes at offset {start}")
        return data

    def _read_varint(self, what: str) -> int:
        raw = bytearray()
        while not raw or (raw[-1] & 0x80 and len(raw) < MAX_VARINT_BYTES):
            raw += self._read(1, what)
        return decode_varint(bytes(raw), 0, what)[0]

    def _check_crc(self, what: str) -> None:
        expected = self._crc
        start = self.offset
        stored, got = self._consume(CRC_BYTES, checked=False)
        if got < CRC_BYTES:
            raise CorruptDataError(f"truncated CRC of {what} at offset {start}")
        if int.from_bytes(stored, "little") != expected:
            raise CorruptDataError(f"CRC mismatch in {what}")
        self._crc = 0

    def _read_header(self) -> Header:
        magic, _ = self._consume(len(MAGIC))
        if not magic:
            raise CorruptDataError("empty input: not a neco file")
        if magic != MAGIC:
            if MAGIC.startswith(magic):
                raise CorruptDataError(f"truncated magic: {len(magic)} of {len(MAGIC)} bytes")
            if magic[:2] == MAGIC[:2] or magic[1:3] == MAGIC[1:3]:
                raise CorruptDataError("not a neco file: damaged magic (text-mode or 7-bit transfer?)")
            raise CorruptDataError("not a neco file (bad magic)")
        major, minor = self._read(2, "version")
        if major != VERSION[0]:
            raise UnsupportedError(f"neco format version {major}.{minor} is not supported "
                                   f"(this build reads {VERSION[0]}.x)")
        self.version = (major, minor)
        length = self._read_varint("header length")
        if length > MAX_HEADER_BYTES:
            raise CorruptDataError(f"header length {length} exceeds {MAX_HEADER_BYTES} bytes")
        body = self._read(length, "header")
        self._check_crc("header")
        return _decode_header(body)

    def __iter__(self) -> Iterator[Chunk]:
        return self

    def __next__(self) -> Chunk:
        while not self.complete:
            start = self.offset
            first, _ = self._consume(1)
            if not first:
                raise CorruptDataError(f"truncated stream: it ends at offset {start} without an END chunk")
            chunk_type = first[0]
            name = f"{_chunk_name(chunk_type)} chunk at offset {start}"
            length = self._read_varint(f"length of {name}")
            if length > MAX_CHUNK_BYTES:
                raise CorruptDataError(f"length {length} of {name} exceeds {MAX_CHUNK_BYTES} bytes")
            known = chunk_type in _KNOWN_TYPES
            payload = self._read(length, f"payload of {name}", keep=known and chunk_type != ChunkType.END)
            self._check_crc(name)
            if not known:
                if is_critical(chunk_type):
                    raise UnsupportedError(f"unknown critical chunk type 0x{chunk_type:02x} at offset {start} "
                                           f"(written by a newer neco?)")
                self.skipped.append(SkippedChunk(chunk_type, start, length))
                continue
            chunk_type = ChunkType(chunk_type)
            if chunk_type == ChunkType.END:
                self._finish()
                break
            self._accept(chunk_type, payload, start)
            return Chunk(chunk_type, payload, start)
        raise StopIteration

    def _accept(self, chunk_type: ChunkType, payload: bytes, start: int) -> None:
        """Stream-level rules for a known chunk, checked as it arrives."""
        if chunk_type in _SINGLETONS and chunk_type in self._seen:
            raise CorruptDataError(f"second {chunk_type.name} chunk at offset {start}")
        self._seen.add(chunk_type)
        if chunk_type == ChunkType.FRAME:
            self._frame_offsets.append(start)
            if 0 < self.header.num_frames < len(self._frame_offsets):
                raise CorruptDataError(f"more FRAME chunks than the {self.header.num_frames} the header declares")
        elif chunk_type == ChunkType.INDEX:
            if self.version >= KEY_FLAGS_VERSION:
                self._index, self.key_frames = decode_index_keys(payload)
            else:   # a 1.0 INDEX: bytes after the offsets mean nothing
                self._index = decode_index(payload)

    def _finish(self) -> None:
        declared, found = self.header.num_frames, len(self._frame_offsets)
        if declared and found != declared:
            raise CorruptDataError(f"END after {found} FRAME chunk(s); the header declares {declared}")
        if self._index is not None and self._index != self._frame_offsets:
            raise CorruptDataError("INDEX does not match the offsets of the FRAME chunks")
        self.complete = True


def write_container(header: Header, chunks: Iterable[tuple[int, bytes]], index: bool = False,
                    key_frames: Sequence[bool] | None = None) -> bytes:
    """A complete stream: header, the given (type, payload) chunks, optionally INDEX, then END.
    key_frames: a key flag per FRAME chunk, in order, for a format 1.1 INDEX (needs index=True)."""
    out = io.BytesIO()
    keys = iter(key_frames or ())
    with ContainerWriter(out, header, key_flags=key_frames is not None) as writer:
        for chunk_type, payload in chunks:
            writer.write_chunk(chunk_type, payload, key=next(keys, True) if chunk_type == ChunkType.FRAME else True)
        if index:
            writer.write_index()
    return out.getvalue()


def read_container(data: bytes) -> Container:
    """Parse and check a complete stream held in memory; bytes after END are an error."""
    try:
        size = memoryview(data).nbytes
    except TypeError:
        raise InvalidArgumentError(f"read_container needs bytes, got {type(data).__name__}") from None
    reader = ContainerReader(io.BytesIO(data))
    chunks = list(reader)
    trailing = size - reader.offset
    if trailing:
        raise CorruptDataError(f"{trailing} trailing byte(s) after END at offset {reader.offset}")
    return Container(reader.header, chunks, reader.skipped, reader.offset, reader.version,
                     reader.key_frames)
