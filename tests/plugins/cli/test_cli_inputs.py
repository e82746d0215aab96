"""Odd inputs and hostile conditions for ``neco encode`` / ``neco.encode`` (issue 6, item 4: no data lost).

Conversion tests check the exact pixels the codec would be given (`pil_image.to_rgb_array`, or the
CLI with `neco.encode` replaced by that conversion alone), so they need no model; a few
end-to-end tests run the real model on tiny images.
"""

import errno
import io
import os
from pathlib import Path
import stat
import struct
from types import SimpleNamespace
import warnings
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms, ImageOps, ImageSequence

import neco
from conftest import PSNR_FLOOR, psnr, smooth_image
from neco.plugins.adapters import pil_image
from neco.formats import MAGIC, ContainerReader
from neco.plugins.cli import cli

STUB = MAGIC + b"stub payload"
ORIENTATION, DESCRIPTION = 0x0112, 0x010E
# What a viewer shows for each EXIF orientation of stored pixels `a` (EXIF 2.3, tag 0x0112).
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),  # rotate 90 degrees clockwise to view
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.stderr, result.exception)
    assert result.stderr.startswith("neco: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def warning_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("neco: warning: ")]


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise(width: int, height: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_16bit(samples: np.ndarray) -> bytes:
    """A 16-bit PNG (greyscale for HxW, RGB for HxWx3): Pillow writes no 16-bit RGB, so by hand."""
    height, width = samples.shape[:2]
    colour_type = 2 if samples.ndim == 3 else 0
    rows = samples.reshape(height, -1).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + png_chunk(b"IEND", b""))


def messages(caught) -> list[str]:
    """The messages of recorded warnings, but for ResourceWarnings (files other tests left to the collector)."""
    return [str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)]


