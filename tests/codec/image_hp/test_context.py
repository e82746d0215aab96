"""The checkerboard context: the decoder rebuilds the encoder's two passes exactly.

The shipped context network may be close to zero early in training, which would hide an
ordering mistake between anchors and non-anchors, so these tests give it random weights: the
probabilities then depend strongly on the decoded anchors, and any mismatch between the
encoder's and the decoder's passes decodes garbage.
"""

import numpy as np
import pytest
import torch

from neco.codec import registry
from neco.codec.constants import ACT_FRAC_BITS, ACT_MAX, RATE_FRAC_BITS
from neco.codec.image_hp.decoder import ImageHPDecoder
from neco.codec.image_hp.encoder import ImageHPEncoder
from neco.codec.image_hp.model import (ImageModel, ImageModelConfig, checkerboard, frozen_tensors, model_from_frozen,
                                    with_channel_groups)
from conftest import PSNR_FLOOR, photo_crop, psnr


def _model(context_scale: int) -> ImageHPEncoder:
    config, tensors = registry.load_tensors(registry.DEFAULT_IMAGE_MODEL)
    cfg = ImageModelConfig.from_json(config)
    g = torch.Generator().manual_seed(5)
    for key in [k for k in tensors if k.startswith("context_int.")]:
        if context_scale:
            tensors[key] = torch.randint(-context_scale, context_scale + 1, tensors[key].shape,
                                         generator=g).to(tensors[key].dtype)
        else:
            tensors[key] = torch.zeros_like(tensors[key])
    return ImageHPEncoder(ImageHPDecoder("test", cfg, tensors, b"test"))


def _round_trip(model: ImageHPEncoder, pixels: np.ndarray, rate_fx: int) -> tuple[bytes, np.ndarray]:
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    payload, _ = model.code_latents(model.analyse(x), rate_fx)
    h, w = pixels.shape[:2]
    return payload, model.decoder.decode(payload, h, w).permute(1, 2, 0).numpy()


def test_checkerboard_alternates():
    mask = checkerboard(3, 4)
    assert mask.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]


def test_random_context_round_trips():
    pixels = photo_crop(96, 80, index=2)
    plain_payload, plain = _round_trip(_model(0), pixels, 512)
    ctx_payload, ctx = _round_trip(_model(40), pixels, 512)
    assert ctx_payload != plain_payload  # the context changed the probabilities...
    assert psnr(pixels, ctx) > psnr(pixels, plain) - 1.0  # ...and the decoder followed it


GROUPS = (16, 16, 32, 64, 64)


def _frozen(net) -> ImageHPEncoder:
    return ImageHPEncoder(ImageHPDecoder("test", net.cfg, frozen_tensors(net), b"test"))


def _shipped_float_model():
    config, tensors = registry.load_tensors(registry.DEFAULT_IMAGE_MODEL)
    cfg = ImageModelConfig.from_json(config)
    return model_from_frozen(cfg, tensors)


def _grouped_with_random_context(scale: float, seed: int = 3):
    net = _shipped_float_model()
    if not net.cfg.channel_context:
        net = with_channel_groups(net, GROUPS)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in net.context.convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * scale)
    return net


def test_channel_groups_start_as_the_model_without_them():
    """Zero channel-context weights: the same symbols with the same probabilities (the
    payloads differ only in the order the coder writes symbols within each call)."""
    net = _shipped_float_model()
    if net.cfg.channel_context:
        pytest.skip("the shipped model already has channel groups")
    x = torch.from_numpy(photo_crop(96, 80, index=4).copy()).permute(2, 0, 1)
    coded = []
    for coder in (_frozen(net), _frozen(with_channel_groups(net, GROUPS))):
        payload, stats = coder.code_latents(coder.analyse(x), 700)
        coded.append((stats["cross_entropy_bits"], coder.decoder.decode_latents(payload, 80, 96)))
    (bits, latents), (grouped_bits, grouped_latents) = coded
    assert grouped_bits == pytest.approx(bits, rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(latents[1:4], grouped_latents[1:4]))


def test_random_channel_context_round_trips():
    net = _grouped_with_random_context(0.05)
    pixels = photo_crop(96, 80, index=2)
    payload, decoded = _round_trip(_frozen(net), pixels, 512)
    with torch.no_grad():
        net.context.convs[0].weight[:, 3 * net.cfg.latent_channels:] = 0
    without, _ = _round_trip(_frozen(net), pixels, 512)
    assert payload != without  # the channel context changed the probabilities...
    assert psnr(pixels, decoded) > PSNR_FLOOR  # ...and the decoder followed it


