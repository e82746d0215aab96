"""Y4M and raw frame pipes: parsing, colour conversion against ffmpeg, one test per bad input."""

import io
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import psnr, smooth_image
from neco.formats import CorruptDataError, InvalidArgumentError, NecoError, UnsupportedError
from neco.plugins.adapters import y4m

W, H = 64, 48
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (.ci/run installs it with apt-get)")


def y4m_bytes(frames, chroma="420", rate=None) -> bytes:
    out = io.BytesIO()
    writer = y4m.Y4MWriter(out, frames[0].shape[1], frames[0].shape[0], rate, chroma)
    for frame in frames:
        writer.write(frame)
    return out.getvalue()


def read_all(data: bytes) -> list[np.ndarray]:
    return list(y4m.Y4MReader(io.BytesIO(data)))


def test_header_fields():
    header = y4m.parse_header(b"YUV4MPEG2 W64 H48 F30000:1001 It A1:1 C420mpeg2 XYSCSS=420MPEG2 XCOLORRANGE=FULL")
    assert (header.width, header.height, header.chroma, header.full_range) == (64, 48, "420mpeg2", True)
    assert header.frame_rate.numerator == 30000 and header.frame_rate.denominator == 1001
    assert header.frame_bytes == 64 * 48 * 3 // 2
    bare = y4m.parse_header(b"YUV4MPEG2 W3 H2 C444")
    assert bare.frame_rate is None and not bare.full_range and bare.frame_bytes == 18
    assert y4m.parse_header(b"YUV4MPEG2 W4 H2 Cmono").frame_bytes == 8


@pytest.mark.parametrize("chroma,floor", [("444", 45), ("420", 30)])
def test_round_trip(chroma, floor):
    frames = [smooth_image(W, H), smooth_image(W, H)[::-1].copy()]
    data = y4m_bytes(frames, chroma, rate=None)
    assert data.startswith(b"YUV4MPEG2 W64 H48 F25:1 ")
    back = read_all(data)
    assert len(back) == 2
    assert all(psnr(a, b) > floor for a, b in zip(frames, back))


def test_mono_and_full_range():
    grey = np.arange(W * H, dtype=np.uint32).reshape(H, W).astype(np.uint8)
    data = b"YUV4MPEG2 W64 H48 F5:1 Cmono XCOLORRANGE=FULL\nFRAME\n" + grey.tobytes()
    (rgb,) = read_all(data)
    assert np.array_equal(rgb[:, :, 0], grey) and np.array_equal(rgb[:, :, 2], grey)


def test_frame_parameters_are_ignored():
    plane = bytes(W * H * 3)
    data = b"YUV4MPEG2 W64 H48 C444\nFRAME Ixyz\n" + plane
    assert len(read_all(data)) == 1


@needs_ffmpeg
def test_colour_matches_ffmpeg(tmp_path):
    """ffmpeg's yuv4mpegpipe of a PNG decodes to that PNG, and ours decodes back through ffmpeg."""
    original = smooth_image(W, H)
    Image.fromarray(original).save(tmp_path / "in.png")
    for pix_fmt, floor in (("yuv444p", 40), ("yuv420p", 30)):
        piped = subprocess.run([FFMPEG, "-v", "error", "-i", str(tmp_path / "in.png"), "-pix_fmt", pix_fmt,
                                "-f", "yuv4mpegpipe", "-"], check=True, capture_output=True).stdout
        (ours,) = read_all(piped)
        assert psnr(ours, original) > floor, pix_fmt
    back = subprocess.run([FFMPEG, "-v", "error", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          input=y4m_bytes([original], "444"), check=True, capture_output=True).stdout
    assert psnr(np.frombuffer(back, np.uint8).reshape(H, W, 3), original) > 40


@pytest.mark.parametrize(
    "data,error",
    [
        (b"", CorruptDataError),
        (b"YUV4MPEG", CorruptDataError),
        (b"YUV4MPEG2 W64 H48", CorruptDataError),                    # header without end of line
        (b"YUV4MPEG2 W64 H48 " + b"X" * 5000 + b"\n", CorruptDataError),
        (b"YUV4MPEG2 H48 C444\n", CorruptDataError),                  # no width
        (b"YUV4MPEG2 W0 H48\n", CorruptDataError),
        (b"YUV4MPEG2 W64 H48 F30\n", CorruptDataError),
        (b"YUV4MPEG2 W64 H48 Q1\n", CorruptDataError),
        (b"YUV4MPEG2 W64 H48 C420p10\n", UnsupportedError),
        (b"YUV4MPEG2 W63 H48 C420jpeg\n", UnsupportedError),         # odd size in 4:2:0
        (b"YUV4MPEG3 W64 H48\n", CorruptDataError),
        (b"YUV4MPEG2 W4 H2 C444\nFRAME\n" + bytes(10), CorruptDataError),       # truncated frame
        (b"YUV4MPEG2 W4 H2 C444\nFRAME\n" + bytes(24) + b"FRA", CorruptDataError),  # truncated tag
        (b"YUV4MPEG2 W4 H2 C444\nFRAMEX\n" + bytes(24), CorruptDataError),
        (b"YUV4MPEG2 W4 H2 C444\nGARBAGE" + bytes(24), CorruptDataError),
    ],
)
def test_bad_y4m_is_neco_error(data, error):
    with pytest.raises(error):
        read_all(data)


def test_raw_rgb24_and_yuv420p():
    frames = [smooth_image(W, H), smooth_image(W, H)[:, ::-1].copy()]
    raw = b"".join(f.tobytes() for f in frames)
    back = list(y4m.RawReader(io.BytesIO(raw), W, H, "rgb24"))
    assert len(back) == 2 and all(np.array_equal(a, b) for a, b in zip(frames, back))
    planar = b"".join(b"".join(p.tobytes() for p in y4m.rgb_to_yuv(f, "420")) for f in frames)
    back = list(y4m.RawReader(io.BytesIO(planar), W, H, "yuv420p"))
    assert len(back) == 2 and all(psnr(a, b) > 30 for a, b in zip(frames, back))


@pytest.mark.parametrize(
    "data,size,pix_fmt,error",
    [
        (bytes(W * H * 3 + 5), (W, H), "rgb24", CorruptDataError),      # not a whole number of frames
        (b"", (W, H), "rgb24", CorruptDataError),
        (bytes(63 * 48 * 3 // 2), (63, 48), "yuv420p", InvalidArgumentError),
        (bytes(10), (0, 48), "rgb24", InvalidArgumentError),
        (bytes(10), (W, H), "bgr0", InvalidArgumentError),
    ],
    ids=["wrong-size", "empty", "odd-yuv420p", "zero-width", "unknown-pix-fmt"],
)
def test_bad_raw_is_neco_error(data, size, pix_fmt, error):
    with pytest.raises(error):
        list(y4m.RawReader(io.BytesIO(data), *size, pix_fmt))


def test_writer_checks():
    with pytest.raises(InvalidArgumentError):
        y4m.Y4MWriter(io.BytesIO(), 63, 48, chroma="420")
    writer = y4m.Y4MWriter(io.BytesIO(), 63, 48, chroma="444")
    with pytest.raises(NecoError):
        writer.write(smooth_image(W, H))
