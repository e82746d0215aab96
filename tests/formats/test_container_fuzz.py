"""Hostile input: the reader either succeeds or raises a NecoError subclass, on any byte string.

Seeded, so every run checks the same cases. Beyond random damage, many cases carry valid CRCs
around random field values, so they reach the field and chunk checks behind the CRCs.
"""

from fractions import Fraction
import random
import time
import zlib

import pytest

from neco.formats import (MAGIC, ChunkType, CorruptDataError, Header, Kind, NecoError, PixelFormat, Profile,
                          encode_index, encode_varint, read_container, write_container)

SEED = 20240601


def crc(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "little")


def image_file() -> bytes:
    header = Header(Kind.IMAGE, 3, 2, PixelFormat.RGB8, None, 1, Profile.IMAGE, "image-hp-v1", b"\x0b\xad\xc0\xde")
    return write_container(header, [(ChunkType.ICC, b"icc"), (ChunkType.FRAME, b"neco")], index=True)


def video_file() -> bytes:
    header = Header(Kind.VIDEO, 64, 48, PixelFormat.YUV420P8, Fraction(25), 2, Profile.VIDEO, "video-p-v1", b"abcd")
    return write_container(header, [(ChunkType.EXIF, b"Exif"), (0xE1, b"?"), (ChunkType.FRAME, b"I" * 40),
                                    (ChunkType.FRAME, b"P" * 9)], index=True)


BASES = [image_file(), video_file()]


def outcome(data: bytes) -> NecoError | None:
    """None on success, the NecoError otherwise; anything else fails the test with the input."""
    try:
        read_container(data)
    except NecoError as error:
        return error
    except Exception as error:  # noqa: BLE001 -- the point of the test
        pytest.fail(f"{type(error).__name__}: {error} on input {data.hex()}")
    return None


def random_varint(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.1:
        return bytes(rng.choice([0x80, 0xFF]) for _ in range(rng.randint(1, 12))) + b"\x01"  # overlong
    if choice < 0.15:
        return b"\x80\x00"  # not shortest form
    bits = rng.choice([1, 3, 7, 8, 14, 20, 21, 31, 32, 40, 64])
    return encode_varint(rng.getrandbits(bits))


def random_header(rng: random.Random) -> bytes:
    """Magic, a version, and a header of random fields with a valid CRC."""
    fields = [random_varint(rng) for _ in range(rng.randint(0, 9))]
    if rng.random() < 0.5:  # plausible shape: small enums and a model id
        fields = [encode_varint(rng.randint(0, 3)), random_varint(rng), random_varint(rng),
                  encode_varint(rng.randint(0, 5)), encode_varint(rng.randint(0, 4)),
                  encode_varint(rng.randint(0, 70)), rng.randbytes(rng.randint(0, 70))]
        fields += [rng.randbytes(4), random_varint(rng), random_varint(rng), random_varint(rng)][:rng.randint(0, 4)]
    body = b"".join(fields)
    length = encode_varint(len(body)) if rng.random() < 0.9 else random_varint(rng)
    head = MAGIC + bytes([1 if rng.random() < 0.9 else rng.randrange(256), rng.randrange(256)]) + length + body
    return head + crc(head)


def random_chunks(rng: random.Random) -> bytes:
    """A sequence of chunks with random types and (often lying) lengths, with valid CRCs."""
    out = []
    for _ in range(rng.randint(0, 6)):
        chunk_type = rng.choice([1, 2, 0x81, 0x82, 0x83, 0, 0x7F, 0xC0, rng.randrange(256)])
        payload = rng.randbytes(rng.randint(0, 20))
        if chunk_type == ChunkType.INDEX and rng.random() < 0.5:
            payload = encode_index(sorted(rng.sample(range(200), rng.randint(0, 5))))
        length = len(payload) if rng.random() < 0.7 else rng.choice([0, 2**31, 2**31 + 1, rng.getrandbits(40)])
        head = bytes([chunk_type]) + encode_varint(length)
        out.append(head + payload + crc(head + payload))
    if rng.random() < 0.7:
        out.append(b"\x02\x00" + crc(b"\x02\x00"))
    return b"".join(out)


def test_every_truncation_is_reported_as_truncation():
    cases = 0
    for data in BASES:
        for end in range(len(data)):
            error = outcome(data[:end])
            assert isinstance(error, CorruptDataError), f"prefix of {end} bytes was accepted"
            assert "truncated" in str(error) or (end == 0 and "empty input" in str(error)), str(error)
            cases += 1
    assert cases >= 150


def test_every_single_bit_flip_is_detected():
    cases = 0
    for data in BASES:
        for bit in range(8 * len(data)):
            damaged = bytearray(data)
            damaged[bit // 8] ^= 1 << (bit % 8)
            assert outcome(bytes(damaged)) is not None, f"bit {bit} flip went unnoticed"
            cases += 1
    assert cases >= 1200


def hostile_cases(rng: random.Random, rounds: int) -> tuple[int, int]:
    """Run `rounds` rounds of 2,100 hostile cases; return (cases, accepted as valid)."""
    cases, accepted = 0, 0
    for _ in range(400 * rounds):  # random damage to valid files: byte overwrites, insertions, deletions, splices
        data = bytearray(rng.choice(BASES))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            action = rng.randrange(4)
            if action == 0:
                data[pos] = rng.randrange(256)
            elif action == 1:
                data[pos:pos] = rng.randbytes(rng.randint(1, 8))
            elif action == 2:
                del data[pos:pos + rng.randint(1, 8)]
            else:
                data[pos:] = rng.choice(BASES)[rng.randrange(40):]
        accepted += outcome(bytes(data)) is None
        cases += 1
    for _ in range(600 * rounds):  # random header fields behind a valid header CRC
        accepted += outcome(random_header(rng) + random_chunks(rng)) is None
        cases += 1
    for _ in range(600 * rounds):  # a valid header, then random chunks with valid CRCs and lying lengths
        accepted += outcome(BASES[0][:32] + random_chunks(rng)) is None
        cases += 1
    for _ in range(200 * rounds):  # huge and zero dimensions, behind a valid CRC
        dims = [rng.choice([0, 1, 2**20, 2**20 + 1, 2**32, 2**63, 2**64 - 1]) for _ in range(2)]
        body = b"\x01" + b"".join(map(encode_varint, dims)) + b"\x01\x01\x0bimage-hp-v1abcd"
        head = MAGIC + b"\x01\x00" + encode_varint(len(body)) + body
        accepted += outcome(head + crc(head) + random_chunks(rng)) is None
        cases += 1
    for _ in range(300 * rounds):  # random bytes, half of them behind a valid magic and version
        prefix = MAGIC + b"\x01\x00" if rng.random() < 0.5 else b""
        accepted += outcome(prefix + rng.randbytes(rng.randint(0, 64))) is None
        cases += 1
    return cases, accepted


def test_hostile_inputs_raise_only_neco_errors():
    start = time.perf_counter()
    cases, accepted = hostile_cases(random.Random(SEED), rounds=1)
    assert cases >= 2000
    assert accepted > 0  # some structured cases are valid streams: the generator reaches deep paths
    assert time.perf_counter() - start < 10


@pytest.mark.slow
def test_hostile_inputs_at_scale():
    """>= 100,000 cases from another seed (run with -m slow)."""
    cases, _ = hostile_cases(random.Random(SEED + 1), rounds=48)
    assert cases >= 100_000
