"""The `.neco` container: round trips, the golden file, overhead, and one test per deliberate error.

Regenerate the golden file (only for an intended format change) with
    NECO_REGEN_GOLDEN=1 python -m pytest tests/formats/test_container.py
"""

import ast
from fractions import Fraction
import io
import os
from pathlib import Path
import sys
import threading
import tracemalloc
import zlib

import pytest

import neco.formats
from neco.formats import (
    MAGIC,
    Chunk,
    ChunkType,
    ContainerReader,
    ContainerWriter,
    CorruptDataError,
    Header,
    InvalidArgumentError,
    Kind,
    NecoError,
    PixelFormat,
    Profile,
    SkippedChunk,
    UnsupportedError,
    decode_index,
    encode_index,
    encode_varint,
    is_critical,
    read_container,
    write_container,
)

GOLDEN = Path(__file__).parent / "golden" / "tiny.neco"
DIGEST = bytes.fromhex("0badc0de")


def image_header(**changes) -> Header:
    fields = dict(kind=Kind.IMAGE, width=3, height=2, pixel_format=PixelFormat.RGB8, frame_rate=None,
                  num_frames=1, profile=Profile.IMAGE, model_id="image-hp-v1", weights_digest=DIGEST)
    return Header(**(fields | changes))


def video_header(**changes) -> Header:
    fields = dict(kind=Kind.VIDEO, width=1920, height=1080, pixel_format=PixelFormat.YUV420P8,
                  frame_rate=Fraction(30000, 1001), num_frames=3, profile=Profile.VIDEO,
                  model_id="video-p-v1", weights_digest=b"\x01\x02\x03\x04")
    return Header(**(fields | changes))


def crc(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "little")


def raw_head(body: bytes, major: int = 1, minor: int = 0) -> bytes:
    """Magic, version and a header with a valid CRC around an arbitrary body."""
    head = MAGIC + bytes([major, minor]) + encode_varint(len(body)) + body
    return head + crc(head)


def raw_chunk(chunk_type: int, payload: bytes, length: int | None = None) -> bytes:
    """A chunk with a valid CRC; `length` may lie about the payload."""
    head = bytes([chunk_type]) + encode_varint(len(payload) if length is None else length)
    return head + payload + crc(head + payload)


def image_body(kind=1, width=3, height=2, pixel_format=1, profile=1, model_id=b"image-hp-v1", digest=DIGEST) -> bytes:
    return b"".join([encode_varint(kind), encode_varint(width), encode_varint(height), encode_varint(pixel_format),
                     encode_varint(profile), encode_varint(len(model_id)), model_id, digest])


END = raw_chunk(ChunkType.END, b"")


def tiny() -> bytes:
    """The golden file: a 3x2 RGB image with a 4-byte FRAME payload."""
    return write_container(image_header(), [(ChunkType.FRAME, b"neco")])


def full_video() -> bytes:
    return write_container(video_header(), [(ChunkType.ICC, b"icc-profile"), (ChunkType.EXIF, b"Exif\0\0"),
                                            (0xF0, b"future"), (ChunkType.FRAME, b"I-frame"),
                                            (ChunkType.FRAME, b"P1"), (ChunkType.FRAME, b"P2")], index=True)


class TrickleReader:
    """A pipe-like stream: only .read(n), and it returns at most 3 bytes per call."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self._inner.read(min(n, 3))


class WriteOnly:
    """A pipe-like sink: only .write."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data) -> int:
        self.data += data
        return len(data)


# Round trips


def test_image_round_trip():
    container = read_container(tiny())
    assert container.header == image_header()
    assert container.frames == [b"neco"]
    assert container.skipped == [] and container.version == (1, 0)


