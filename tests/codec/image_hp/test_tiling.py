"""Tiled analysis/synthesis (bounded memory on large images) joins without seams."""

import numpy as np
import pytest

import neco
from neco.codec.image_hp import decoder
from conftest import photo_crop


def test_tiled_decode_matches_whole_image(monkeypatch):
    x = photo_crop(200, 136, index=5)
    data = neco.encode(x, quality=60)
    whole = neco.decode_array(data)
    monkeypatch.setattr(decoder, "TILE_LATENTS", 5)  # 5x5-latent tiles: many seams
    tiled = neco.decode_array(data)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    retiled = neco.encode(x, quality=60)  # tiled analysis: same latents up to float noise
    assert abs(len(retiled) - len(data)) <= 0.02 * len(data)


@pytest.mark.slow
def test_large_image_round_trip():
    """A 24-megapixel image codes in bounded tiles (run with -m slow)."""
    tile = photo_crop(1000, 800, index=7)
    x = np.tile(tile, (6, 6, 1))  # 6000 x 4800
    y = neco.decode_array(neco.encode(x, quality=30))
    assert y.shape == x.shape
