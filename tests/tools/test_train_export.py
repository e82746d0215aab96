"""Where training starts and what it exports (neco.codec.image_hp.training): a run resumes its
checkpoint, exports under a new model id, and the next run without a checkpoint starts from that
export; a released model is never overwritten."""

import json

import numpy as np
from PIL import Image
import pytest
import torch

from neco.codec import registry
from neco.codec.image_hp import training
from neco.codec.image_hp.model import ImageModel, ImageModelConfig
from neco.formats.errors import ModelError

TINY = dict(channels=8, latent_channels=8, lambdas=(0.002, 0.03))


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty registry of shipped models (manifest and weights) in a temporary folder."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder)
    return folder


def _manifest(folder, **released):
    (folder / "MANIFEST.json").write_text(json.dumps({
        model_id: {"file": f"{model_id}.safetensors", "sha256": "00" * 32, "family": family, "released": True}
        for model_id, family in released.items()}))


def _photos(folder):
    """Six photos: two to train on, the last four by name held out (256^2: validation's half-size
    centre crops are 128^2)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_exporting_onto_a_released_model_is_refused(weights_dir):
    _manifest(weights_dir, **{"tiny-v1": "image-hp"})
    model = ImageModel(ImageModelConfig(channels=8, latent_channels=8, hyper_channels=8, lambdas=(0.002, 0.03)))
    with pytest.raises(ModelError, match="'tiny-v1' is released") as refused:
        training.export_weights("tiny-v1", model)
    assert "\n" not in str(refused.value)  # one line, as the command line prints it
    assert not registry.weights_path("tiny-v1").exists()
    assert json.loads((weights_dir / "MANIFEST.json").read_text())["tiny-v1"]["sha256"] == "00" * 32


def test_a_run_starts_from_the_newest_released_model(tmp_path, weights_dir):
    _manifest(weights_dir, **{"image-hp-v1": "image-hp", "image-hp-v10": "image-hp", "image-hp-v2": "image-hp",
                              "other-v99": "other"})
    options = training.Options(tmp_path, tmp_path / "ck.pt", model_id="image-hp-v11")
    assert training.newest_released() == "image-hp-v10"
    assert training.starting_weights(options) == "image-hp-v10"
    given = training.Options(tmp_path, tmp_path / "ck.pt", init="image-hp-v1")
    assert training.starting_weights(given) == "image-hp-v1"
    assert training.starting_weights(training.Options(tmp_path, tmp_path / "ck.pt", from_scratch=True)) is None


def test_a_given_starting_model_must_exist(tmp_path, weights_dir):
    options = training.Options(_photos(tmp_path / "photos"), tmp_path / "ck.pt", init="tiny-v7", **TINY)
    with pytest.raises(ModelError, match="tiny-v7"):
        training.train(options)


def test_resume_export_and_start_from_the_export(tmp_path, weights_dir, capsys):
    torch.manual_seed(0)
    photos, checkpoint = _photos(tmp_path / "photos"), tmp_path / "ck" / "image-hp.pt"
    run = lambda **more: training.train(training.Options(
        photos, checkpoint, model_id="tiny-v2", batch=1, crop=64, threads=1, validate_every=10**6, **TINY, **more))
    run(steps=2, from_scratch=True)
    assert torch.load(checkpoint, weights_only=False)["step"] == 2
    run(steps=3)  # resumes the checkpoint: one more step
    resumed = torch.load(checkpoint, weights_only=False)
    assert resumed["step"] == 3 and "optimizer" in resumed and resumed["phase"] == "soft"
    assert "model ImageModelConfig" in capsys.readouterr().out

    run(export=True)
    config, tensors = registry.load_tensors("tiny-v2")  # verifies the digest the export recorded
    assert ImageModelConfig.from_json(config).lambdas == TINY["lambdas"] and "cdf_tables" in tensors
    assert registry.manifest()["tiny-v2"]["released"] is False

    checkpoint.unlink()  # a new session: no checkpoint, the export carries training on
    run(steps=1)
    out = capsys.readouterr().out
    assert "starting from shipped weights tiny-v2" in out and "validate step 0:" in out
