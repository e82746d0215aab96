"""Plain byte fuzzing of the public entry points with Hypothesis: any bytes given to
`neco.info` or `neco.decode` give a result or a NecoError, never another exception.

Hypothesis draws arbitrary byte strings and also mutations of a real file (bytes flipped,
inserted, deleted), shrinking any failure to a minimal input. The structure-aware fuzzers are
tests/formats/test_container_fuzz.py (container fields behind valid CRCs) and
tests/codec/test_payload_fuzz.py (coded payloads that reach the model).
"""

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np

import neco
from conftest import photo_crop

REAL = neco.encode(photo_crop(24, 16), quality=50)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _decode_or_neco_error(data: bytes) -> None:
    try:
        neco.info(data)
        out = neco.decode_array(data)
        assert out.dtype == np.uint8 and out.ndim == 3
    except neco.NecoError:
        pass


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(REAL)
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip" and where < len(data):
            data[where] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[where:where + draw(st.integers(1, 16))]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=256))
def test_arbitrary_bytes(data):
    _decode_or_neco_error(data)


@FUZZ
@given(mutated())
def test_mutated_real_file(data):
    _decode_or_neco_error(data)
