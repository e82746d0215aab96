"""Metrics of `neco eval`: PSNR by hand, MS-SSIM against pytorch-msssim on a real image pair."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from neco.plugins.bench.metrics import MS_SSIM_MIN_SIDE, measure, ms_ssim, ms_ssim_db, psnr_rgb, psnr_y

from conftest import photo_crop


def jpeg_pair(width: int, height: int, quality: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A real photo crop and its JPEG-decoded version."""
    original = photo_crop(width, height, index=3)
    buffer = io.BytesIO()
    Image.fromarray(original).save(buffer, format="JPEG", quality=quality)
    return original, np.asarray(Image.open(buffer).convert("RGB"))


def torch_ms_ssim(original, decoded, exact_window: bool):
    """pytorch-msssim's MS-SSIM, with its float32 window or ours in float64."""
    torch = pytest.importorskip("torch")
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    x, y = (torch.from_numpy(a.copy()).permute(2, 0, 1)[None].double() for a in (original, decoded))
    options = {}
    if exact_window:
        g = torch.exp(-(torch.arange(11, dtype=torch.float64) - 5) ** 2 / (2 * 1.5 ** 2))
        options["win"] = (g / g.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    return float(pytorch_msssim.ms_ssim(x, y, data_range=255, **options))


def test_psnr_of_a_known_error():
    a = np.full((4, 5, 3), 100, np.uint8)
    b = a.copy()
    b[..., 0] += 3  # squared error 9 on one channel of three: MSE 3
    assert psnr_rgb(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 3))
    assert psnr_y(a, b) == pytest.approx(10 * math.log10(255 ** 2 / (3 * 0.2126) ** 2))
    assert psnr_rgb(a, a) == math.inf


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="one size"):
        psnr_rgb(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_ms_ssim_of_identical_images_is_one():
    original, _ = jpeg_pair(176, 168)
    assert ms_ssim(original, original) == pytest.approx(1, abs=1e-12)
    assert ms_ssim_db(0.99) == pytest.approx(20)


@pytest.mark.parametrize("width, height", [(192, 176), (201, 171)])  # even and odd sides
def test_ms_ssim_matches_pytorch_msssim_on_a_real_pair(width, height):
    original, decoded = jpeg_pair(width, height)
    ours = ms_ssim(original, decoded)
    assert 0.8 < ours < 0.999
    assert ours == pytest.approx(torch_ms_ssim(original, decoded, exact_window=True), abs=1e-12)


def test_ms_ssim_is_within_1e_5_of_pytorch_msssim_as_compressai_calls_it():
    # Its default window is rounded to float32, which moves the value by about 1e-6.
    original, decoded = jpeg_pair(192, 176)
    assert ms_ssim(original, decoded) == pytest.approx(torch_ms_ssim(original, decoded, exact_window=False),
                                                       abs=1e-5)


def test_ms_ssim_needs_five_scales():
    original, decoded = jpeg_pair(MS_SSIM_MIN_SIDE - 1, 200)
    assert ms_ssim(original, decoded) is None
    assert measure(original, decoded)["ms-ssim-rgb"] is None