def converted(image):
    """(pixels, pixel format name, metadata, warning messages) of the codec's input conversion."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels, pixel_format, meta = pil_image.to_rgb_array(image)
    return pixels, pixel_format.name, meta, messages(caught)


@pytest.fixture
def recorded(monkeypatch):
    """`neco.encode` replaced by the real input conversion alone: records what the codec would get."""
    seen = {}

    def convert(image, **kwargs):
        seen["pixels"], seen["format"], seen["meta"] = pil_image.to_rgb_array(image)
        return STUB

    monkeypatch.setattr(neco, "encode", convert)
    return seen


@pytest.fixture
def recorded_frames(monkeypatch):
    """`neco.encode_frames` replaced by the conversion of each frame; records frames and rate."""
    seen = {}

    def convert(frames, stream, quality=None, bpp=None, *, frame_rate=None, num_frames=None, **kwargs):
        arrays = [pil_image.to_rgb_array(frame, single_frame=False)[0].copy() for frame in frames]
        seen.update(frames=arrays, rate=frame_rate, num_frames=num_frames)
        stream.write(STUB)
        height, width = arrays[0].shape[:2]
        return SimpleNamespace(frames=len(arrays), width=width, height=height, bytes_written=len(STUB), bpp=1.0,
                               seconds=0.0)

    monkeypatch.setattr(neco, "encode_frames", convert)
    return seen


# --- colour and sample conversions ------------------------------------------------------------

def test_cmyk_jpeg_without_profile_becomes_its_rgb(tmp_path, recorded):
    rgb = smooth_image(32, 24)
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=100, subsampling=0))
    with Image.open(path) as image:
        assert image.mode == "CMYK"
    result = run("encode", str(path), str(tmp_path / "out.neco"))
    assert result.exit_code == 0, result.stderr
    assert warning_lines(result) == []
    assert recorded["format"].name == "RGB8"
    assert np.abs(recorded["pixels"].astype(int) - rgb).max() <= 3  # JPEG at quality 100


@pytest.mark.parametrize("profile", [b"not an icc profile", "srgb"], ids=["garbage", "rgb-profile"])
def test_cmyk_with_unusable_profile_warns_and_does_not_carry_it(profile):
    if profile == "srgb":
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = smooth_image(16, 16)
    image = Image.open(io.BytesIO(encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=100,
                                          subsampling=0, icc_profile=profile)))
    assert image.info["icc_profile"] == profile
    pixels, pixel_format, meta, said = converted(image)
    assert pixel_format == "RGB8" and meta["icc_profile"] is None
    assert len(said) == 1 and "ICC profile is unusable" in said[0]
    assert np.abs(pixels.astype(int) - rgb).max() <= 3


def test_cmyk_with_cmyk_profile_goes_through_littlecms(monkeypatch):
    """A usable CMYK profile converts to sRGB through littlecms (Pillow ships no CMYK profile to test
    with, so the profile and transform are stand-ins that record the call)."""
    calls = []

    class CmykProfile:
        def __init__(self, source):
            self.profile = SimpleNamespace(xcolor_space="CMYK")

    def transform(image, source, target, outputMode):
        calls.append((image.mode, outputMode))
        return Image.new("RGB", image.size, (1, 2, 3))

    monkeypatch.setattr(ImageCms, "ImageCmsProfile", CmykProfile)
    monkeypatch.setattr(ImageCms, "profileToProfile", transform)
    image = Image.new("CMYK", (4, 4))
    image.info["icc_profile"] = b"a CMYK profile"
    pixels, pixel_format, meta, said = converted(image)
    assert calls == [("CMYK", "RGB")] and said == []
    assert (pixels == (1, 2, 3)).all() and meta["icc_profile"] is None


def test_sixteen_bit_rgb_png_warns_once_on_the_cli(tmp_path, recorded):
    samples = np.random.default_rng(1).integers(0, 65536, (12, 16, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(png_16bit(samples))
    result = run("encode", str(path), str(tmp_path / "out.neco"))
    assert result.exit_code == 0, result.stderr
    assert warning_lines(result) == ["neco: warning: 16-bit samples reduced to 8 bits (Pillow keeps the high byte "
                                     "of each)"]
    np.testing.assert_array_equal(recorded["pixels"], samples >> 8)


def test_sixteen_bit_rgb_png_warns_in_the_api():
    samples = np.full((4, 4, 3), 1000, np.uint16)
    pixels, pixel_format, _, said = converted(Image.open(io.BytesIO(png_16bit(samples))))
    assert pixel_format == "RGB8" and said == [pil_image.HIGH_BIT_DEPTH_WARNING]
    assert (pixels == 1000 >> 8).all()


def test_sixteen_bit_grey_png_rounds_and_warns_when_steps_are_lost(tmp_path, recorded):
    samples = np.arange(16 * 12, dtype=np.uint16).reshape(12, 16) * 331
    path = tmp_path / "grey16.png"
    path.write_bytes(png_16bit(samples))
    with Image.open(path) as image:
        assert image.mode == "I;16"
    result = run("encode", str(path), str(tmp_path / "out.neco"))
    assert result.exit_code == 0, result.stderr
    lines = warning_lines(result)
    assert len(lines) == 1 and "I;16 samples reduced to 8 bits" in lines[0]
    assert recorded["format"].name == "GRAY8"
    expected = np.round(samples / 257).astype(np.uint8)
    np.testing.assert_array_equal(recorded["pixels"], np.repeat(expected[:, :, None], 3, axis=2))


def test_sixteen_bit_grey_from_eight_bits_is_exact_and_silent():
    grey = noise(16, 8, channels=1)
    pixels, pixel_format, _, said = converted(Image.open(io.BytesIO(png_16bit(grey.astype(np.uint16) * 257))))
    assert pixel_format == "GRAY8" and said == []
    np.testing.assert_array_equal(pixels[:, :, 0], grey)


def test_palette_png_becomes_its_colours(tmp_path, recorded):
    rgb = noise(16, 12)
    palette_image = Image.fromarray(rgb).quantize(16)
    path = tmp_path / "palette.png"
    path.write_bytes(encoded(palette_image, "PNG"))
    result = run("encode", str(path), str(tmp_path / "out.neco"))
    assert result.exit_code == 0, result.stderr
    assert warning_lines(result) == []
    assert recorded["format"].name == "RGB8"
    np.testing.assert_array_equal(recorded["pixels"], np.asarray(palette_image.convert("RGB")))


def palette_with_transparent_index(used: bool) -> Image.Image:
    indices = np.zeros((8, 8), np.uint8)
    indices[2:4, 2:6] = 1 if used else 2
    image = Image.fromarray(indices, "P")
    image.putpalette([10, 20, 30, 200, 100, 50, 0, 255, 0] + [0] * 759)
    return Image.open(io.BytesIO(encoded(image, "PNG", transparency=1)))


def test_palette_png_with_used_transparency_warns():
    image = palette_with_transparent_index(used=True)
    assert image.info["transparency"] == 1
    pixels, pixel_format, _, said = converted(image)
    assert pixel_format == "RGB8"
    assert said == ["alpha channel dropped: neco codes colour only (8 of 64 pixels are not opaque; "
                    "they keep their stored colour)"]
    assert (pixels[2:4, 2:6] == (200, 100, 50)).all() and (pixels[0, 0] == (10, 20, 30)).all()


def test_palette_png_with_unused_transparency_is_silent():
    pixels, _, _, said = converted(palette_with_transparent_index(used=False))
    assert said == [] and (pixels[2, 2] == (0, 255, 0)).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_with_a_warning_only_when_not_opaque(mode):
    colour = noise(8, 4) if mode == "RGBA" else noise(8, 4, channels=1)
    alpha = np.full((4, 8), 255, np.uint8)
    stack = np.dstack([colour, alpha])
    opaque = Image.fromarray(stack, mode)
    pixels, pixel_format, _, said = converted(opaque)
    assert said == [] and pixel_format == ("RGB8" if mode == "RGBA" else "GRAY8")
    stack[0, :3, -1] = 0
    pixels, _, _, said = converted(Image.fromarray(stack, mode))
    assert len(said) == 1 and said[0].startswith("alpha channel dropped") and "3 of 32 pixels" in said[0]
    expected = colour if mode == "RGBA" else np.repeat(colour[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(pixels, expected)  # colour kept under transparent pixels


# --- EXIF orientation -------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_removed(orientation):
    stored = noise(6, 4)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[DESCRIPTION] = "kept"
    image = Image.open(io.BytesIO(encoded(Image.fromarray(stored), "PNG", exif=exif.tobytes())))
    pixels, _, meta, said = converted(image)
    assert said == []
    np.testing.assert_array_equal(pixels, UPRIGHT[orientation](stored))
    carried = Image.Exif()
    carried.load(meta["exif"])
    assert carried.get(DESCRIPTION) == "kept"
    assert carried.get(ORIENTATION, 1) == 1  # viewers will not turn it again


def test_exif_orientation_end_to_end(tmp_path):
    """A JPEG stored sideways (orientation 6) decodes upright, and its EXIF no longer says rotate."""
    stored = smooth_image(32, 24)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[DESCRIPTION] = "sideways"
    source, coded, back = tmp_path / "in.jpg", tmp_path / "out.neco", tmp_path / "back.png"
    source.write_bytes(encoded(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes()))
    assert run("encode", str(source), str(coded), "-q", "90").exit_code == 0
    result = run("decode", str(coded), str(back))
    assert result.exit_code == 0, result.stderr
    with Image.open(back) as image:
        decoded = np.asarray(image.convert("RGB"))
        tags = image.getexif()
    upright = UPRIGHT[6](stored)
    assert decoded.shape == upright.shape == (32, 24, 3)
    assert psnr(decoded, upright) > max(PSNR_FLOOR, psnr(decoded, UPRIGHT[8](stored)) + 5)
    assert tags.get(DESCRIPTION) == "sideways" and tags.get(ORIENTATION, 1) == 1

    result = run("decode", str(coded), str(back), "-y", "--reference", str(source))  # the reference is turned too
    assert result.exit_code == 0, result.stderr
    assert f"PSNR {psnr(decoded, np.asarray(ImageOps.exif_transpose(Image.open(source)))):.2f} dB" in result.stderr


# --- animated and multi-page images -----------------------------------------------------------

def frames_of(values, size=(16, 12)) -> list[Image.Image]:
    return [Image.fromarray(np.full((size[1], size[0], 3), v, np.uint8)) for v in values]


def test_api_encode_of_an_animation_codes_one_frame_and_says_so():
    gif = Image.open(io.BytesIO(encoded(frames_of([0, 128, 255])[0], "GIF", save_all=True,
                                        append_images=frames_of([0, 128, 255])[1:], duration=40)))
    gif.seek(1)
    with pytest.warns(UserWarning, match=r"image has 3 frames; coded frame 1 only \(neco.encode_frames"):
        data = neco.encode(gif, quality=90)
    assert neco.info(data)["kind"] == "image"
    assert abs(float(neco.decode_array(data).mean()) - 128) < 16


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_becomes_a_frame_sequence(tmp_path, recorded_frames, fmt):
    values = [0, 128, 255]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames = frames_of(values)
    extra = {"lossless": True} if fmt == "WEBP" else {}
    path.write_bytes(encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=40, **extra))
    result = run("encode", str(path), str(tmp_path / "out.neco"))
    assert result.exit_code == 0, result.stderr
    assert warning_lines(result) == []
    assert f"3 of 3 frame(s) 16x12 @ 25 fps ({fmt})" in result.stderr
    assert recorded_frames["rate"] == 25 and recorded_frames["num_frames"] == 3
    assert [int(f.mean()) for f in recorded_frames["frames"]] == values
    assert (tmp_path / "out.neco").read_bytes() == STUB


def test_animation_with_varying_durations_warns_and_averages(tmp_path, recorded_frames):
    frames = frames_of([0, 100, 200])
    path = tmp_path / "anim.gif"
    path.write_bytes(encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=[40, 40, 70]))
    result = run("encode", str(path), str(tmp_path / "out.neco"))
    assert result.exit_code == 0, result.stderr
    assert warning_lines(result) == ["neco: warning: frame durations vary (40 to 70 ms); coded at one constant rate "
                                     "from their mean (use --rate to choose it)"]
    assert recorded_frames["rate"] == 20  # mean 50 ms


def test_animation_frames_and_rate_options(tmp_path, recorded_frames):
    frames = frames_of([0, 50, 100, 150, 200])
    path = tmp_path / "anim.gif"
    path.write_bytes(encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40))
    result = run("encode", str(path), str(tmp_path / "out.neco"), "--frames", "1:3", "--rate", "10",
                 "--scale", "8x6")
    assert result.exit_code == 0, result.stderr
    assert recorded_frames["rate"] == 10 and recorded_frames["num_frames"] == 2
    assert [f.shape for f in recorded_frames["frames"]] == [(6, 8, 3)] * 2
    assert [int(f.mean()) for f in recorded_frames["frames"]] == [50, 100]


def test_multipage_tiff_of_mixed_sizes_is_refused_with_a_way_out(tmp_path, recorded_frames):
    path = tmp_path / "pages.tiff"
    pages = [*frames_of([10]), *frames_of([20], size=(8, 8))]
    path.write_bytes(encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    out = tmp_path / "out.neco"
    result = run("encode", str(path), str(out))
    assert_one_line_error(result)
    assert "frame 1 is 8x8 but frame 0 is 16x12" in result.stderr and "--frames" in result.stderr
    assert not out.exists() and leftovers(tmp_path) == []

    result = run("encode", str(path), str(out), "--frames", "1:2")
    assert result.exit_code == 0, result.stderr
    assert recorded_frames["rate"] is None  # TIFF pages have no durations
    assert [f.shape for f in recorded_frames["frames"]] == [(8, 8, 3)]


def test_animated_gif_round_trip(tmp_path):
    """Real model: an animated GIF becomes a 3-frame .neco and decodes back to an animated GIF."""
    values = [30, 130, 230]
    frames = frames_of(values)
    source, coded, back = tmp_path / "anim.gif", tmp_path / "anim.neco", tmp_path / "back.gif"
    source.write_bytes(encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40))
    result = run("encode", str(source), str(coded), "-q", "90")
    assert result.exit_code == 0, result.stderr
    details = neco.info(coded.read_bytes())
    assert (details["kind"], details["frames"], details["frame_rate"]) == ("video", 3, "25")

    result = run("decode", str(coded), str(back))
    assert result.exit_code == 0, result.stderr
    with Image.open(back) as image:
        assert image.n_frames == 3 and image.info["duration"] == 40
        means = [float(np.asarray(frame.convert("RGB")).mean()) for frame in ImageSequence.Iterator(image)]
    assert all(abs(m - v) < 20 for m, v in zip(means, values)), means

    result = run("decode", str(coded), str(tmp_path / "back.jpg"))
    assert_one_line_error(result)
    assert "holds 3 frames" in result.stderr and not (tmp_path / "back.jpg").exists()


def test_ctrl_c_during_animation_leaves_nothing(tmp_path, monkeypatch):
    frames = frames_of([0, 100, 200])
    path, out = tmp_path / "anim.gif", tmp_path / "out.neco"
    path.write_bytes(encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40))

    def interrupted(frames, stream, *args, **kwargs):
        next(iter(frames))
        stream.write(STUB)
        raise KeyboardInterrupt

    monkeypatch.setattr(neco, "encode_frames", interrupted)
    result = run("encode", str(path), str(out))
    assert_one_line_error(result, exit_code=130)
    assert not out.exists() and leftovers(tmp_path) == []


# --- unreadable inputs ------------------------------------------------------------------------

def test_empty_file(tmp_path, recorded):
    (tmp_path / "empty.png").write_bytes(b"")
    result = run("encode", str(tmp_path / "empty.png"), str(tmp_path / "out.neco"))
    assert_one_line_error(result)
    assert "empty.png: empty file" in result.stderr and not (tmp_path / "out.neco").exists()


def test_empty_stdin(tmp_path, recorded):
    result = run("encode", "-", str(tmp_path / "out.neco"), input=b"")
    assert_one_line_error(result)
    assert "<stdin>: empty input" in result.stderr and not (tmp_path / "out.neco").exists()


@pytest.mark.parametrize("data", [b"plain text, not an image\n" * 4, bytes(range(256)) * 4], ids=["text", "binary"])
def test_non_image_stdin(tmp_path, recorded, data):
    result = run("encode", "-", str(tmp_path / "out.neco"), input=data)
    assert_one_line_error(result)
    assert "not an image Pillow can read" in result.stderr


@pytest.mark.parametrize("keep", [0.5, 0.9], ids=["half", "most"])
def test_truncated_png(tmp_path, recorded, keep):
    data = encoded(Image.fromarray(noise(64, 48)), "PNG")
    path, out = tmp_path / "cut.png", tmp_path / "out.neco"
    path.write_bytes(data[: int(len(data) * keep)])
    out.write_bytes(b"precious")
    result = run("encode", str(path), str(out), "-y")
    assert_one_line_error(result)
    assert "cut.png: image file is truncated" in result.stderr
    assert out.read_bytes() == b"precious" and leftovers(tmp_path) == []
    assert "pixels" not in recorded


def test_api_truncated_png_is_corrupt_data():
    data = encoded(Image.fromarray(noise(64, 48)), "PNG")
    with pytest.raises(neco.CorruptDataError, match="cannot read the image: image file is truncated"):
        neco.encode(Image.open(io.BytesIO(data[: len(data) // 2])))


@pytest.mark.parametrize("command", ["encode", "decode", "info"])
def test_directory_as_input(tmp_path, command):
    folder = tmp_path / "folder"
    folder.mkdir()
    extra = [] if command == "info" else [str(tmp_path / "out.png")]
    result = run(command, str(folder), *extra)
    assert_one_line_error(result)
    assert "folder: is a directory" in result.stderr.lower()


def test_missing_input(tmp_path, recorded):
    result = run("encode", str(tmp_path / "missing.png"), str(tmp_path / "out.neco"))
    assert_one_line_error(result)
    assert "missing.png: No such file or directory" in result.stderr


@pytest.mark.parametrize("size", [(20000, 20000), (10000, 10000)], ids=["over-twice-the-limit", "over-the-limit"])
def test_decompression_bomb_is_one_line(tmp_path, recorded, size):
    """Pillow raises beyond twice MAX_IMAGE_PIXELS and only warns between once and twice: both refuse."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(*size))
    result = run("encode", str(path), str(tmp_path / "out.neco"))
    assert_one_line_error(result)
    assert "bomb.png: Image size" in result.stderr and "decompression bomb" in result.stderr
    assert "pixels" not in recorded


