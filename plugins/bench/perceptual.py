"""Optional perceptual metrics of `neco eval`: SSIMULACRA2, FLIP and VMAF (``pip install neco[metrics]``).

    neco eval ../shared/data/kodak -c jpeg --metric ssimulacra2 --metric flip -o results/kodak
    neco eval ../shared/data/video/vtest.avi -c x264 --metric vmaf -o results/video

Each is measured only when asked for (``--metric``), from a package that ships everything it
needs (no weights or models downloaded at run time). A metric whose package is missing is
reported by `unavailable` and skipped by the CLI. All take the same (H, W, 3) uint8 RGB
arrays as `bench.metrics`, the original first:

- ``ssimulacra2``: SSIMULACRA2 (Jon Sneyers, Cloudinary; the JPEG XL project's metric), the
  Python port of the ``ssimulacra2`` package: a multi-scale SSIM and edge-artifact score in the
  XYB colour space. Higher is better: 100 for identical images, about 90 visually lossless,
  70 high, 50 medium, 30 low quality; very bad images go below 0. The port, like libjxl's
  tool, needs 8x8 pixels: smaller images get None.
- ``flip``: the mean of NVIDIA's LDR-FLIP error map (Andersson et al., "FLIP: A Difference
  Evaluator for Alternating Images", HPG 2020), ``flip-evaluator``, at its default viewing
  condition (0.7 m from a 0.7 m wide 3840-pixel display: 67 pixels per degree). Lower is
  better: 0 for identical images, at most 1.
- ``vmaf``: VMAF v0.6.1 (Netflix), the default model built into ``vmaf-torch`` (float features;
  its authors measure a mean absolute difference of 0.006 from libvmaf's integer ones), for
  video only: it needs the frame sequence, its motion feature compares neighbouring frames.
  Computed on 8-bit luma, limited-range BT.601 (what the video codecs are given, see
  `codecs.PyAvCodec`), rounded to integers like a decoded Y plane; scores clipped to
  [0, 100] as libvmaf does. Higher is better; identical frames score 100, or 97.43 where the
  motion feature is 0 (the first frame, a still), as with libvmaf. Frames need 17 pixels on
  each side. Pooled over frames by the arithmetic mean, libvmaf's default.

Each metric has a version (`version`: the package's version and `REVISION`, which is bumped
when our use of it changes): a cached measurement is reused only when it holds every metric
asked for at the current version (`bench.run`).
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str  # the key of results and CSV columns
    title: str  # for tables and plot axes
    distribution: str  # what pip installs
    module: str  # what Python imports
    kinds: tuple[str, ...]  # "image" and / or "video"
    higher_is_better: bool
    perfect: float  # the value of identical images


PERCEPTUAL = {m.name: m for m in (
    Metric("ssimulacra2", "SSIMULACRA2", "ssimulacra2", "ssimulacra2", ("image", "video"), True, 100.0),
    Metric("flip", "FLIP", "flip-evaluator", "flip_evaluator", ("image", "video"), False, 0.0),
    Metric("vmaf", "VMAF", "vmaf-torch", "vmaf_torch", ("video",), True, 100.0),
)}
# Bumped when what a metric's number means changes here (not in its package): cached values go stale.
REVISION = 1
SSIMULACRA2_MIN_SIDE = 8
VMAF_MIN_SIDE = 17  # vmaf-torch's reflect padding at its coarsest scale (found by trial)
VMAF_CHUNK = 8  # frames per pass of the spatial features, to bound memory at 1080p
# Limited-range BT.601 luma from 8-bit RGB: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
VMAF_LUMA = (65.481 / 255, 128.553 / 255, 24.966 / 255)


def unavailable(name: str) -> str | None:
    """Why a metric cannot be measured here (its package is missing or broken), or None."""
    metric = PERCEPTUAL[name]
    try:
        importlib.import_module(metric.module)
    except Exception as exc:  # noqa: BLE001 - a broken binary wheel must not end the run
        reason = "not installed" if isinstance(exc, ModuleNotFoundError) else f"{type(exc).__name__}: {exc}"
        return f"{reason} (pip install {metric.distribution}, or neco[metrics])"
    return None


@lru_cache(maxsize=None)
def version(name: str) -> str:
    """``<distribution> <version>/<REVISION>``: what a cached value of the metric depends on."""
    metric = PERCEPTUAL[name]
    try:
        found = metadata.version(metric.distribution)
    except metadata.PackageNotFoundError:
        found = "unknown"
    return f"{metric.distribution} {found}/{REVISION}"


def _check(original: np.ndarray, decoded: np.ndarray) -> None:
    if original.shape != decoded.shape or original.ndim != 3 or original.shape[2] != 3:
        raise ValueError(f"need two HxWx3 images of one size, got {original.shape} and {decoded.shape}")


def ssimulacra2(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """SSIMULACRA2 score (100 = identical, higher is better), None below 8x8 pixels."""
    _check(original, decoded)
    if min(original.shape[:2]) < SSIMULACRA2_MIN_SIDE:
        return None
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    def as_file(pixels: np.ndarray) -> io.BytesIO:
        # The package takes what Image.open takes; PPM is the cheapest lossless container.
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PPM")
        buffer.seek(0)
        return buffer

    return float(compute_ssimulacra2(as_file(original), as_file(decoded)))


def flip(original: np.ndarray, decoded: np.ndarray) -> float:
    """Mean LDR-FLIP error (0 = identical, lower is better) of two sRGB images."""
    _check(original, decoded)
    import flip_evaluator

    reference, test = (np.ascontiguousarray(a, dtype=np.float32) / np.float32(255) for a in (original, decoded))
    _error_map, mean, _parameters = flip_evaluator.evaluate(reference, test, "LDR", inputsRGB=True,
                                                            applyMagma=False, computeMeanError=True,
                                                            parameters={})
    return float(mean)


IMAGE_FUNCTIONS = {"ssimulacra2": ssimulacra2, "flip": flip}


def vmaf_luma(frames: np.ndarray):
    """(N, 1, H, W) float32 tensor of 8-bit limited-range BT.601 luma of (N, H, W, 3) RGB frames."""
    import torch
    y = np.rint(16 + frames.astype(np.float32) @ np.array(VMAF_LUMA, np.float32))
    return torch.from_numpy(np.clip(y, 0, 255).astype(np.float32)[:, None])


@lru_cache(maxsize=1)
def _vmaf_model():
    from vmaf_torch import VMAF
    return VMAF(temporal_pooling=False, enable_motion=True, clip_score=True).eval()


def vmaf(original: np.ndarray, decoded: np.ndarray) -> list[float] | None:
    """Per-frame VMAF v0.6.1 of (N, H, W, 3) RGB frame sequences; None below 17 pixels a side."""
    if original.shape != decoded.shape or original.ndim != 4 or original.shape[3] != 3:
        raise ValueError(f"need two NxHxWx3 frame sequences of one size, got {original.shape} and {decoded.shape}")
    if min(original.shape[1:3]) < VMAF_MIN_SIDE:
        return None
    import torch

    model = _vmaf_model()
    with torch.no_grad():
        ref = vmaf_luma(original)
        motion2 = model.compute_motion2(ref)  # over the whole clip: it compares neighbouring frames
        scores = []
        for start in range(0, len(ref), VMAF_CHUNK):
            r = ref[start:start + VMAF_CHUNK]
            d = vmaf_luma(decoded[start:start + VMAF_CHUNK])
            scores.append(model.predict(model.compute_adm_score(r, d), motion2[start:start + VMAF_CHUNK],
                                        model.compute_vif_features(r, d)))
    return [float(v) for v in torch.cat(scores).flatten()]


def measure_image(original: np.ndarray, decoded: np.ndarray, metrics: Sequence[str]) -> dict[str, float | None]:
    """The perceptual metrics asked for (image metrics only) of one image pair."""
    return {name: IMAGE_FUNCTIONS[name](original, decoded) for name in metrics}


def measure_frames(original: np.ndarray, decoded: np.ndarray,
                   metrics: Sequence[str]) -> dict[str, list[float | None]]:
    """Per-frame values of the perceptual metrics asked for, on (N, H, W, 3) frame sequences."""
    out: dict[str, list[float | None]] = {}
    for name in metrics:
        if name == "vmaf":
            values = vmaf(original, decoded)
            out[name] = [None] * len(original) if values is None else values
        else:
            out[name] = [IMAGE_FUNCTIONS[name](a, b) for a, b in zip(original, decoded)]
    return out
