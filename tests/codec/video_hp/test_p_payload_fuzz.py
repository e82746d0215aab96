"""Fuzzing the P frame payload (codec/video_hp), like image_hp/test_payload_fuzz.py: hostile P
payloads decoded against an intact reference give a frame of the header's size or a NecoError,
never another exception, each quickly. The default run has 40 cases; `-m slow` has 3,000."""

import io

import numpy as np
import pytest

import neco
from conftest import fuzz_case, photo_crop
from neco.codec import registry
from neco.formats import read_container

CASE_SECONDS = 5.0


def _mutate(payload: bytes, rng: np.random.Generator) -> bytes:
    """Truncation, bit flips (the frame type and block-mode fields included), a rewritten head (a
    P frame's mode probabilities and inter shift, or the reserved type 1), a zero or random tail
    word, a length off a multiple of 4, random bytes."""
    p = bytearray(payload)
    kind = int(rng.integers(0, 8))
    if kind == 0:
        return bytes(p[:rng.integers(0, len(p))])
    if kind == 1:
        for _ in range(rng.integers(1, 6)):
            p[rng.integers(0, min(len(p), 8) if rng.random() < 0.5 else len(p))] ^= 1 << int(rng.integers(0, 8))
        return bytes(p)
    if kind == 2:
        return bytes([1, int(rng.integers(0, 256))]) + bytes(rng.integers(0, 256, int(rng.integers(1, 4)),
                                                                       dtype=np.uint8)) + bytes(p[4:])
    if kind == 7:   # the P head's fields (skip and inter probabilities, inter shift), mostly valid ones
        skip = int(rng.integers(0, 256))
        inter = int(rng.integers(0, 256 - skip)) if rng.random() < 0.8 else int(rng.integers(0, 256))
        shift = int(rng.integers(0, 64)) if rng.random() < 0.8 else int(rng.integers(0, 256))
        return bytes([2, skip, inter, shift]) + bytes(p[4:])
    if kind == 3:
        return bytes(p[:-4]) + bytes(4)
    if kind == 4:
        return bytes(p[:-int(rng.integers(1, 4))])
    if kind == 5:
        return bytes(p) + bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    return bytes([int(rng.integers(1, 3))]) + bytes(rng.integers(0, 256, int(rng.integers(0, 2 * len(p))),
                                                               dtype=np.uint8))


def fuzz(cases: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    base = photo_crop(80, 64, index=7)
    frames = [np.ascontiguousarray(base[:, t:t + 64]) for t in range(3)]
    out = io.BytesIO()
    neco.encode_frames(frames, out, quality=40, gop=3)
    container = read_container(out.getvalue())
    h = container.header
    stream = registry.get_decoder(h.model_id).stream()
    stream.latents(container.frames[0], h.height, h.width)
    reference = stream.reference
    counts = {"decoded": 0, "neco_error": 0}
    for case in range(cases):
        payload = _mutate(container.frames[1 + case % 2], rng)
        stream.reference = reference
        fuzz_case(counts, lambda: stream.decode(payload, h.height, h.width), (3, h.height, h.width), CASE_SECONDS,
                  case)
    return counts


def test_hostile_p_payloads_raise_only_neco_errors():
    counts = fuzz(40, seed=0)
    assert counts["decoded"] > 0 and counts["neco_error"] > 0


@pytest.mark.slow
def test_hostile_p_payloads_at_scale():
    assert sum(fuzz(3000, seed=1).values()) == 3000
