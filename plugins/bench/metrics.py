"""Quality metrics of the RD bench (`neco eval`): PSNR on RGB and on luma, and MS-SSIM.

All take two (H, W, 3) uint8 RGB arrays, the original first. The conventions are those of
CompressAI's ``eval_model`` (and of ``../shared/reference/kodak/*.json``) so that our numbers
sit on the same axes as published curves:

- PSNR-RGB: one mean squared error over all pixels of the three 8-bit channels, peak 255.
- PSNR-Y: the same on full-range BT.709 luma, Y = 0.2126 R + 0.7152 G + 0.0722 B, in floating
  point without rounding (CompressAI's ``rgb2ycbcr``).
- MS-SSIM: Wang, Simoncelli & Bovik, "Multiscale structural similarity for image quality
  assessment" (Asilomar 2003), as implemented by ``pytorch-msssim`` (which CompressAI uses):
  an 11-tap Gaussian window (sigma 1.5) applied in "valid" mode, K1 = 0.01, K2 = 0.03, five
  scales with the paper's weights, 2x2 average pooling between scales (zero-padded at odd
  sizes), negative contrast-structure terms clipped to zero, computed per channel and
  averaged over R, G and B. Five scales need a short side above 160 pixels; smaller images
  get None rather than a number from a different definition.

Identical images have an infinite PSNR (`math.inf`).
"""

from __future__ import annotations

import math

import numpy as np

PEAK = 255.0
LUMA_BT709 = (0.2126, 0.7152, 0.0722)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
# The smallest short side MS-SSIM accepts: the window must still fit after four halvings.
MS_SSIM_MIN_SIDE = (SSIM_WINDOW - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


def _check(original: np.ndarray, decoded: np.ndarray) -> None:
    if original.shape != decoded.shape or original.ndim != 3 or original.shape[2] != 3:
        raise ValueError(f"need two HxWx3 images of one size, got {original.shape} and {decoded.shape}")


def _psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(PEAK ** 2 / mse)


def psnr_rgb(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB over the three 8-bit RGB channels."""
    _check(original, decoded)
    diff = original.astype(np.float64) - decoded.astype(np.float64)
    return _psnr(float(np.mean(diff * diff)))


def psnr_y(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of full-range BT.709 luma (float, unrounded)."""
    _check(original, decoded)
    weights = np.array(LUMA_BT709)
    diff = (original.astype(np.float64) - decoded.astype(np.float64)) @ weights
    return _psnr(float(np.mean(diff * diff)))


def _gaussian_window() -> np.ndarray:
    x = np.arange(SSIM_WINDOW, dtype=np.float64) - SSIM_WINDOW // 2
    g = np.exp(-x ** 2 / (2 * SSIM_SIGMA ** 2))
    return g / g.sum()


def _blur(maps: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable filtering of (C, H, W) maps by a symmetric window in "valid" mode (no padding).

    Shifted sums, the two taps of equal weight added first; in place, as this is the bench's
    hot loop.
    """
    n, c = len(window), len(window) // 2
    h, w = maps.shape[1] - n + 1, maps.shape[2] - n + 1
    rows = maps[:, c:c + h, :] * window[c]
    tmp = np.empty_like(rows)
    for k in range(c):
        np.add(maps[:, k:k + h, :], maps[:, n - 1 - k:n - 1 - k + h, :], out=tmp)
        tmp *= window[k]
        rows += tmp
    out = rows[:, :, c:c + w] * window[c]
    tmp = np.empty_like(out)
    for k in range(c):
        np.add(rows[:, :, k:k + w], rows[:, :, n - 1 - k:n - 1 - k + w], out=tmp)
        tmp *= window[k]
        out += tmp
    return out


def _halve(maps: np.ndarray) -> np.ndarray:
    """2x2 average pooling; an odd side is zero-padded by one on both ends first (pytorch-msssim)."""
    pad_h, pad_w = maps.shape[1] % 2, maps.shape[2] % 2
    maps = np.pad(maps, ((0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    c, h, w = maps.shape[0], maps.shape[1] // 2, maps.shape[2] // 2
    return maps[:, :2 * h, :2 * w].reshape(c, h, 2, w, 2).mean(axis=(2, 4))


def ms_ssim(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """MS-SSIM of two RGB images (1 = identical), or None when the image is too small."""
    _check(original, decoded)
    if min(original.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    x = original.transpose(2, 0, 1).astype(np.float64)
    y = decoded.transpose(2, 0, 1).astype(np.float64)
    window = _gaussian_window()
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    factors = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        # var_x + var_y comes from one blurred map, x^2 + y^2: four maps, not five.
        mu_x, mu_y, squares, xy = np.split(_blur(np.concatenate([x, y, x * x + y * y, x * y]), window), 4)
        cs_map = (2 * (xy - mu_x * mu_y) + c2) / (squares - mu_x ** 2 - mu_y ** 2 + c2)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            factors.append(np.maximum(cs_map.mean(axis=(1, 2)), 0))
            x, y = _halve(x), _halve(y)
        else:
            luminance = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
            factors.append(np.maximum((luminance * cs_map).mean(axis=(1, 2)), 0))
    per_channel = np.prod(np.stack(factors) ** np.array(MS_SSIM_WEIGHTS)[:, None], axis=0)
    return float(per_channel.mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM), as RD plots and BD-rates use it."""
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


def measure(original: np.ndarray, decoded: np.ndarray) -> dict[str, float | None]:
    """Every metric of the bench, keyed as in CompressAI's results."""
    return {"psnr-rgb": psnr_rgb(original, decoded), "psnr-y": psnr_y(original, decoded),
            "ms-ssim-rgb": ms_ssim(original, decoded)}
