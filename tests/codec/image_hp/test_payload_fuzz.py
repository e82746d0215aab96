"""Model-level fuzzing: hostile FRAME payloads and headers, re-sealed with valid CRCs so they get
past the container's checks and reach the entropy decoder and the networks.

Only a NecoError or a decoded image of the header's size may come out; each case must finish
quickly (a hang would show as a slow case). The default run has a few hundred cases; the slow
run (`-m slow`) has 20,000.
"""

import dataclasses

import numpy as np
import pytest

import neco
from neco.formats import ChunkType, read_container, write_container
from conftest import encode_adapted, fuzz_case, photo_crop

CASE_SECONDS = 5.0


def _mutations(frame: bytes, rng: np.random.Generator):
    """One hostile payload: truncation, bit flips, overwritten rate varint, a zero or random
    tail word, bytes cut to a non-multiple of 4, or random bytes of any length."""
    p = bytearray(frame)
    kind = int(rng.integers(0, 7))
    if kind == 0:
        return bytes(p[:rng.integers(0, len(p))])
    if kind == 1:
        for _ in range(rng.integers(1, 6)):
            p[rng.integers(0, len(p))] ^= 1 << int(rng.integers(0, 8))
        return bytes(p)
    if kind == 2:
        return bytes(rng.integers(0, 256, int(rng.integers(1, 4)), dtype=np.uint8)) + bytes(p[2:])
    if kind == 3:
        return bytes(p[:-4]) + bytes(4)
    if kind == 4:
        return bytes(p[:-int(rng.integers(1, 4))])
    if kind == 5:
        return bytes(p) + bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    return bytes(rng.integers(0, 256, int(rng.integers(0, 2 * len(p))), dtype=np.uint8))


def fuzz(cases: int, seed: int) -> dict[str, int]:
    """Decode `cases` hostile files; returns how many decoded and how many raised NecoError."""
    rng = np.random.default_rng(seed)
    sources = [neco.encode(photo_crop(w, h, index=s), quality=q)
               for s, (w, h, q) in enumerate([(48, 32, 60), (17, 9, 0), (70, 64, 100)])]
    sources.append(encode_adapted(photo_crop(40, 24, index=3), 50))
    counts = {"decoded": 0, "neco_error": 0}
    for case in range(cases):
        c = read_container(sources[case % len(sources)])
        header = c.header
        if case % 5 == 4:  # a lying size, within bounds so the guard, not the limit, is tested
            header = dataclasses.replace(header, width=int(rng.integers(1, 300)),
                                         height=int(rng.integers(1, 300)))
        frame = next(ch.payload for ch in c.chunks if ch.type == ChunkType.FRAME)
        data = write_container(header, [(ChunkType.FRAME, _mutations(frame, rng))])
        fuzz_case(counts, lambda: neco.decode_array(data), (header.height, header.width, 3), CASE_SECONDS, case)
    return counts


def test_hostile_payloads_raise_only_neco_errors():
    counts = fuzz(300, seed=0)
    assert counts["decoded"] > 0 and counts["neco_error"] > 0  # both paths were exercised


@pytest.mark.slow
def test_hostile_payloads_at_scale():
    counts = fuzz(20_000, seed=1)
    print(counts)
    assert sum(counts.values()) == 20_000
