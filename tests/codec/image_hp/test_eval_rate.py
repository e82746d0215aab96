"""In eval mode the float model charges the bits its files cost (tools/train_image.py
validates with it); training mode's noisy rate also charges latents that are always zero."""

import torch

from neco.codec import registry
from neco.codec.constants import RATE_FRAC_BITS
from neco.codec.image_hp.model import ImageModelConfig, model_from_frozen
from conftest import photo_crop


def _model_bits(net, x, level: int) -> float:
    with torch.no_grad():
        out = net(x, torch.tensor([level]))
    return (out["bits_y"] + out["bits_z"]).item()


def test_eval_rate_is_the_coded_rate():
    config, tensors = registry.load_tensors(registry.DEFAULT_IMAGE_MODEL)
    cfg = ImageModelConfig.from_json(config)
    net = model_from_frozen(cfg, tensors)
    coder = registry.get_encoder(registry.DEFAULT_IMAGE_MODEL)
    pixels = torch.from_numpy(photo_crop(128, 128, index=3).copy()).permute(2, 0, 1)
    x = pixels[None].float() / 255
    for level in (0, cfg.levels - 1):
        _, stats = coder.code_latents(coder.analyse(pixels), level << RATE_FRAC_BITS)
        coded = stats["cross_entropy_bits"]
        # the float twin of the integer coder: within a few per cent
        assert abs(_model_bits(net.eval(), x, level) - coded) < 0.05 * coded
        if level == 0:  # the noisy rate overstates the lowest rate several times
            assert _model_bits(net.train(), x, level) > 1.5 * coded