def test_video_round_trip_with_all_chunk_types():
    data = full_video()
    container = read_container(data)
    assert container.header == video_header()
    assert [c.type for c in container.chunks] == [ChunkType.ICC, ChunkType.EXIF, ChunkType.FRAME,
                                                  ChunkType.FRAME, ChunkType.FRAME, ChunkType.INDEX]
    assert container.frames == [b"I-frame", b"P1", b"P2"]
    assert container.payload(ChunkType.ICC) == b"icc-profile"
    assert container.payload(ChunkType.EXIF) == b"Exif\0\0"
    frame_offsets = [c.offset for c in container.chunks if c.type == ChunkType.FRAME]
    assert decode_index(container.payload(ChunkType.INDEX)) == frame_offsets
    assert all(data[offset] == ChunkType.FRAME for offset in frame_offsets)
    assert container.skipped == [SkippedChunk(0xF0, container.chunks[1].offset + 12, 6)]
    assert container.total_size == len(data)


def test_video_with_unknown_rate_and_length():
    header = video_header(frame_rate=None, num_frames=0)
    container = read_container(write_container(header, [(ChunkType.FRAME, b"x")] * 5))
    assert container.header == header and len(container.frames) == 5


def test_reader_needs_only_small_reads_and_writer_only_write():
    sink = WriteOnly()
    with ContainerWriter(sink, video_header()) as writer:
        for payload in (b"a" * 1000, b"b", b"c"):
            writer.write_chunk(ChunkType.FRAME, payload)
    reader = ContainerReader(TrickleReader(bytes(sink.data)))
    assert reader.header == video_header()
    assert [c.payload for c in reader] == [b"a" * 1000, b"b", b"c"]
    assert reader.complete and reader.offset == len(sink.data)


def test_os_pipe_round_trip():
    read_fd, write_fd = os.pipe()
    payload = bytes(range(256)) * 1000

    def produce():
        with os.fdopen(write_fd, "wb") as sink, ContainerWriter(sink, image_header()) as writer:
            writer.write_chunk(ChunkType.FRAME, payload)

    producer = threading.Thread(target=produce)
    producer.start()
    with os.fdopen(read_fd, "rb") as source:
        chunks = list(ContainerReader(source))
    producer.join()
    assert [c.payload for c in chunks] == [payload]


def test_streaming_reader_stops_after_end_so_streams_concatenate():
    stream = io.BytesIO(tiny() + full_video())
    first = ContainerReader(stream)
    assert [c.payload for c in first] == [b"neco"]
    second = ContainerReader(stream)
    assert second.header == video_header() and len(list(second)) == 6


def test_writer_accepts_memoryview_and_numpy_ints():
    numpy = pytest.importorskip("numpy")
    header = image_header(width=numpy.int64(640), height=numpy.uint16(480))
    assert type(header.width) is int and type(header.height) is int
    payload = numpy.arange(6, dtype=numpy.uint16)
    data = write_container(header, [(ChunkType.FRAME, memoryview(payload))])
    assert read_container(data).frames == [payload.tobytes()]


# The golden file


def test_golden_bytes_are_stable():
    data = tiny()
    if os.environ.get("NECO_REGEN_GOLDEN"):
        GOLDEN.write_bytes(data)
    assert data == GOLDEN.read_bytes(), "the byte layout changed: update docs/FORMAT.md and the version"


def test_golden_decodes_to_expected_structure():
    container = read_container(GOLDEN.read_bytes())
    assert container.version == (1, 0)
    assert container.header == Header(Kind.IMAGE, 3, 2, PixelFormat.RGB8, None, 1, Profile.IMAGE,
                                      "image-hp-v1", bytes.fromhex("0badc0de"))
    assert container.chunks == [Chunk(ChunkType.FRAME, b"neco", 32)]
    assert container.total_size == 48


def test_golden_hex_matches_spec():
    assert GOLDEN.read_bytes().hex() == (
        "8f4e0d0a0100"                      # magic, version 1.0
        "15" "01" "03" "02" "01" "01"       # header length 21; kind, width, height, pixel format, profile
        "0b" + b"image-hp-v1".hex() +       # model id
        "0badc0de" "044141ad"               # weights digest, header CRC
        "01" "04" + b"neco".hex() + "90192689"  # FRAME chunk
        "02" "00" "7d70ef73"                # END chunk
    )


# Overhead


