"""Growing a trained model's latent channels in training (tools/train_image.py): the new
channels are fitted alone first, then their bits come in gradually."""

import copy
import importlib.util
from pathlib import Path
import random
from types import SimpleNamespace

import torch

from neco.codec.image_model import ImageModel, ImageModelConfig, with_latent_channels

_spec = importlib.util.spec_from_file_location(
    "train_image", Path(__file__).resolve().parents[2] / "tools" / "train_image.py")
train_image = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_image)


def test_rate_weight_of_new_channels_ramps_up():
    cfg = ImageModelConfig(latent_channels=12)
    assert train_image.channel_rate_weight(cfg, None, 50, "cpu") is None
    ramp = train_image.GROWTH_RAMP_STEPS
    weight = train_image.channel_rate_weight(cfg, (8, 100), 100 + ramp // 4, "cpu")
    assert weight.tolist() == [1.0] * 8 + [0.25] * 4
    assert train_image.channel_rate_weight(cfg, (8, 100), 100 + ramp, "cpu") is None


def test_fitting_new_channels_leaves_the_rest_as_trained(monkeypatch):
    monkeypatch.setattr(train_image, "GROWTH_FIT_STEPS", 3)
    torch.manual_seed(0)
    old = ImageModel(ImageModelConfig(channels=8, latent_channels=8, hyper_channels=8, lambdas=(0.002, 0.03)))
    model = with_latent_channels(old, 12)
    before = copy.deepcopy(model.state_dict())
    images = [torch.randint(0, 256, (3, 80, 80), dtype=torch.uint8)]
    args = SimpleNamespace(batch=2, crop=64, device="cpu", bf16=False)
    train_image.fit_new_channels(model, 8, images, torch.tensor([0.002, 0.03]), args, random.Random(0))
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"g_a.6.weight", "g_a.6.bias", "g_s.0.weight", "log_gain", "log_inv_gain"}
    for name in changed:  # only the new channels' rows / columns moved
        old_part = (slice(None), slice(0, 8)) if name.startswith("log") else (slice(0, 8),)
        new_part = (slice(None), slice(8, None)) if name.startswith("log") else (slice(8, None),)
        assert torch.equal(before[name][old_part], after[name][old_part])
        assert not torch.equal(before[name][new_part], after[name][new_part])
