"""Shared fixtures: small real photo crops from ../shared/data/train (never Kodak)."""

from pathlib import Path
import time

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRAIN = SHARED / "data" / "train"


def photo_crop(width: int, height: int, index: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 crop from the middle of a training photo."""
    im = np.asarray(Image.open(sorted(TRAIN.glob("*.png"))[index]).convert("RGB"))
    y0, x0 = (im.shape[0] - height) // 2, (im.shape[1] - width) // 2
    return np.ascontiguousarray(im[y0:y0 + height, x0:x0 + width])


@pytest.fixture(scope="session")
def photo():
    return photo_crop(160, 96)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


# Sanity floor for decoded test images: catches garbage, transposes and colour swaps.
PSNR_FLOOR = 15


def smooth_image(width: int = 64, height: int = 48) -> np.ndarray:
    """A smooth synthetic RGB gradient (for tests that need no real photo)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / width * np.pi)
    g = 60 + 150 * y / height
    b = 200 - 120 * (x + y) / (width + height)
    return np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8)


def neco_eval(*args):
    """Run `neco eval ARGS` in-process; an exception other than click's exit propagates."""
    from click.testing import CliRunner
    from neco.plugins.cli import cli
    result = CliRunner().invoke(cli, ["eval", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def fixed_adaptation(seed: int = 0, exponent: int = 6):
    """A decoder adaptation (codec/image_hp/adaptation.py) of pseudo-random deltas for the shipped model."""
    import torch
    from neco.codec import registry
    from neco.codec.image_hp import adaptation as adaptation_mod
    coder = registry.get_encoder(registry.DEFAULT_IMAGE_MODEL)
    gen = torch.Generator().manual_seed(seed)
    params = dict(coder.decoder.net().g_s.named_parameters())
    deltas = [0.05 * torch.randn(params[n].shape, generator=gen) for n in adaptation_mod.adapted_names(coder.decoder.net().g_s)]
    return adaptation_mod.Adaptation.quantize(deltas, exponent, coder.coder)


def encode_adapted(pixels: np.ndarray, quality: float, device: str = "cpu", seed: int = 0) -> bytes:
    """An effort-1 file whose refinement is replaced by `fixed_adaptation` of the start latents
    (and the closed-form fit by keeping it), so that the file carries that very adaptation
    whatever the encoder would choose."""
    import neco
    from neco.codec.image_hp import encoder
    adaptation = fixed_adaptation(seed)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(encoder, "refine_latents", lambda net, x, y, z, *args: (y, z, adaptation))
        mp.setattr(encoder, "fit_last_layer", lambda g_s, features, residual, lam, coder, flag_bits, base: base)
        return neco.encode(pixels, quality=quality, device=device, effort=1)


# Golden files (tests/codec/test_golden.py): what a file decodes to, recorded once per file.

def _frame_payloads(data: bytes) -> list[bytes]:
    from neco.formats import ChunkType, read_container
    return [ch.payload for ch in read_container(data).chunks if ch.type == ChunkType.FRAME]


def _symbols_digest(data: bytes) -> str:
    """SHA-256 of every frame's decoded symbols (z, y, the means, the adaptation's) in order."""
    import hashlib
    from neco.codec import registry
    from neco.formats import read_container
    header = read_container(data).header
    assert registry.family_of(header.model_id).name == "image-hp"   # the one family with golden files yet
    decoder = registry.get_decoder(header.model_id)
    digest = hashlib.sha256()
    for payload in _frame_payloads(data):
        _, z, y, mean, adaptation = decoder.decode_latents(payload, header.height, header.width)
        for t in (z, y, mean) + (adaptation.symbols if adaptation is not None else ()):
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def decoded_frames(data: bytes) -> np.ndarray:
    import neco
    with neco.open(data) as reader:
        return np.stack(list(reader))


def golden_record(data: bytes) -> dict:
    from neco.codec.image_hp.payload import read_first_field
    return {"symbols_sha256": _symbols_digest(data),
            "table_offsets": any(read_first_field(p).table_offsets for p in _frame_payloads(data))}


def fuzz_case(counts: dict, decode, shape: tuple, seconds: float, case: int) -> None:
    """One fuzz case: decode() must give an array of `shape` or raise a NecoError (counted in
    counts["decoded"] / counts["neco_error"]), within `seconds`."""
    import neco
    start = time.perf_counter()
    try:
        assert tuple(decode().shape) == shape
        counts["decoded"] += 1
    except neco.NecoError:
        counts["neco_error"] += 1
    assert time.perf_counter() - start < seconds, f"case {case} took too long"