def test_single_image_overhead_is_at_most_49_bytes():
    """0.1 bpp on a 768x512 Kodak image is 4,915 payload bytes: overhead must stay under 1 %."""
    header = image_header(width=768, height=512)
    payload = bytes(768 * 512 // 80)
    overhead = len(write_container(header, [(ChunkType.FRAME, payload)])) - len(payload)
    # magic 4 + version 2 + header length 1 + header 23 (kind 1, width 2, height 2, pixel format 1,
    # profile 1, model id 1+11, digest 4) + header CRC 4 + FRAME 1+2+4 + END 1+1+4
    assert overhead == 47
    assert overhead <= 49
    assert overhead / (overhead + len(payload)) < 0.01


# Header validation (caller errors)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(width=0), "width"),
        (dict(height=2**20 + 1), "height"),
        (dict(width=2.0), "width"),
        (dict(kind=3), "unknown kind"),
        (dict(pixel_format=9), "unknown pixel format"),
        (dict(profile=0), "unknown profile"),
        (dict(profile="IMAGE"), "unknown profile"),
        (dict(frame_rate=Fraction(25)), "no frame rate"),
        (dict(num_frames=2), "number of frames"),
        (dict(model_id=""), "model id"),
        (dict(model_id="image hp"), "model id"),
        (dict(model_id="é"), "model id"),
        (dict(model_id="m" * 65), "longer than 64"),
        (dict(weights_digest=b"abc"), "digest"),
        (dict(weights_digest="abcd"), "digest"),
    ],
)
def test_invalid_image_header(changes, message):
    with pytest.raises(InvalidArgumentError, match=message):
        image_header(**changes)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(frame_rate=29.97), "not a float"),
        (dict(frame_rate=Fraction(-1)), "positive"),
        (dict(frame_rate=Fraction(1, 2**32)), "terms"),
        (dict(num_frames=-1), "number of frames"),
        (dict(num_frames=2**32), "number of frames"),
    ],
)
def test_invalid_video_header(changes, message):
    with pytest.raises(InvalidArgumentError, match=message):
        video_header(**changes)


def test_header_normalises_ints_to_enums_and_bytes():
    header = Header(1, 3, 2, 1, None, 1, "image", "image-hp-v1", bytearray(DIGEST))
    assert header == image_header() and header.kind is Kind.IMAGE and header.profile is Profile.IMAGE
    assert type(header.weights_digest) is bytes and header.profile == "image"
    assert video_header(frame_rate=25).frame_rate == Fraction(25)


def test_pretty():
    assert image_header().pretty().splitlines() == [
        "kind          image",
        "size          3 x 2 px",
        "pixel format  RGB8",
        "profile       image",
        "model         image-hp-v1 (weights sha256 0badc0de...)",
    ]
    assert "frame rate    30000/1001 fps (29.970)" in video_header().pretty()
    assert "frames        unknown" in video_header(num_frames=0).pretty()


# Writer misuse


def test_writer_context_manager_omits_end_on_exception():
    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        with ContainerWriter(out, image_header()) as writer:
            writer.write_chunk(ChunkType.FRAME, b"half")
            raise RuntimeError("encoder failed")
    with pytest.raises(CorruptDataError, match="truncated stream"):
        read_container(out.getvalue())


def test_writer_refuses_end_chunk():
    with pytest.raises(InvalidArgumentError, match="close"):
        ContainerWriter(io.BytesIO(), image_header()).write_chunk(ChunkType.END, b"")


def test_writer_refuses_chunks_after_close():
    writer = ContainerWriter(io.BytesIO(), image_header())
    writer.write_chunk(ChunkType.FRAME, b"x")
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(InvalidArgumentError, match="after close"):
        writer.write_chunk(ChunkType.EXIF, b"x")


def test_writer_refuses_wrong_frame_count():
    writer = ContainerWriter(io.BytesIO(), image_header())
    with pytest.raises(InvalidArgumentError, match="declares 1 frame"):
        writer.close()
    writer.write_chunk(ChunkType.FRAME, b"x")
    with pytest.raises(InvalidArgumentError, match="cannot write more"):
        writer.write_chunk(ChunkType.FRAME, b"y")


def test_writer_refuses_second_icc():
    writer = ContainerWriter(io.BytesIO(), image_header())
    writer.write_chunk(ChunkType.ICC, b"a")
    with pytest.raises(InvalidArgumentError, match="at most one ICC"):
        writer.write_chunk(ChunkType.ICC, b"b")


