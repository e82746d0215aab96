"""Unsigned LEB128 varints: shortest form only, at most 10 bytes, at most 64 bits."""

import pytest

from neco.formats import CorruptDataError, InvalidArgumentError, decode_varint, encode_varint


@pytest.mark.parametrize(
    "value, encoded",
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16383, "ff7f"), (16384, "808001"),
     (2**64 - 1, "ffffffffffffffffff01")],
)
def test_known_encodings(value, encoded):
    assert encode_varint(value).hex() == encoded
    assert decode_varint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)


def test_decode_at_position_returns_next_position():
    data = b"\xff" + encode_varint(1000) + b"\x07"
    assert decode_varint(data, 1) == (1000, 3)


@pytest.mark.parametrize("value", [-1, 2**64, 1.0, True, "1"])
def test_encode_rejects_out_of_range(value):
    with pytest.raises(InvalidArgumentError):
        encode_varint(value)


def test_runs_past_end():
    with pytest.raises(CorruptDataError, match="past the end"):
        decode_varint(b"\x80\x80")


def test_longer_than_10_bytes():
    with pytest.raises(CorruptDataError, match="longer than 10 bytes"):
        decode_varint(b"\x80" * 10 + b"\x01")


def test_not_shortest_form():
    with pytest.raises(CorruptDataError, match="shortest form"):
        decode_varint(b"\x81\x00")


def test_exceeds_64_bits():
    with pytest.raises(CorruptDataError, match="exceeds 64 bits"):
        decode_varint(b"\xff" * 9 + b"\x02")
