"""Golden files: committed `.neco` files must keep decoding to the same symbols and pixels.

Each golden file has a JSON record of the SHA-256 of its decoded symbols (exact) and of its
reference pixels (compared within one level: synthesis is floating point). A change to the
model, the entropy path or the format that breaks old files fails here. Regenerate only on
purpose -- new shipped weights change the digest in every file -- with

    NECO_REGEN_GOLDEN=1 python -m pytest tests/codec/test_golden.py
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import neco
from neco.codec import registry
from neco.codec.frame_fields import read_rate_position
from neco.formats import ChunkType, read_container
from conftest import photo_crop

GOLDEN = Path(__file__).with_name("golden")
CASES = {"photo-q20": (photo_crop(96, 64, index=11), 20.0),
         "photo-q80": (photo_crop(70, 45, index=12), 80.0),
         "photo-q90-offsets": (photo_crop(192, 128, index=2), 90.0)}   # carries table offsets


def _symbols_digest(data: bytes) -> str:
    c = read_container(data)
    frame = next(ch.payload for ch in c.chunks if ch.type == ChunkType.FRAME)
    coder = registry.get_model(c.header.model_id)
    _, z, y, mean, adaptation = coder.decode_latents(frame, c.header.height, c.header.width)
    symbols = (z, y, mean) + (adaptation.symbols if adaptation is not None else ())
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in symbols)).hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_file_decodes_as_recorded(name):
    path, record = GOLDEN / f"{name}.neco", GOLDEN / f"{name}.json"
    if os.environ.get("NECO_REGEN_GOLDEN"):
        pixels, quality = CASES[name]
        data = neco.encode(pixels, quality=quality)
        path.write_bytes(data)
        np.save(GOLDEN / f"{name}.npy", neco.decode_array(data))
        record.write_text(json.dumps({"symbols_sha256": _symbols_digest(data)}, indent=1) + "\n")
    data = path.read_bytes()
    frame = next(ch.payload for ch in read_container(data).chunks if ch.type == ChunkType.FRAME)
    assert read_rate_position(frame).table_offsets == name.endswith("-offsets")
    assert _symbols_digest(data) == json.loads(record.read_text())["symbols_sha256"]
    reference = np.load(GOLDEN / f"{name}.npy")
    assert np.abs(neco.decode_array(data).astype(int) - reference.astype(int)).max() <= 1