def test_decompression_bomb_on_stdin(tmp_path, recorded):
    result = run("encode", "-", str(tmp_path / "out.neco"), input=png_claiming(10000, 10000))
    assert_one_line_error(result)
    assert "<stdin>: Image size" in result.stderr


def test_api_refuses_huge_image_before_loading_it(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own check off: neco's must hold
    image = Image.open(io.BytesIO(png_claiming(10000, 10000)))
    with pytest.raises(neco.InvalidArgumentError, match="10000x10000 pixels exceeds the limit"):
        neco.encode(image)
    assert image.tile  # never loaded


# --- outputs ----------------------------------------------------------------------------------

@pytest.fixture
def png_file(tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(encoded(Image.fromarray(smooth_image(16, 12)), "PNG"))
    return path


def test_output_in_missing_directory(tmp_path, png_file, recorded):
    out = tmp_path / "nowhere" / "out.neco"
    result = run("encode", str(png_file), str(out))
    assert_one_line_error(result)
    assert result.stderr == f"neco: error: {out}: No such file or directory\n"  # OUT, as given
    assert "pixels" not in recorded  # refused before any work


def test_output_is_a_directory(tmp_path, png_file, recorded):
    result = run("encode", str(png_file), str(tmp_path), "-y")
    assert_one_line_error(result)
    assert result.stderr == f"neco: error: {tmp_path}: Is a directory\n"


def test_existing_output_refused_then_replaced_atomically(tmp_path, png_file, recorded, monkeypatch):
    out = tmp_path / "out.neco"
    out.write_bytes(b"precious")
    result = run("encode", str(png_file), str(out))
    assert_one_line_error(result)
    assert "already exists; use -y/--force" in result.stderr and out.read_bytes() == b"precious"

    renames = []
    real_replace = os.replace

    def spy(source, target):
        renames.append((os.path.dirname(source), Path(source).read_bytes(), out.read_bytes()))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    result = run("encode", str(png_file), str(out), "-y")
    assert result.exit_code == 0, result.stderr
    # One rename, from a complete temporary file in the same directory, while OUT was still intact.
    assert renames == [(str(tmp_path), STUB, b"precious")]
    assert out.read_bytes() == STUB and leftovers(tmp_path) == []


def test_disk_full_while_writing(tmp_path, png_file, recorded, monkeypatch):
    out = tmp_path / "out.neco"
    out.write_bytes(b"precious")
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fd, *args, **kwargs):
            self._file = real_fdopen(fd, *args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", FullDisk)
    result = run("encode", str(png_file), str(out), "-y")
    assert_one_line_error(result)
    assert result.stderr == f"neco: error: {out}: {os.strerror(errno.ENOSPC)}\n"  # OUT, not its temporary file
    assert out.read_bytes() == b"precious" and leftovers(tmp_path) == []


def is_char_device(path: str) -> bool:
    return os.path.exists(path) and stat.S_ISCHR(os.stat(path).st_mode)


@pytest.mark.skipif(not is_char_device("/dev/full"), reason="no /dev/full here")
def test_dev_full(png_file, recorded):
    """A device is written directly (never renamed over): /dev/full gives ENOSPC, in one line."""
    result = run("encode", str(png_file), "/dev/full")
    assert_one_line_error(result)
    assert os.strerror(errno.ENOSPC) in result.stderr
    assert is_char_device("/dev/full")


@pytest.mark.skipif(not is_char_device("/dev/null"), reason="no /dev/null here")
def test_dev_null_needs_no_force(png_file, recorded):
    result = run("encode", str(png_file), "/dev/null")
    assert result.exit_code == 0, result.stderr
    assert is_char_device("/dev/null")


@pytest.mark.skipif(not is_char_device("/dev/null"), reason="no /dev/null here")
def test_frame_sequence_refuses_a_device(tmp_path, recorded_frames):
    frames = frames_of([0, 100])
    path = tmp_path / "anim.gif"
    path.write_bytes(encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    result = run("encode", str(path), "/dev/null", "-y")
    assert_one_line_error(result)
    assert "regular file" in result.stderr and "frames" not in recorded_frames
    assert is_char_device("/dev/null")


# --- strict and lenient decode (issue 6, item 5) ----------------------------------------------

@pytest.fixture(scope="module")
def clip() -> tuple[bytes, list]:
    """A real 3-frame .neco of intra frames (frame means about 30, 130, 230) and its chunks (the
    video profile's P frames after a loss: tests/codec/video_hp)."""
    buffer = io.BytesIO()
    neco.encode_frames([np.full((12, 16, 3), v, np.uint8) for v in (30, 130, 230)], buffer, quality=90,
                       frame_rate=25, profile="image")
    data = buffer.getvalue()
    return data, list(ContainerReader(io.BytesIO(data)))


def flipped(data: bytes, position: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 0xFF
    return bytes(damaged)


def lenient_means(data: bytes) -> tuple[list[int], list[str], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with neco.open(data, strict=False) as reader:
            means = [round(float(pixels.mean()), -1) for pixels in reader]
    return means, reader.lost, messages(caught)


def test_lenient_reader_of_an_intact_stream_loses_nothing(clip):
    data, _ = clip
    assert lenient_means(data) == ([30, 130, 230], [], [])


def test_lenient_reader_skips_a_damaged_frame(clip):
    data, chunks = clip
    frame = chunks[1]
    means, lost, said = lenient_means(flipped(data, frame.offset + 10))
    assert means == [30, 230]
    size = len(data[frame.offset:chunks[2].offset])
    assert lost == [f"frame 1 lost: its chunk at offset {frame.offset} ({size} bytes) fails its check"]
    assert said == [f"lenient decode: {lost[0]}"]


def test_lenient_reader_stops_at_truncation(clip):
    data, chunks = clip
    means, lost, _ = lenient_means(data[: chunks[2].offset + 5])
    assert means == [30, 130]
    assert lost == [f"stream truncated inside the chunk at offset {chunks[2].offset}, after 2 frame(s): "
                    f"any later frame is lost"]


def test_lenient_reader_gives_up_after_a_damaged_length(clip):
    data, chunks = clip
    means, lost, _ = lenient_means(flipped(data, chunks[1].offset + 1))  # first byte of the length varint
    assert means == [30]
    # where the damaged length points (it depends on the payload sizes, so on the weights)
    # decides the reports: past the end of the stream, one truncation report; into the next
    # chunk, frame 1 is reported lost, then the unreadable rest. Either way nothing after
    # frame 0 is decoded and the last report says so.
    if len(lost) == 1:
        assert lost[0].startswith("stream truncated inside the chunk") and "any later frame is lost" in lost[0]
    else:
        assert len(lost) == 2 and lost[0].startswith("frame 1 lost")
        assert "the rest of the stream is lost" in lost[1] or "any later frame is lost" in lost[1]


def test_lenient_reader_needs_the_header(clip):
    data, _ = clip
    with pytest.raises(neco.CorruptDataError, match="CRC mismatch in header"):
        neco.open(flipped(data, 12), strict=False)


def test_strict_decode_names_the_damaged_chunk(tmp_path, clip):
    data, chunks = clip
    path = tmp_path / "bad.neco"
    path.write_bytes(flipped(data, chunks[1].offset + 10))
    result = run("decode", str(path), str(tmp_path / "out.y4m"))
    assert_one_line_error(result)
    assert f"CRC mismatch in FRAME chunk at offset {chunks[1].offset}" in result.stderr
    assert not (tmp_path / "out.y4m").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("out", ["out.y4m", "out.gif"])
def test_cli_lenient_decode_recovers_and_reports(tmp_path, clip, out):
    data, chunks = clip
    path = tmp_path / "bad.neco"
    path.write_bytes(flipped(data, chunks[1].offset + 10))
    result = run("decode", str(path), str(tmp_path / out), "--lenient")
    assert result.exit_code == 0, result.stderr
    assert warning_lines(result) == [f"neco: warning: lenient decode: frame 1 lost: its chunk at offset "
                                     f"{chunks[1].offset} ({chunks[2].offset - chunks[1].offset} bytes) fails "
                                     f"its check"]
    if out.endswith(".gif"):
        with Image.open(tmp_path / out) as image:
            assert image.n_frames == 2
    else:
        assert (tmp_path / out).read_bytes().count(b"FRAME\n") == 2


def test_cli_lenient_decode_with_nothing_left_is_an_error(tmp_path, clip):
    data, chunks = clip
    path = tmp_path / "cut.neco"
    path.write_bytes(data[: chunks[0].offset + 20])
    result = run("decode", str(path), str(tmp_path / "out.png"), "--lenient")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == f"neco: error: {path}: no frame could be decoded"
    assert not (tmp_path / "out.png").exists()
