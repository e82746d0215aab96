"""Encode under one configuration, decode under every other: symbols identical, pixels within 1.

The configurations differ in every axis that could change floating-point results: CPU
capability (DEFAULT vs the best this CPU has), threads (1 vs 2), torch's deterministic mode,
tile size (default vs tiny tiles, so tile seams move) and device (CPU vs CUDA; the CUDA
configuration is skipped without a GPU but stays in the matrix). Each runs in a fresh
subprocess (cross_config_worker.py) that asserts what it runs on. The default suite codes two
small photo crops at two qualities and a 3-frame clip (video profile: I, P, P); `-m slow` codes
all 24 Kodak images at two qualities and a 32-frame clip (one group of pictures: its last frame
depends on all 31 before it).
"""

import itertools
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import torch

from conftest import photo_crop
from neco.codec.image_hp.payload import read_first_field
from neco.formats import read_container

WORKER = Path(__file__).with_name("cross_config_worker.py")
KODAK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kodak"
BEST = torch.backends.cpu.get_cpu_capability()
CONFIGS = {
    "default-1thread": dict(capability="DEFAULT", threads=1, deterministic=False, tile=None, device="cpu"),
    "best-2threads-deterministic-tiles8": dict(capability=BEST, threads=2, deterministic=True, tile=8,
                                               device="cpu"),
    "cuda": dict(capability=BEST, threads=2, deterministic=False, tile=None, device="cuda"),
}
AVAILABLE = [name for name, c in CONFIGS.items() if c["device"] == "cpu" or torch.cuda.is_available()]
PAIRS = [pytest.param(a, b, marks=pytest.mark.skipif(not {a, b} <= set(AVAILABLE), reason="no CUDA device"))
         for a, b in itertools.permutations(CONFIGS, 2)]


def _run(config: str, action: str, out_dir: Path, paths: list[Path]) -> dict[str, str]:
    cfg = CONFIGS[config]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]))
    env.pop("ATEN_CPU_CAPABILITY", None)
    if cfg["capability"] == "DEFAULT":
        env["ATEN_CPU_CAPABILITY"] = "default"
    out = subprocess.run([sys.executable, str(WORKER), json.dumps(cfg), action, str(out_dir), *map(str, paths)],
                         env=env, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _matrix(root: Path, images: dict[str, np.ndarray]) -> dict:
    """Encode the images in every available configuration, then decode every file in every
    configuration; returns {(enc, dec): [(file, enc symbols, dec symbols, pixels)]}."""
    src = root / "src"
    src.mkdir()
    for name, pixels in images.items():
        np.save(src / f"{name}.npy", pixels)
    encoded = {}
    for enc in AVAILABLE:
        (root / enc).mkdir()
        encoded[enc] = _run(enc, "encode", root / enc, sorted(src.glob("*.npy")))
    files = [root / enc / f for enc in AVAILABLE for f in sorted(encoded[enc])]
    # per-image table offsets (image_hp/offsets.py) shift table rows: some file must carry them
    assert any(read_first_field(read_container(f.read_bytes()).chunks[0].payload).table_offsets for f in files)
    results = {}
    for dec in AVAILABLE:
        out = root / f"decoded-{dec}"
        out.mkdir()
        decoded = _run(dec, "decode", out, files)
        for enc in AVAILABLE:
            results[enc, dec] = [(f, encoded[enc][f], decoded[f"{enc}/{f}"],
                                  np.load(out / f"{enc}--{f.removesuffix('.neco')}.npy"))
                                 for f in sorted(encoded[enc])]
    return results


def _check(results: dict, enc: str, dec: str) -> None:
    mismatches = [f for f, enc_sym, dec_sym, _ in results[enc, dec] if enc_sym != dec_sym]
    assert not mismatches, f"symbols differ for {mismatches}"
    for (f, _, _, a), (_, _, _, b) in zip(results[enc, enc], results[enc, dec]):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, f


def pan(count: int, size: int = 64) -> np.ndarray:
    """A clip (count, size, size, 3): a photo whose right half pans while the left half stays still."""
    base = photo_crop(size + 2 * count, size + count, index=6)
    frames = np.stack([base[:size, :size]] * count)
    for t in range(count):
        frames[t, :, size // 2:] = base[t:t + size, size // 2 + 2 * t:size + 2 * t]
    return frames


@pytest.fixture(scope="module")
def photo_matrix(tmp_path_factory):
    return _matrix(tmp_path_factory.mktemp("cross"), {"crop": photo_crop(200, 136, index=3),
                                                      "odd": photo_crop(97, 61, index=5), "clip": pan(3)})


@pytest.mark.parametrize("enc,dec", PAIRS)
def test_decode_across_configurations(photo_matrix, enc, dec):
    _check(photo_matrix, enc, dec)


@pytest.fixture(scope="module")
def kodak_matrix(tmp_path_factory):
    images = {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(KODAK.glob("*.png"))}
    assert len(images) == 24
    return _matrix(tmp_path_factory.mktemp("kodak"), images)


@pytest.mark.slow
@pytest.mark.parametrize("enc,dec", PAIRS)
def test_kodak_across_configurations(kodak_matrix, enc, dec):
    _check(kodak_matrix, enc, dec)


@pytest.fixture(scope="module")
def gop_matrix(tmp_path_factory):
    # the crop carries table offsets, which _matrix requires of some file
    return _matrix(tmp_path_factory.mktemp("gop"), {"clip32": pan(32), "crop": photo_crop(200, 136, index=3)})


@pytest.mark.slow
@pytest.mark.parametrize("enc,dec", PAIRS)
def test_a_32_frame_group_of_pictures_across_configurations(gop_matrix, enc, dec):
    """Every frame's symbols (the last one's depend on 31 P frames before it), pixels within 1."""
    _check(gop_matrix, enc, dec)
