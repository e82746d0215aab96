"""Encoder effort: latent refinement lowers the rate-distortion cost; decoders are unchanged."""

import warnings

import numpy as np
import pytest

import neco
from neco.codec import rate_control, registry, session
from neco.codec.constants import MAX_EFFORT
from neco.codec.image_hp import encoder, refine
from neco.codec.constants import RATE_FRAC_BITS
from conftest import photo_crop

RATE_FX = 3 << RATE_FRAC_BITS


def _cost(pixels: np.ndarray, effort: int) -> tuple[float, bytes]:
    """bits/pixel + lambda * MSE (pixel levels), the objective refinement minimises."""
    coder = registry.get_encoder(registry.DEFAULT_IMAGE_MODEL)
    quality = RATE_FX / coder.max_rate_fx * 100
    data = session.encode_array(pixels, quality=quality, effort=effort).data
    out = neco.decode_array(data)
    mse = np.mean((out.astype(float) - pixels) ** 2)
    lam = refine.encoder_lambda(coder.cfg.lambdas, RATE_FX, RATE_FRAC_BITS)
    return 8 * len(data) / pixels[..., 0].size + lam * mse, data


def test_refinement_lowers_the_cost_and_is_deterministic():
    pixels = photo_crop(96, 64, index=3)   # effort 1 saves 5.2 % here (0.7 % on a 64x48 crop, since effort 0 refines z)
    base, _ = _cost(pixels, 0)
    refined, data = _cost(pixels, 1)
    assert refined < 0.99 * base
    assert _cost(pixels, 1)[1] == data


def test_lambda_interpolates_geometrically():
    lambdas = (0.01, 0.04)
    assert refine.lambda_at(lambdas, 0, 8) == pytest.approx(0.01)
    assert refine.lambda_at(lambdas, 128, 8) == pytest.approx(0.02)
    assert refine.lambda_at(lambdas, 256, 8) == pytest.approx(0.04)


def test_the_step_grows_only_above_its_level():
    def at(level: float) -> float:
        return refine.step_size(round(level * (1 << RATE_FRAC_BITS)), RATE_FRAC_BITS)
    assert [at(level) for level in (0, 3, 6.5, refine.STEP_GROWTH_FROM_LEVEL)] == [refine.LEARNING_RATE] * 4
    top = refine.STEP_GROWTH_FROM_LEVEL + 3
    steps = [at(refine.STEP_GROWTH_FROM_LEVEL + i / 4) for i in range(13)]
    assert steps == sorted(set(steps)) and at(top) == pytest.approx(3 * refine.LEARNING_RATE)


@pytest.mark.parametrize("effort", [-1, MAX_EFFORT + 1, 1.5, "2"])
def test_bad_effort_is_refused(effort):
    with pytest.raises(neco.InvalidArgumentError):
        session.encode_array(photo_crop(16, 16), effort=effort)


def test_images_too_large_to_refine_fall_back_to_effort_0(monkeypatch):
    pixels = photo_crop(32, 32)
    monkeypatch.setattr(encoder, "MAX_REFINE_PIXELS", 100)
    with pytest.warns(UserWarning, match="coded at effort 0"):
        data = session.encode_array(pixels, quality=50, effort=2).data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data == session.encode_array(pixels, quality=50, effort=0).data


def test_cli_offers_every_effort_level():
    from neco.plugins.cli import encode
    option = next(p for p in encode.params if p.name == "effort")
    assert (option.type.min, option.type.max) == (0, MAX_EFFORT)


@pytest.mark.parametrize("stage, effort", [("refine_latents", 1), ("fit_last_layer", 0)])
def test_bpp_target_runs_the_full_coding_a_few_times(monkeypatch, stage, effort):
    """The rate search probes with one forward pass each and codes only a few candidates fully
    (refinement at effort > 0, the closed-form decoder adaptation at every effort)."""
    calls = []
    original = getattr(encoder, stage)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(encoder, stage, counted)
    pixels = photo_crop(96, 96, index=3)
    data = session.encode_array(pixels, bpp=1.0, effort=effort).data
    assert 1 <= len(calls) <= rate_control.SEARCH_ROUNDS
    assert 8 * len(data) / pixels[..., 0].size == pytest.approx(1.0, rel=0.1)


def test_cli_reports_refinement_progress(tmp_path):
    from click.testing import CliRunner
    from PIL import Image
    from neco.plugins.cli import cli
    src = tmp_path / "in.png"
    Image.fromarray(photo_crop(32, 32)).save(src)
    result = CliRunner().invoke(cli, ["encode", str(src), str(tmp_path / "out.neco"), "--effort", "1"])
    assert result.exit_code == 0, result.output
    steps = refine.EFFORT_STEPS[1]
    assert f"neco: effort 1: refined {steps}/{steps} steps" in result.output


def test_effort_0_refines_the_hyper_latents_for_fewer_bits():
    """refine_hyper_latents moves z where that lowers the bits of (y, z), priced through both
    passes of the context model, and returns the analysed z otherwise; effort 0 uses it."""
    import torch
    from neco.codec.image_hp.model import interpolate_levels
    coder = registry.get_encoder(registry.DEFAULT_IMAGE_MODEL)
    net = coder.decoder.net()
    x = torch.from_numpy(photo_crop(192, 128, index=5)).permute(2, 0, 1).contiguous()
    y0 = coder.analyse(x)
    lowered = []
    for rate_fx in (0, RATE_FX, coder.max_rate_fx):
        y = y0 * interpolate_levels(net.log_gain, rate_fx)[None, :, None, None]
        z = net.h_a(y) * interpolate_levels(net.log_hyper_gain, rate_fx)[None, :, None, None]
        refined = refine.refine_hyper_latents(net, y, z, rate_fx)
        assert torch.equal(refined, refine.refine_hyper_latents(net, y, z, rate_fx))  # deterministic
        rate = refine._Rate(net, rate_fx)
        with torch.no_grad():
            before, _ = rate.coded_bits(y, torch.round(z), torch.round)
            after, _ = rate.coded_bits(y, torch.round(refined), torch.round)
        assert after <= before
        lowered.append(after < before and not torch.equal(refined, z))
    assert any(lowered)
