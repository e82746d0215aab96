"""Round trips and deliberate errors through the public API (neco.encode / decode / info)."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

import neco
from neco.formats import read_container, write_container
from conftest import photo_crop, psnr


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 33), (64, 64), (65, 130), (3, 4000), (4000, 3)])
def test_round_trip_sizes(shape):
    h, w = shape
    x = photo_crop(max(w, 64), max(h, 64))[:h, :w] if max(h, w) < 1000 else \
        np.repeat(photo_crop(64, 64)[:1, :1], h * w, axis=0).reshape(h, w, 3)
    y = neco.decode_array(neco.encode(x, quality=90))
    assert y.shape == (h, w, 3) and y.dtype == np.uint8


def test_quality_changes_rate_and_distortion(photo):
    low, high = neco.encode(photo, quality=10), neco.encode(photo, quality=90)
    assert len(low) < len(high)
    assert psnr(photo, neco.decode_array(low)) < psnr(photo, neco.decode_array(high))


def test_reconstruction_is_faithful(photo):
    assert psnr(photo, neco.decode_array(neco.encode(photo, quality=100))) > 24


def test_encoding_is_deterministic(photo):
    assert neco.encode(photo, quality=40) == neco.encode(photo, quality=40)


def test_greyscale_comes_back_greyscale(photo):
    grey = Image.fromarray(photo).convert("L")
    out = neco.decode(neco.encode(grey))
    assert out.mode == "L" and out.size == grey.size
    assert neco.info(neco.encode(grey))["pixel_format"] == "GRAY8"


def test_rgba_drops_alpha_with_warning(photo):
    rgba = Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)]), "RGBA")
    with pytest.warns(UserWarning, match="alpha"):
        data = neco.encode(rgba)
    assert neco.decode(data).mode == "RGB"


def test_sixteen_bit_greyscale_is_reduced_to_eight_bits():
    im = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    assert im.mode == "I;16"
    with pytest.warns(UserWarning, match="reduced to 8 bits"):
        data = neco.encode(im)
    assert neco.decode(data).mode == "L"


def test_icc_and_exif_are_carried_through(photo):
    im = Image.fromarray(photo)
    exif = Image.Exif()
    exif[0x010E] = "a test image"  # ImageDescription
    im.info["icc_profile"] = b"fake icc profile bytes"
    im.info["exif"] = exif.tobytes()
    out = neco.decode(neco.encode(im))
    assert out.info["icc_profile"] == b"fake icc profile bytes"
    assert out.info["exif"] == exif.tobytes()


def test_info_describes_without_model(photo):
    data = neco.encode(photo, quality=50)
    info = neco.info(data)
    assert (info["width"], info["height"], info["kind"]) == (160, 96, "image")
    assert info["model_id"] == "image-hp-v1" and len(info["weights_digest"]) == 8
    assert info["bpp"] == pytest.approx(8 * len(data) / (160 * 96))


def test_bpp_target_is_reached(photo):
    data = neco.encode(photo, bpp=1.0)
    assert 8 * len(data) / (160 * 96) == pytest.approx(1.0, rel=0.1)


def test_unreachable_bpp_warns_and_gives_nearest(photo):
    with pytest.warns(UserWarning, match="not reachable"):
        data = neco.encode(photo, bpp=100.0)
    assert len(data) == len(neco.encode(photo, quality=100))


@pytest.mark.parametrize("kwargs", [{"quality": 101}, {"quality": -1}, {"quality": float("nan")},
                                    {"bpp": 0}, {"bpp": -1}, {"quality": 50, "bpp": 1.0}])
def test_invalid_arguments(photo, kwargs):
    with pytest.raises(neco.InvalidArgumentError):
        neco.encode(photo, **kwargs)


@pytest.mark.parametrize("bad", [np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), "not an image"])
def test_invalid_images(bad):
    with pytest.raises(neco.InvalidArgumentError):
        neco.encode(bad)


def test_unknown_model_is_refused(photo):
    with pytest.raises(neco.ModelError, match="unknown model"):
        neco.encode(photo, model="no-such-model")


def _rewrite(data: bytes, **header_changes) -> bytes:
    c = read_container(data)
    header = dataclasses.replace(c.header, **header_changes)
    return write_container(header, [(ch.type, ch.payload) for ch in c.chunks])


def test_other_weights_are_refused(photo):
    data = _rewrite(neco.encode(photo), weights_digest=b"\x00\x01\x02\x03")
    with pytest.raises(neco.ModelError, match="other weights"):
        neco.decode(data)


def test_unknown_model_in_file_is_refused(photo):
    with pytest.raises(neco.ModelError):
        neco.decode(_rewrite(neco.encode(photo), model_id="image-hp-v999"))


def test_lying_huge_dimensions_fail_fast(photo):
    data = neco.encode(photo)
    with pytest.raises(neco.NecoError):
        neco.decode(_rewrite(data, width=9000, height=9000))
    with pytest.raises(neco.NecoError):
        neco.decode(_rewrite(data, width=1 << 20, height=1 << 20))


def test_not_bytes_is_invalid_argument():
    with pytest.raises(neco.InvalidArgumentError):
        neco.decode("a string")


def test_pixel_limit_is_configurable(monkeypatch, photo):
    """neco.codec.session.MAX_PIXELS works like Pillow's Image.MAX_IMAGE_PIXELS, both ways."""
    from neco.codec import session as codec_api
    data = neco.encode(photo)
    monkeypatch.setattr(codec_api, "MAX_PIXELS", photo.shape[0] * photo.shape[1] - 1)
    with pytest.raises(neco.UnsupportedError, match="exceeds the limit"):
        neco.decode(data)
    with pytest.raises(neco.InvalidArgumentError, match="exceeds the limit"):
        neco.encode(photo)
    with pytest.raises(neco.InvalidArgumentError, match="exceeds the limit"):
        neco.encode(Image.fromarray(photo))
