"""Released models are immutable (docs/FORMAT.md, "Compatibility"): their weights never change, a
file they wrote decodes after new models are added, and a file of a model this neco lacks is
refused with one line that names the model."""

import dataclasses
import hashlib
import json

from click.testing import CliRunner
import numpy as np
import pytest

import neco
from neco.codec import registry
from neco.codec.image_hp.model import ImageModel, ImageModelConfig, frozen_tensors
from neco.formats import ModelError, read_container, write_container
from neco.plugins.cli import cli
from conftest import decoded_frames, golden_record, photo_crop

# Every released model and the SHA-256 of its weights, as released: these never change.
RELEASED = {"image-hp-v1": "642f7b0af6af9d67fdf5724c243c907c94d522b69d5ae879d5be4741f1230e5e"}
GOLDEN_V1 = registry.WEIGHTS_DIR.parents[1] / "tests" / "codec" / "golden" / "image-hp-v1"


def test_released_weights_never_change():
    assert registry.released() == sorted(RELEASED)
    for model_id, sha256 in RELEASED.items():
        assert registry.manifest()[model_id]["sha256"] == sha256
        assert hashlib.sha256(registry.weights_path(model_id).read_bytes()).hexdigest() == sha256


def test_the_manifest_names_a_known_family_for_every_model():
    for model_id, entry in registry.manifest().items():
        assert entry["family"] in registry.FAMILIES and registry.family_of(model_id).name == entry["family"]


@pytest.fixture
def with_second_model(tmp_path, monkeypatch):
    """The shipped models plus a small, untrained stand-in for the next release, `image-hp-v2`."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in {entry["file"] for entry in registry.manifest().values()}:   # models may share a file
        (folder / name).symlink_to(registry.WEIGHTS_DIR / name)
    (folder / "MANIFEST.json").write_text(json.dumps(registry.manifest()))
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder)
    registry.reload()
    model = ImageModel(ImageModelConfig(channels=16, latent_channels=16, hyper_channels=8, lambdas=(0.002, 0.03)))
    registry.export("image-hp-v2", "image-hp", frozen_tensors(model), model.cfg.to_json())
    yield
    registry.reload()


def test_a_released_file_decodes_after_a_new_model_is_added(with_second_model):
    assert registry.available() == ["image-hp-v1", "image-hp-v2", "video-hp-v0"]
    assert registry.released() == ["image-hp-v1"]
    for path in sorted(GOLDEN_V1.glob("*.neco")):   # the same symbols, the same pixels (within a level)
        data, reference = path.read_bytes(), np.load(path.with_suffix(".npy"))
        assert golden_record(data) == json.loads(path.with_suffix(".json").read_text())
        assert np.abs(decoded_frames(data).reshape(reference.shape).astype(int) - reference.astype(int)).max() <= 1
    # the new model codes files of its own, which name it, and the default stays the released one
    image = photo_crop(64, 48, index=4)
    new, old = neco.encode(image, quality=50, model="image-hp-v2"), neco.encode(image, quality=50)
    assert neco.info(new)["model_id"] == "image-hp-v2" and neco.info(old)["model_id"] == "image-hp-v1"
    assert neco.decode_array(new).shape == neco.decode_array(old).shape == image.shape
    with pytest.raises(ModelError, match="'image-hp-v1' is released"):
        registry.export("image-hp-v1", "image-hp", {}, "{}")


def _renamed(data: bytes, **changes) -> bytes:
    container = read_container(data)
    return write_container(dataclasses.replace(container.header, **changes),
                           [(c.type, c.payload) for c in container.chunks])


def test_a_file_of_an_unknown_model_is_refused_in_one_line_naming_it(tmp_path):
    data = _renamed((GOLDEN_V1 / "photo-q20.neco").read_bytes(), model_id="image-hp-v9")
    with pytest.raises(ModelError) as refused:
        neco.decode(data)
    message = str(refused.value)
    assert "\n" not in message and "'image-hp-v9'" in message and "neco.models" in message
    assert neco.info(data)["model_id"] == "image-hp-v9"   # the container still reads without the model
    path = tmp_path / "v9.neco"
    path.write_bytes(data)
    result = CliRunner().invoke(cli, ["decode", str(path), str(tmp_path / "out.png")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "'image-hp-v9'" in result.output
    assert not (tmp_path / "out.png").exists()


def test_other_weights_under_a_released_id_are_refused():
    data = _renamed((GOLDEN_V1 / "photo-q20.neco").read_bytes(), weights_digest=b"\0\1\2\3")
    with pytest.raises(ModelError, match="other weights of model 'image-hp-v1'"):
        neco.decode(data)


def test_a_model_of_a_family_this_neco_does_not_know_is_refused(tmp_path, monkeypatch):
    entries = {**registry.manifest(), "other-v1": {"file": "other-v1.safetensors", "sha256": "00" * 32,
                                                    "family": "other", "released": True}}
    (tmp_path / "MANIFEST.json").write_text(json.dumps(entries))
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    data = _renamed((GOLDEN_V1 / "photo-q20.neco").read_bytes(), model_id="other-v1")
    with pytest.raises(ModelError, match="family 'other'"):
        neco.decode(data)
    assert neco.info(data)["model_id"] == "other-v1"   # the container reads; its payloads are opaque

