"""Golden files: every released model's committed `.neco` files keep decoding to the same symbols
and pixels, with every later neco (released models are immutable: docs/FORMAT.md, "Compatibility").

golden/<model id>/ holds each file (still images, and a two-frame clip) with a JSON record of the
SHA-256 of its decoded symbols (exact) and whether it carries table offsets, and its reference
pixels (.npy, compared within one level: synthesis is floating point). A released model's files
are never regenerated; write a model's files once, before it is marked released:

    NECO_GOLDEN_MODEL=image-hp-v2 python -m pytest tests/codec/test_golden.py
"""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

import neco
from neco.codec import registry
from neco.formats import read_container
from conftest import decoded_frames, golden_record, photo_crop

GOLDEN = Path(__file__).with_name("golden")
CASES = {"photo-q20": (photo_crop(96, 64, index=11), 20.0),
         "photo-q80": (photo_crop(70, 45, index=12), 80.0),
         "photo-q90-offsets": (photo_crop(192, 128, index=2), 90.0)}   # carries table offsets


def _write_golden(model_id: str) -> None:
    folder = GOLDEN / model_id
    folder.mkdir(exist_ok=True)
    files = {name: neco.encode(pixels, quality=quality, model=model_id) for name, (pixels, quality) in CASES.items()}
    clip = io.BytesIO()
    neco.encode_frames([photo_crop(64, 48, index=5), photo_crop(64, 48, index=6)], clip, quality=40,
                       frame_rate=25, model=model_id)
    files["clip-2-frames"] = clip.getvalue()
    for name, data in files.items():
        (folder / f"{name}.neco").write_bytes(data)
        np.save(folder / f"{name}.npy", decoded_frames(data))
        (folder / f"{name}.json").write_text(json.dumps(golden_record(data), indent=1) + "\n")


if os.environ.get("NECO_GOLDEN_MODEL"):
    assert os.environ["NECO_GOLDEN_MODEL"] not in registry.released(), "a released model's golden files never change"
    _write_golden(os.environ["NECO_GOLDEN_MODEL"])

FILES = sorted(GOLDEN.glob("*/*.neco"))


def test_every_released_model_has_golden_files():
    kinds = {(path.parent.name, read_container(path.read_bytes()).header.kind.name) for path in FILES}
    for model_id in registry.released():
        assert {(model_id, "IMAGE"), (model_id, "VIDEO")} <= kinds, model_id
    assert any(json.loads(path.with_suffix(".json").read_text())["table_offsets"] for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_file_decodes_as_recorded(path):
    data = path.read_bytes()
    assert read_container(data).header.model_id == path.parent.name
    assert golden_record(data) == json.loads(path.with_suffix(".json").read_text())
    reference = np.load(path.with_suffix(".npy"))
    assert np.abs(decoded_frames(data).reshape(reference.shape).astype(int) - reference.astype(int)).max() <= 1
