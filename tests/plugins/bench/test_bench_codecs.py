"""Codecs and cache of `neco eval`: round trips, specs, settings that reproduce the references."""

import json

import numpy as np
import pytest

from neco.plugins.bench.cache import ResultCache, cache_key
from neco.plugins.bench.codecs import CODECS, AvifCodec, NecoCodec, make_codec, neco_code_digest, source_digest
from neco.plugins.bench.metrics import psnr_rgb

from conftest import SHARED, photo_crop

CLASSICAL = [name for name, codec in CODECS.items() if codec.kind == "image" and name != "neco"]


def usable(name: str):
    codec = make_codec(name)
    reason = codec.unavailable()
    if reason:
        pytest.skip(f"{name} unavailable here: {reason}")
    return codec


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_codec_round_trip(name):
    codec = usable(name)
    pixels = photo_crop(64, 48, index=1)
    low, high = (codec.default_qualities[i] for i in (0, -1))
    small, large = codec.encode(pixels, low), codec.encode(pixels, high)
    assert isinstance(small, bytes) and len(small) < len(large)
    decoded = codec.decode(large)
    assert decoded.shape == pixels.shape and decoded.dtype == np.uint8
    assert psnr_rgb(pixels, decoded) > 25
    assert codec.version()


@pytest.mark.parametrize("name", CLASSICAL)
def test_default_grid_and_settings_are_those_of_the_measured_references(name):
    path = SHARED / "reference" / "kodak" / f"{name}-measured.json"
    if not path.is_file():
        pytest.skip("no reference curves")
    reference = json.loads(path.read_text())
    codec = make_codec(name)
    assert list(codec.default_qualities) == reference["results"]["quality"]
    for key, value in codec.settings().items():
        assert f"{key}={value}" in reference["description"]


def test_spec_options_are_typed_and_named():
    codec = make_codec("AVIF:speed=6, subsampling=4:4:4")
    assert isinstance(codec, AvifCodec)
    assert codec.settings() == {"speed": 6, "subsampling": "4:4:4"}
    assert codec.label == "avif-speed6-subsampling444"
    assert make_codec("avif").label == "avif"


@pytest.mark.parametrize("spec, message", [
    ("mp3", "unknown codec 'mp3'"),
    ("webp:quality=4", "no option 'quality'"),
    ("webp:method", "not KEY=VALUE"),
])
def test_bad_specs_are_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        make_codec(spec)


def test_quality_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="0-100"):
        make_codec("jpeg").check_quality(101)


def test_neco_codec_names_its_model_and_weights():
    from neco.codec import registry
    codec = NecoCodec()
    assert codec.unavailable() is None
    assert codec.settings()["model"] == registry.DEFAULT_IMAGE_MODEL
    assert registry.digest(registry.DEFAULT_IMAGE_MODEL).hex()[:16] in codec.version()
    assert f"(code {neco_code_digest()})" in codec.version()
    assert "no model" in NecoCodec(model="no-such-model").unavailable()


def test_source_digest_changes_with_any_byte_or_name_of_the_code(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("not code")
    digest = source_digest([tmp_path])
    (tmp_path / "notes.txt").write_text("still not code")
    assert source_digest([tmp_path]) == digest
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert source_digest([tmp_path]) != digest
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    assert source_digest([tmp_path]) == digest
    (tmp_path / "sub" / "b.py").rename(tmp_path / "sub" / "c.py")
    assert source_digest([tmp_path]) != digest


def test_cache_key_covers_codec_version_settings_quality_and_content():
    base = ("avif", "libavif 1", {"speed": 4}, 50, "ab" * 32)
    key = cache_key(*base)
    for i, other in enumerate(("webp", "libavif 2", {"speed": 6}, 51, "cd" * 32)):
        changed = list(base)
        changed[i] = other
        assert cache_key(*changed) != key
    assert cache_key(*base) == key


def test_cache_keeps_rows_across_sessions(tmp_path):
    with ResultCache(tmp_path) as cache:
        cache.put("k", {"bpp": 0.5, "psnr-rgb": float("inf")})
    with ResultCache(tmp_path) as cache:
        assert cache.get("k") == {"bpp": 0.5, "psnr-rgb": float("inf")}
        assert cache.get("missing") is None and len(cache) == 1


def _bpp(codec, pixels, quality):
    return 8 * len(codec.encode(pixels, quality)) / (pixels.shape[0] * pixels.shape[1])


def test_jpeg_quality_search_finds_the_nearest_rate(monkeypatch):
    codec = usable("jpeg")
    pixels = photo_crop(176, 168, index=2)
    every = {q: _bpp(codec, pixels, q) for q in range(101)}  # brute force: the right answers
    encodes = []
    encode = type(codec).encode
    monkeypatch.setattr(type(codec), "encode", lambda self, p, q: encodes.append(q) or encode(self, p, q))
    for target in (0.6, 1.2, 2.5, 4.0):
        encodes.clear()
        found = codec.find_quality(pixels, target)
        nearest = min(every, key=lambda q: abs(np.log(every[q] / target)))
        assert abs(np.log(every[found] / target)) <= abs(np.log(every[nearest] / target)) + 1e-12
        assert abs(every[found] / target - 1) < 0.1
        assert len(encodes) <= 9  # bisection, not a sweep
    assert codec.find_quality(pixels, 1e-3) == 0 and codec.find_quality(pixels, 1e3) == 100  # ends


def test_webp_quality_search_lands_within_tolerance():
    codec = usable("webp")
    pixels = photo_crop(176, 168, index=0)
    for target in (0.5, 1.0, 2.0):
        achieved = _bpp(codec, pixels, codec.find_quality(pixels, target))
        assert abs(achieved / target - 1) < 0.12, (target, achieved)


def test_neco_quality_search_uses_its_rate_search():
    import neco
    pixels = photo_crop(64, 48, index=1)
    codec = NecoCodec()
    low, high = _bpp(codec, pixels, 10), _bpp(codec, pixels, 90)
    target = (low * high) ** 0.5
    quality = codec.find_quality(pixels, target)
    assert 10 < quality < 90
    # The quality read back re-encodes to the very bytes of neco's own search.
    assert codec.encode(pixels, quality) == neco.encode(pixels, bpp=target)


def test_cache_key_tells_target_bpps_from_qualities():
    base = ("jpeg", "v", {}, 0.5, "ab" * 32)
    assert cache_key(*base, target_bpp=True) != cache_key(*base)
    assert cache_key(*base, target_bpp=False) == cache_key(*base)
