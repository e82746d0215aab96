"""Growing a trained model's latent channels (tools/train_image.py --latent-channels) keeps
its pictures and gives every new weight a gradient."""

import pytest
import torch

from neco.codec.entropy import build_gaussian_tables
from neco.codec.image_codec import FrozenImageModel
from neco.codec.image_model import ImageModel, ImageModelConfig, frozen_tensors, with_latent_channels

OLD, NEW = 8, 12


def _trained_looking() -> ImageModel:
    torch.manual_seed(0)
    model = ImageModel(ImageModelConfig(channels=8, latent_channels=OLD, hyper_channels=8, lambdas=(0.002, 0.03)))
    with torch.no_grad():  # a context network that does something, gains that differ per channel
        model.context.convs[-1].weight.normal_(0, 0.3)
        model.log_gain.add_(0.3 * torch.randn_like(model.log_gain))
    return model.eval()


def _frozen(net) -> FrozenImageModel:
    tensors = frozen_tensors(net)
    tensors["cdf_tables"] = torch.from_numpy(build_gaussian_tables())
    return FrozenImageModel("test", net.cfg, tensors, b"test")


def test_grown_model_draws_the_same_pictures_with_live_new_channels():
    old = _trained_looking()
    new = with_latent_channels(old, NEW).eval()
    x = torch.rand(1, 3, 128, 128)
    a = old(x, torch.tensor([1]))
    b = new(x, torch.tensor([1]))
    # equal up to float summation order (the convolutions have more, zero, terms)
    assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-6) and torch.allclose(a["bits_z"], b["bits_z"], rtol=1e-6)
    y = new.g_a(x) * new.log_gain.exp()[1][None, :, None, None]
    assert torch.round(y[:, OLD:]).abs().mean() > 0.1
    # the old channels keep their probabilities: with rate weight 0, the new ones' bits vanish
    weight = torch.cat([torch.ones(OLD), torch.zeros(NEW - OLD)])
    assert torch.allclose(new(x, torch.tensor([1]), channel_rate_weight=weight)["bits_y"], a["bits_y"], rtol=1e-6)
    assert torch.all(b["bits_y"] > a["bits_y"] + 1)


def test_grown_model_codes_the_same_picture():
    old = _trained_looking()
    x = (torch.rand(3, 64, 96) * 255).to(torch.uint8)
    pictures = []
    for coder in (_frozen(old), _frozen(with_latent_channels(old, NEW))):
        payload, _ = coder.code_latents(coder.analyse(x), 200)
        pictures.append(coder.decode(payload, 64, 96))
    assert torch.equal(*pictures)


def test_every_new_weight_learns():
    new = with_latent_channels(_trained_looking(), NEW).train()
    out = new(torch.rand(2, 3, 128, 128), torch.tensor([0, 1]))
    (out["bits_y"].sum() + 1e3 * out["x_hat"].square().sum()).backward()
    assert new.g_a[6].weight.grad[OLD:].abs().sum() > 0
    assert new.g_s[0].weight.grad[OLD:].abs().sum() > 0
    assert new.context.convs[1].weight.grad[:, OLD:].abs().sum() > 0
    with pytest.raises(ValueError, match="can grow"):
        with_latent_channels(new, OLD)