@pytest.mark.parametrize("chunk_type, payload", [(256, b""), (-1, b""), (1, "text"), (1, None)])
def test_writer_refuses_bad_chunk_arguments(chunk_type, payload):
    with pytest.raises(InvalidArgumentError):
        ContainerWriter(io.BytesIO(), image_header()).write_chunk(chunk_type, payload)


def test_writer_refuses_non_header():
    with pytest.raises(InvalidArgumentError, match="Header"):
        ContainerWriter(io.BytesIO(), {"kind": 1})


def test_index_round_trip_and_misuse():
    assert decode_index(encode_index([34, 40, 1000])) == [34, 40, 1000]
    assert decode_index(encode_index([])) == []
    assert decode_index(encode_index([5]) + b"future fields") == [5]
    with pytest.raises(InvalidArgumentError, match="increase"):
        encode_index([40, 40])


def test_critical_bit():
    assert is_critical(ChunkType.FRAME) and is_critical(ChunkType.END) and is_critical(0x7F)
    assert not is_critical(ChunkType.ICC) and not is_critical(0xFF)


# Reader: one test per deliberate error


def test_empty_input():
    with pytest.raises(CorruptDataError, match="empty input"):
        read_container(b"")


def test_not_a_neco_file():
    with pytest.raises(CorruptDataError, match="not a neco file"):
        read_container(b"\x89PNG\r\n\x1a\n")


def test_text_mode_damage_is_named():
    with pytest.raises(CorruptDataError, match="text-mode"):
        read_container(tiny().replace(b"\r\n", b"\n"))


def test_truncated_magic():
    with pytest.raises(CorruptDataError, match="truncated magic"):
        read_container(MAGIC[:3])


def test_newer_major_version_is_unsupported():
    with pytest.raises(UnsupportedError, match="version 2.0"):
        read_container(raw_head(image_body(), major=2) + raw_chunk(1, b"x") + END)


def test_newer_minor_version_with_longer_header_is_read():
    data = raw_head(image_body() + b"new field", minor=7) + raw_chunk(1, b"x") + END
    container = read_container(data)
    assert container.version == (1, 7) and container.header == image_header()


def test_header_length_limit():
    head = MAGIC + b"\x01\x00" + encode_varint(10**9)
    with pytest.raises(CorruptDataError, match="header length"):
        read_container(head)


def test_header_crc_mismatch():
    data = bytearray(tiny())
    data[8] ^= 0x01  # width
    with pytest.raises(CorruptDataError, match="CRC mismatch in header"):
        read_container(bytes(data))


@pytest.mark.parametrize("field, value, message", [
    ("kind", 9, "unknown kind id 9"), ("pixel_format", 5, "unknown pixel format id 5"),
    ("profile", 4, "unknown profile id 4")])
def test_unknown_enum_in_header_is_unsupported(field, value, message):
    with pytest.raises(UnsupportedError, match=message):
        read_container(raw_head(image_body(**{field: value})) + raw_chunk(1, b"x") + END)


@pytest.mark.parametrize("body, message", [
    (image_body()[:-1], "ends inside the weights digest"),
    (image_body(width=0), "width"),
    (image_body(height=2**20 + 1), "height"),
    (image_body(model_id=b"image\xffhp"), "not ASCII"),
    (image_body(model_id=b"image hp"), "model id"),
    (image_body(model_id=b""), "model id length 0"),
    (image_body()[:3] + b"\x80\x80", "varint"),
])
def test_malformed_header_fields(body, message):
    with pytest.raises(CorruptDataError, match=message):
        read_container(raw_head(body) + raw_chunk(1, b"x") + END)


@pytest.mark.parametrize("rate, message", [(b"\x01\x00", "1/0"), (b"\x00\x02", "0/2")])
def test_malformed_frame_rate(rate, message):
    body = image_body(kind=2, profile=2) + rate + b"\x01"
    with pytest.raises(CorruptDataError, match=message):
        read_container(raw_head(body) + raw_chunk(1, b"x") + END)