def test_float_twin_codes_in_the_coder_order():
    """Training's float model must condition each group on what the coder decodes before it:
    with a random context, its rounded latents match the coder's symbols (up to rare rounding
    flips from the integer weights). At this scale the channel context moves enough latents
    that a float model ignoring it agrees on only ~87 %; stronger contexts turn chaotic (the
    float and integer twins drift apart even without channel groups)."""
    net = _grouped_with_random_context(0.01).eval()
    coder = _frozen(net)
    x = torch.from_numpy(photo_crop(128, 128, index=1).copy()).permute(2, 0, 1)
    payload, _ = coder.code_latents(coder.analyse(x), 5 << RATE_FRAC_BITS)
    _, _, y_sym, mean_fx, _ = coder.decoder.decode_latents(payload, 128, 128)
    with torch.no_grad():
        y = net.g_a(x[None].float() / 255) * net.log_gain[5].exp()[None, :, None, None]
        z = torch.round(net.h_a(y) * net.log_hyper_gain[5].exp()[None, :, None, None])
        h = net.h_s((z * net.log_hyper_inv_gain[5].exp()[None, :, None, None]).clamp(-ACT_MAX, ACT_MAX))
        mean, _, y_hat = net.latent_parameters(h, y, torch.round)
    agree = torch.isclose(y_hat[0].double(), y_sym + mean_fx.double() / 2 ** ACT_FRAC_BITS, atol=0.02).double().mean()
    assert agree > 0.98, agree


def test_channel_groups_keep_the_float_function():
    """The training model with new, zero channel-context weights computes what it did."""
    torch.manual_seed(0)
    old = ImageModel(ImageModelConfig(channels=8, latent_channels=8, hyper_channels=8, lambdas=(0.002, 0.03)))
    with torch.no_grad():
        old.context.convs[-1].weight.normal_(0, 0.3)
    new = with_channel_groups(old.eval(), (2, 2, 4)).eval()
    x = torch.rand(1, 3, 128, 128)
    torch.manual_seed(1)
    a = old(x, torch.tensor([1]))
    torch.manual_seed(1)
    b = new(x, torch.tensor([1]))
    assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-5) and torch.allclose(a["bits_y"], b["bits_y"], rtol=1e-5)
    with pytest.raises(ValueError, match="two or more groups"):
        with_channel_groups(new, (4, 4))
    with pytest.raises(ValueError, match="do not split"):
        ImageModelConfig(latent_channels=8, channel_groups=(2, 2))


def test_predicted_positions_take_the_given_means_and_lowered_rows():
    """walk_latents' `predicted` (the video profile's inter blocks): at those positions the means
    are the given ones and the table rows the network's minus the shift (clamped); given the same
    decoded latents, every other position's parameters are those of the plain walk."""
    decoder = registry.get_decoder(registry.DEFAULT_IMAGE_MODEL)
    z_sym = torch.randint(-3, 4, (decoder.cfg.hyper_channels, 2, 3), generator=torch.Generator().manual_seed(2))
    h = decoder.hyper_output(z_sym, 5 << RATE_FRAC_BITS)
    seen = {}

    def record(name, symbols):
        def next_symbols(channels, mask, mean_fx, index):
            seen.setdefault(name, []).append((mask.clone(), mean_fx.clone(), index.clone()))
            return symbols(mask)[channels][:, mask]
        return next_symbols

    zeros = lambda mask: torch.zeros((decoder.cfg.latent_channels, *mask.shape), dtype=torch.int64)  # noqa: E731
    plain_sym, plain_mean = decoder.walk_latents(h, record("plain", zeros))
    where = torch.zeros(h.shape[-2:], dtype=torch.bool)
    where[2:6, 4:8] = True
    given = plain_mean + (3 << ACT_FRAC_BITS)            # coded as -3 about it: the same decoded latents
    minus_three = lambda mask: torch.where(where, -3, 0).expand(decoder.cfg.latent_channels, -1, -1)  # noqa: E731
    y_sym, mean_fx = decoder.walk_latents(h, record("predicted", minus_three), predicted=(where, given, 5))
    assert torch.equal((y_sym << ACT_FRAC_BITS) + mean_fx, (plain_sym << ACT_FRAC_BITS) + plain_mean)
    assert torch.equal(mean_fx[:, where], given[:, where]) and torch.equal(mean_fx[:, ~where], plain_mean[:, ~where])
    for (mask, _, plain_index), (_, mean, index) in zip(seen["plain"], seen["predicted"]):
        at, other = mask & where, mask & ~where
        assert torch.equal(index[:, at], (plain_index[:, at] - 5).clamp(0, 63))
        assert torch.equal(index[:, other], plain_index[:, other])
        assert torch.equal(mean[:, at], given[:, at])
