"""Changing a trained model's rate levels keeps every old level's function and places new
levels' gains along the old ones (tools/train_image.py --lambdas)."""

import torch

from neco.codec.image_hp.model import ImageModel, ImageModelConfig, with_lambdas


def _model(lambdas):
    torch.manual_seed(0)
    model = ImageModel(ImageModelConfig(channels=8, latent_channels=8, hyper_channels=8, lambdas=lambdas))
    with torch.no_grad():  # trained-looking tables: not the initial straight lines
        for table in (model.log_gain, model.log_inv_gain, model.log_hyper_gain):
            table.add_(0.1 * torch.randn_like(table))
    return model.eval()


def test_old_levels_keep_their_function():
    old = _model((0.002, 0.008, 0.032))
    new = with_lambdas(old, (0.001, 0.002, 0.004, 0.008, 0.032, 0.064)).eval()
    x = torch.rand(1, 3, 64, 64)
    for old_level, new_level in ((0, 1), (1, 3), (2, 4)):
        torch.manual_seed(1)
        a = old(x, torch.tensor([old_level]))
        torch.manual_seed(1)
        b = new(x, torch.tensor([new_level]))
        assert torch.equal(a["x_hat"], b["x_hat"]) and torch.equal(a["bits_y"], b["bits_y"])


def test_new_levels_lie_on_the_log_lambda_line():
    old = _model((0.002, 0.008, 0.032))
    new = with_lambdas(old, (0.001, 0.004, 0.064))
    g = old.log_gain.detach()
    # 0.004 is halfway between 0.002 and 0.008 in log lambda; 0.001 and 0.064 extend the end segments
    assert torch.allclose(new.log_gain[1], (g[0] + g[1]) / 2, atol=1e-6)
    assert torch.allclose(new.log_gain[0], g[0] - (g[1] - g[0]) / 2, atol=1e-6)
    assert torch.allclose(new.log_gain[2], g[2] + (g[2] - g[1]) / 2, atol=1e-6)