def test_unknown_critical_chunk_is_unsupported_and_named():
    data = raw_head(image_body()) + raw_chunk(0x05, b"new") + raw_chunk(1, b"x") + END
    with pytest.raises(UnsupportedError, match="unknown critical chunk type 0x05"):
        read_container(data)


def test_unknown_ancillary_chunk_is_skipped_and_reported():
    data = raw_head(image_body()) + raw_chunk(0xC4, b"later") + raw_chunk(1, b"x") + END
    container = read_container(data)
    assert container.frames == [b"x"] and container.skipped == [SkippedChunk(0xC4, 32, 5)]


def test_chunk_crc_mismatch_names_the_chunk():
    data = bytearray(tiny())
    data[36] ^= 0x20  # FRAME payload
    with pytest.raises(CorruptDataError, match="CRC mismatch in FRAME chunk at offset 32"):
        read_container(bytes(data))


def test_missing_end_is_truncation():
    with pytest.raises(CorruptDataError, match="truncated stream"):
        read_container(tiny()[:-6])


def test_trailing_bytes_after_end():
    with pytest.raises(CorruptDataError, match="3 trailing byte"):
        read_container(tiny() + b"abc")


def test_lying_length_allocates_only_what_is_present():
    data = raw_head(image_body()) + bytes([ChunkType.FRAME]) + encode_varint(2**31) + b"tiny"
    tracemalloc.start()
    try:
        with pytest.raises(CorruptDataError, match="truncated payload of FRAME"):
            read_container(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_chunk_length_limit():
    data = raw_head(image_body()) + bytes([ChunkType.FRAME]) + encode_varint(2**31 + 1)
    with pytest.raises(CorruptDataError, match="exceeds"):
        read_container(data)


def test_overlong_chunk_length_varint():
    data = raw_head(image_body()) + bytes([ChunkType.FRAME]) + b"\x80" * 10 + b"\x00"
    with pytest.raises(CorruptDataError, match="longer than 10 bytes"):
        read_container(data)


def test_second_icc_chunk():
    data = raw_head(image_body()) + raw_chunk(0x82, b"a") + raw_chunk(0x82, b"b") + raw_chunk(1, b"x") + END
    with pytest.raises(CorruptDataError, match="second ICC"):
        read_container(data)


@pytest.mark.parametrize("frames", [0, 2])
def test_frame_count_must_match_header(frames):
    data = raw_head(image_body()) + raw_chunk(1, b"x") * frames + END
    with pytest.raises(CorruptDataError, match="FRAME"):
        read_container(data)


def test_index_must_match_frames():
    data = raw_head(image_body()) + raw_chunk(1, b"x") + raw_chunk(0x81, encode_index([33])) + END
    with pytest.raises(CorruptDataError, match="INDEX does not match"):
        read_container(data)


def test_index_count_larger_than_payload():
    data = raw_head(image_body()) + raw_chunk(1, b"x") + raw_chunk(0x81, encode_varint(1000) + b"\x22") + END
    with pytest.raises(CorruptDataError, match="INDEX claims 1000 entries"):
        read_container(data)


def test_end_payload_is_reserved_and_ignored():
    data = raw_head(image_body()) + raw_chunk(1, b"x") + raw_chunk(ChunkType.END, b"locator")
    assert read_container(data).frames == [b"x"]


def test_text_mode_stream_is_a_caller_error():
    with pytest.raises(InvalidArgumentError, match="binary mode"):
        ContainerReader(io.StringIO("text"))


@pytest.mark.parametrize("source", [b"bytes", None])
def test_reader_needs_a_stream(source):
    with pytest.raises(InvalidArgumentError, match="stream"):
        ContainerReader(source)


def test_read_container_needs_bytes():
    with pytest.raises(InvalidArgumentError, match="needs bytes"):
        read_container("text")


def test_every_error_is_a_neco_error():
    for error in (CorruptDataError, UnsupportedError, InvalidArgumentError):
        assert issubclass(error, NecoError)


def test_formats_imports_only_the_standard_library():
    """formats/ must stay usable without torch, numpy or any model (ARCHITECTURE.md)."""
    package = Path(neco.formats.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names | {"__future__"}, f"{source.name} imports {name}"
