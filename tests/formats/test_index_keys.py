"""Key-frame flags in INDEX (format 1.1, docs/FORMAT.md section 4.1): written and read, the version
rules (a 1.0 INDEX's extra bytes mean nothing; 1.0 files stay 1.0), and one test per corrupt case."""

from fractions import Fraction
import io
import zlib

import pytest

from neco.formats import (KEY_FLAGS_VERSION, VERSION, ChunkType, ContainerReader, ContainerWriter, CorruptDataError,
                          Header, InvalidArgumentError, Kind, PixelFormat, Profile, decode_index, decode_index_keys,
                          encode_index, read_container, write_container)


def header(frames: int = 3) -> Header:
    return Header(kind=Kind.VIDEO, width=64, height=48, pixel_format=PixelFormat.RGB8, frame_rate=Fraction(25),
                  num_frames=frames, profile=Profile.VIDEO, model_id="video-hp-v0", weights_digest=bytes(4))


def stream(keys, version_keys: bool = True) -> bytes:
    chunks = [(ChunkType.FRAME, bytes([i])) for i in range(len(keys))]
    return write_container(header(len(keys)), chunks, index=True, key_frames=keys if version_keys else None)


def test_flags_round_trip():
    keys = [True, False, False, True, False, False, False, False, True, False]
    payload = encode_index(list(range(10, 110, 10)), keys)
    assert decode_index_keys(payload) == (list(range(10, 110, 10)), keys)
    assert decode_index(payload) == list(range(10, 110, 10))            # the 1.0 reading ignores them
    assert decode_index_keys(encode_index([5, 9])) == ([5, 9], None)    # absent: every frame a key frame
    assert decode_index_keys(encode_index([5], [True]) + b"later") == ([5], [True])
    assert decode_index_keys(encode_index([], [])) == ([], None)


def test_a_stream_with_flags_is_version_1_1():
    keys = [True, False, False, True, False]
    container = read_container(stream(keys))
    assert container.version == KEY_FLAGS_VERSION == (1, 1)
    assert container.key_frames == keys
    assert [container.is_key(i) for i in range(5)] == keys
    reader = ContainerReader(io.BytesIO(stream(keys)))
    assert [c.type for c in reader] == [ChunkType.FRAME] * 5 + [ChunkType.INDEX] and reader.key_frames == keys


def test_a_stream_without_flags_stays_version_1_0():
    container = read_container(stream([True, True], version_keys=False))
    assert container.version == VERSION == (1, 0) and container.key_frames is None and container.is_key(1)


def _with_index(payload: bytes, version: tuple[int, int]) -> bytes:
    """A 1-frame stream whose INDEX payload is `payload`, at `version` (the header CRC recomputed)."""
    out = io.BytesIO()
    with ContainerWriter(out, header(1)) as writer:
        writer.write_chunk(ChunkType.FRAME, b"x")
        writer.write_chunk(ChunkType.INDEX, payload)
    data = bytearray(out.getvalue())
    data[4:6] = bytes(version)
    header_end = ContainerReader(io.BytesIO(out.getvalue())).offset - 4
    data[header_end:header_end + 4] = zlib.crc32(data[:header_end]).to_bytes(4, "little")
    return bytes(data)


def test_version_1_0_ignores_bytes_after_the_offsets():
    offset = read_container(stream([True])).chunks[0].offset
    assert read_container(_with_index(encode_index([offset]) + b"\x00", (1, 0))).key_frames is None
    with pytest.raises(CorruptDataError, match="first frame"):
        read_container(_with_index(encode_index([offset]) + b"\x00", (1, 1)))


@pytest.mark.parametrize("flags, message", [(b"", None), (b"\x05", "past the last frame"),
                                            (b"\x00", "first frame")])
def test_corrupt_flags(flags, message):
    payload = encode_index([7, 9]) + flags
    if message is None:   # no flags: fine, every frame a key frame
        assert decode_index_keys(payload) == ([7, 9], None)
        return
    with pytest.raises(CorruptDataError, match=message):
        decode_index_keys(payload)


def test_flags_cut_short():
    payload = encode_index(list(range(1, 10)), [True] * 9)
    with pytest.raises(CorruptDataError, match="inside its key-frame flags"):
        decode_index_keys(payload[:-1])


def test_writer_misuse():
    with pytest.raises(InvalidArgumentError, match="flags for"):
        encode_index([1, 2], [True])
    with pytest.raises(InvalidArgumentError, match="first frame"):
        encode_index([1, 2], [False, True])
