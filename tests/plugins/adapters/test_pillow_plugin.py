"""The Pillow plugin: ``Image.open`` / ``Image.save`` for ``.neco``."""

import io

import numpy as np
import pytest
from PIL import Image, ImageSequence, UnidentifiedImageError

import neco
from conftest import PSNR_FLOOR, photo_crop, psnr, smooth_image
from neco.codec import session
from neco.formats import MAGIC
from neco.plugins.adapters import pillow_plugin

WIDTH, HEIGHT = 64, 48


@pytest.fixture(autouse=True, scope="module")
def registered():
    pillow_plugin.register()  # import neco does it too; registering twice is harmless


@pytest.fixture(scope="module")
def neco_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(smooth_image()).save(buffer, format="NECO", quality=80)
    return buffer.getvalue()


def test_registered():
    assert Image.registered_extensions()[".neco"] == "NECO"
    assert Image.MIME["NECO"] == "image/x-neco"
    assert "NECO" in Image.OPEN and "NECO" in Image.SAVE


def test_accept_checks_magic_only():
    assert pillow_plugin._accept(MAGIC + b"\0" * 16)
    assert not pillow_plugin._accept(b"\x89PNG\r\n\x1a\n")
    assert not pillow_plugin._accept(b"")


def test_save_open_round_trip(tmp_path):
    original = smooth_image()
    path = tmp_path / "x.neco"
    Image.fromarray(original).save(path, quality=80)
    assert path.read_bytes().startswith(MAGIC)
    with Image.open(path) as image:
        assert image.format == "NECO"
        assert image.size == (WIDTH, HEIGHT) and image.mode == "RGB"
        assert image.get_format_mimetype() == "image/x-neco"
        pixels = np.asarray(image)
    assert pixels.shape == original.shape
    assert psnr(pixels, original) > PSNR_FLOOR


def test_open_from_bytes_reads_header_only(neco_bytes, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("Image.open must not run the model")

    monkeypatch.setattr(session, "decode_array", no_model)
    image = Image.open(io.BytesIO(neco_bytes))
    assert (image.format, image.size, image.mode) == ("NECO", (WIDTH, HEIGHT), "RGB")


def test_greyscale_round_trip():
    grey = smooth_image()[:, :, 1]
    buffer = io.BytesIO()
    Image.fromarray(grey, "L").save(buffer, format="NECO")
    buffer.seek(0)
    with Image.open(buffer) as image:
        assert image.mode == "L" and image.size == (WIDTH, HEIGHT)
        assert psnr(np.asarray(image), grey) > PSNR_FLOOR


def test_quality_and_bpp_together_is_value_error(tmp_path):
    with pytest.raises(ValueError):
        Image.fromarray(smooth_image()).save(tmp_path / "x.neco", quality=50, bpp=0.5)
    assert not (tmp_path / "x.neco").exists()


def test_not_neco_is_unidentified(tmp_path):
    path = tmp_path / "x.neco"
    path.write_bytes(b"definitely not an image" * 4)
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(MAGIC) + 3],
        lambda d: d[: len(d) // 2],
        lambda d: d[:-3] + bytes(b ^ 0xFF for b in d[-3:]),
        lambda d: MAGIC + b"\xff" * 40,
    ],
    ids=["header-truncated", "payload-truncated", "crc-broken", "magic-then-junk"],
)
def test_corrupt_file_raises_pillow_errors(tmp_path, neco_bytes, damage):
    path = tmp_path / "bad.neco"
    path.write_bytes(damage(neco_bytes))
    with pytest.raises((SyntaxError, OSError)):
        with Image.open(path) as image:
            image.load()


def test_explicit_registration_entry_point():
    import neco.plugins
    neco.plugins.register()
    assert Image.registered_extensions()[".neco"] == "NECO"


def _panning_clip(count: int = 6, width: int = 64, height: int = 64) -> list[np.ndarray]:
    """A photo crop shifted by one pixel down and two right every other frame (the P frames' work)."""
    base = photo_crop(width + 2 * count, height + count, index=1)
    return [base[t // 2:t // 2 + height, t:t + width].copy() for t in range(count)]


@pytest.fixture(scope="module")
def ip_clip(tmp_path_factory):
    """A six-frame video-profile clip, key frames 0 and 4 (I P P P I P), and its sequential decode."""
    path = tmp_path_factory.mktemp("video") / "clip.neco"
    result = neco.encode_frames(_panning_clip(), path, quality=50, gop=4, frame_rate=25)
    assert result.profile == "video" and result.key_frames == 2
    return path, list(neco.open(path))


def test_video_seek_is_frame_accurate(ip_clip, monkeypatch):
    path, sequential = ip_clip
    advanced = []   # frames decoded only as far as their latents (the way from a key frame)
    original = session.StreamDecoder.advance
    monkeypatch.setattr(session.StreamDecoder, "advance", lambda self, payload: (advanced.append(payload),
                                                                                  original(self, payload))[1])
    with Image.open(path) as image:
        assert (image.n_frames, image.is_animated, image.tell()) == (6, True, 0)
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
        assert advanced == []                     # sequential reading goes on from the frame before
        for index, walked in ((3, 3), (5, 1), (2, 2), (1, 1), (4, 0), (5, 0), (0, 0)):
            advanced.clear()
            image.seek(index)
            assert image.tell() == index and np.array_equal(np.asarray(image), sequential[index]), index
            assert len(advanced) == walked, index  # from the key frame at or before it, or the frame held
    assert [np.array_equal(a, b) for a, b in zip(frames, sequential)] == [True] * 6


@pytest.mark.parametrize("index", [6, 100, -1])
def test_video_seek_outside_is_eoferror(ip_clip, index):
    with Image.open(ip_clip[0]) as image:
        image.seek(2)
        with pytest.raises(EOFError):
            image.seek(index)
        assert image.tell() == 2 and np.array_equal(np.asarray(image), ip_clip[1][2])
