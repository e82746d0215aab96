"""Encoder effort: latent refinement lowers the rate-distortion cost; decoders are unchanged."""

import warnings

import numpy as np
import pytest

import neco
from neco.codec import api, refine, registry
from neco.codec.constants import RATE_FRAC_BITS
from conftest import photo_crop

RATE_FX = 3 << RATE_FRAC_BITS


def _cost(pixels: np.ndarray, effort: int) -> tuple[float, bytes]:
    """bits/pixel + lambda * MSE (pixel levels), the objective refinement minimises."""
    coder = registry.get_model(registry.DEFAULT_IMAGE_MODEL)
    quality = RATE_FX / coder.max_rate_fx * 100
    data = api.encode_array(pixels, quality=quality, effort=effort).data
    out = neco.decode_array(data)
    mse = np.mean((out.astype(float) - pixels) ** 2)
    lam = refine.lambda_at(coder.cfg.lambdas, RATE_FX, RATE_FRAC_BITS)
    return 8 * len(data) / pixels[..., 0].size + lam * mse, data


def test_refinement_lowers_the_cost_and_is_deterministic():
    pixels = photo_crop(64, 48, index=7)
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


@pytest.mark.parametrize("effort", [-1, refine.MAX_EFFORT + 1, 1.5, "2"])
def test_bad_effort_is_refused(effort):
    with pytest.raises(neco.InvalidArgumentError):
        api.encode_array(photo_crop(16, 16), effort=effort)


def test_images_too_large_to_refine_fall_back_to_effort_0(monkeypatch):
    pixels = photo_crop(32, 32)
    monkeypatch.setattr(api, "MAX_REFINE_PIXELS", 100)
    with pytest.warns(UserWarning, match="coded at effort 0"):
        data = api.encode_array(pixels, quality=50, effort=2).data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data == api.encode_array(pixels, quality=50, effort=0).data


def test_cli_offers_every_effort_level():
    from neco.plugins.cli import encode
    option = next(p for p in encode.params if p.name == "effort")
    assert (option.type.min, option.type.max) == (0, refine.MAX_EFFORT)


def test_bpp_target_with_effort_refines_a_few_times(monkeypatch):
    """The rate search probes at effort 0 and refines only a few candidates."""
    from neco.codec import image_codec
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return refine_latents(*args, **kwargs)

    refine_latents = image_codec.refine_latents
    monkeypatch.setattr(image_codec, "refine_latents", counted)
    pixels = photo_crop(96, 96, index=3)
    data = api.encode_array(pixels, bpp=1.0, effort=1).data
    assert 1 <= len(calls) <= api.SEARCH_ROUNDS
    assert 8 * len(data) / pixels[..., 0].size == pytest.approx(1.0, rel=0.1)


def test_bpp_target_fits_the_decoder_adaptation_a_few_times(monkeypatch):
    """At effort 0 too, the search's probes skip the closed-form fit (adapt.fit_last_layer)."""
    from neco.codec import image_codec
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return fit_last_layer(*args, **kwargs)

    fit_last_layer = image_codec.fit_last_layer
    monkeypatch.setattr(image_codec, "fit_last_layer", counted)
    pixels = photo_crop(96, 96, index=3)
    data = api.encode_array(pixels, bpp=1.0).data
    assert 1 <= len(calls) <= api.SEARCH_ROUNDS
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
