"""Golden files: every released model's committed `.neco` files keep decoding to the same symbols
and pixels, with every later neco (released models are immutable: docs/FORMAT.md, "Compatibility").

golden/<model id>/ holds each file with a JSON record of the SHA-256 of its decoded symbols
(exact) and its reference pixels (.npy, compared within one level: synthesis is floating point).
A released model's files are never regenerated. When a model is released, write its files once:

    NECO_GOLDEN_MODEL=image-hp-v2 python -m pytest tests/codec/test_golden.py
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import neco
from neco.codec import registry
from neco.codec.image_hp.payload import read_first_field
from neco.formats import ChunkType, read_container
from conftest import photo_crop

GOLDEN = Path(__file__).with_name("golden")
CASES = {"photo-q20": (photo_crop(96, 64, index=11), 20.0),
         "photo-q80": (photo_crop(70, 45, index=12), 80.0),
         "photo-q90-offsets": (photo_crop(192, 128, index=2), 90.0)}   # carries table offsets


def _frame(data: bytes) -> bytes:
    return next(ch.payload for ch in read_container(data).chunks if ch.type == ChunkType.FRAME)


def _symbols_digest(data: bytes) -> str:
    header = read_container(data).header
    decoder = registry.get_decoder(header.model_id)
    _, z, y, mean, adaptation = decoder.decode_latents(_frame(data), header.height, header.width)
    symbols = (z, y, mean) + (adaptation.symbols if adaptation is not None else ())
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in symbols)).hexdigest()


def _write_golden(model_id: str) -> None:
    folder = GOLDEN / model_id
    folder.mkdir(exist_ok=True)
    for name, (pixels, quality) in CASES.items():
        data = neco.encode(pixels, quality=quality, model=model_id)
        (folder / f"{name}.neco").write_bytes(data)
        np.save(folder / f"{name}.npy", neco.decode_array(data))
        (folder / f"{name}.json").write_text(json.dumps({"symbols_sha256": _symbols_digest(data)}, indent=1) + "\n")


if os.environ.get("NECO_GOLDEN_MODEL"):
    assert os.environ["NECO_GOLDEN_MODEL"] not in registry.released(), "a released model's golden files never change"
    _write_golden(os.environ["NECO_GOLDEN_MODEL"])

FILES = sorted(GOLDEN.glob("*/*.neco"))


def test_every_released_model_has_golden_files():
    have = {path.parent.name for path in FILES}
    assert registry.released() and set(registry.released()) <= have


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_file_decodes_as_recorded(path):
    data = path.read_bytes()
    assert read_container(data).header.model_id == path.parent.name
    assert read_first_field(_frame(data)).table_offsets == path.stem.endswith("-offsets")
    assert _symbols_digest(data) == json.loads(path.with_suffix(".json").read_text())["symbols_sha256"]
    reference = np.load(path.with_suffix(".npy"))
    assert np.abs(neco.decode_array(data).astype(int) - reference.astype(int)).max() <= 1
