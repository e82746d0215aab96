"""Frame sequences through the real programs: ffmpeg pipes, PyAV files, Pillow multi-frame.

The pipelines run the installed ``neco`` script with the Debian ffmpeg (``.ci/run`` installs it
when missing); without ffmpeg they skip with a message. Frames are tiny and few.
"""

import io
import os
from pathlib import Path
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageSequence

import neco
from conftest import PSNR_FLOOR, SHARED, psnr, smooth_image
from neco.formats import Kind
from neco.plugins.adapters import y4m
from neco.plugins.cli import cli

W, H = 64, 48
FFMPEG = shutil.which("ffmpeg")
NECO = shutil.which("neco") or str(Path(sys.executable).with_name("neco"))
VTEST = SHARED / "data" / "video" / "vtest.avi"
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (.ci/run installs it with apt-get; "
                                                         "apt was unavailable here)")


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.stderr, result.exception)
    assert result.stderr.startswith("neco: error: ") and result.stderr.count("\n") == 1, result.stderr


def pipeline(producer: list[str], consumer: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """producer | consumer, without a shell; fails the test if the producer fails."""
    first = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    second = subprocess.run(consumer, stdin=first.stdout, capture_output=True, cwd=cwd, timeout=120)
    first.stdout.close()
    assert first.wait(timeout=60) == 0, first.stderr.read().decode()
    return second


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.neco"
    neco.encode_frames([smooth_image(W, H), smooth_image(W, H)[:, ::-1]], path, quality=40, frame_rate=25)
    return path


@pytest.fixture(scope="module")
def piped(tmp_path_factory):
    """ffmpeg -f yuv4mpegpipe - | neco encode - clip.neco  (3 frames at 10 fps)."""
    cwd = tmp_path_factory.mktemp("pipes")
    Image.fromarray(smooth_image(W, H)).save(cwd / "in.png")
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed (.ci/run installs it with apt-get; apt was unavailable here)")
    result = pipeline([FFMPEG, "-v", "error", "-framerate", "10", "-loop", "1", "-i", "in.png", "-frames:v", "3",
                       "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"],
                      [NECO, "encode", "-", "clip.neco", "-q", "60"], cwd)
    assert result.returncode == 0, result.stderr.decode()
    assert b"3 frame(s) 64x48 @ 10 fps (y4m, 1 key frame(s))" in result.stderr
    return cwd


@needs_ffmpeg
def test_ffmpeg_into_neco(piped):
    with neco.open(piped / "clip.neco") as reader:
        assert reader.header.kind == Kind.VIDEO and str(reader.header.frame_rate) == "10"
        frames = list(reader)
    assert len(frames) == 3 and all(psnr(f, smooth_image(W, H)) > PSNR_FLOOR for f in frames)


@needs_ffmpeg
def test_neco_into_ffmpeg(piped):
    result = pipeline([NECO, "decode", "clip.neco", "-f", "y4m", "-"], [FFMPEG, "-v", "error", "-i", "-", "out.mp4"],
                      piped)
    assert result.returncode == 0, result.stderr.decode()
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", "out.mp4", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True, cwd=piped).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)
    assert len(frames) == 3 and all(psnr(f, smooth_image(W, H)) > PSNR_FLOOR for f in frames)


def test_raw_stdin_to_file_and_y4m_stdout(tmp_path):
    frames = [smooth_image(W, H), smooth_image(W, H)[::-1]]
    out = tmp_path / "raw.neco"
    result = run("encode", "-", str(out), "--input-format", "rawvideo", "--size", "64x48", "--pix-fmt", "rgb24",
                 "--rate", "30000/1001", "-q", "40", input=b"".join(f.tobytes() for f in frames))
    assert result.exit_code == 0, result.stderr
    info = neco.info(out.read_bytes())
    assert (info["kind"], info["frames"], info["frame_rate"]) == ("video", 2, "30000/1001")
    result = run("decode", str(out), "-f", "y4m", "-")
    assert result.exit_code == 0, result.stderr
    reader = y4m.Y4MReader(io.BytesIO(result.stdout_bytes))
    assert reader.frame_rate == neco.open(out).header.frame_rate
    assert [psnr(a, b) > PSNR_FLOOR for a, b in zip(reader, frames)] == [True, True]


def test_still_image_decodes_to_y4m(tmp_path):
    path = tmp_path / "still.neco"
    path.write_bytes(neco.encode(smooth_image(W, H), quality=40))
    result = run("decode", str(path), "-f", "y4m", "-")
    assert result.exit_code == 0, result.stderr
    assert len(list(y4m.Y4MReader(io.BytesIO(result.stdout_bytes)))) == 1


@pytest.mark.parametrize(
    "args,data,words",
    [
        ((), b"YUV4MPEG2 W4 H2 C444\nFRAME\n" + bytes(7), "truncated y4m frame 1"),
        ((), b"YUV4MPEG2 W4 H2 C411\n", "not supported"),
        ((), b"YUV4MPEG2 W4 H2 C444 Zoo\n", "unknown y4m header field"),
        (("--input-format", "rawvideo", "--size", "4x2", "--pix-fmt", "rgb24"), bytes(30), "wrong --size"),
        (("--input-format", "rawvideo", "--size", "5x2", "--pix-fmt", "yuv420p"), bytes(15), "even width"),
    ],
    ids=["truncated-y4m", "unsupported-chroma", "bad-header", "raw-wrong-size", "raw-odd-yuv420p"],
)
def test_bad_pipe_input_is_one_line_error(tmp_path, args, data, words):
    out = tmp_path / "out.neco"
    result = run("encode", "-", str(out), *args, input=data)
    assert_one_line_error(result)
    assert words in result.stderr
    assert os.listdir(tmp_path) == []  # no output, no temporary file


def test_raw_options_without_rawvideo_are_usage_errors(tmp_path):
    assert run("encode", "-", str(tmp_path / "o.neco"), "--size", "4x2", input=b"x").exit_code == 2
    assert run("encode", "-", str(tmp_path / "o.neco"), "--input-format", "rawvideo", input=b"x").exit_code == 2


def test_video_file_to_image_format_is_clear(tmp_path, tiny_video):
    result = run("decode", str(tiny_video), str(tmp_path / "x.png"))
    assert_one_line_error(result)
    assert "-f y4m" in result.stderr


def test_pillow_reads_video_frame_by_frame(tiny_video):
    expected = list(neco.open(tiny_video))
    with Image.open(tiny_video) as image:
        assert (image.format, image.size, image.mode) == ("NECO", (W, H), "RGB")
        assert image.n_frames == 2 and image.is_animated and image.tell() == 0
        assert image.info["duration"] == 40.0
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
        image.seek(1)
        assert image.tell() == 1 and np.array_equal(np.asarray(image), expected[1])
        with pytest.raises(EOFError):
            image.seek(2)
    assert [np.array_equal(a, b) for a, b in zip(frames, expected)] == [True, True]


def test_pillow_damaged_video_frame_is_oserror(tmp_path, tiny_video):
    data = bytearray(tiny_video.read_bytes())
    data[-40] ^= 0xFF  # inside the last FRAME (its CRC fails)
    path = tmp_path / "bad.neco"
    path.write_bytes(bytes(data))
    with Image.open(path) as image, pytest.raises(OSError):
        image.seek(image.n_frames - 1)
        image.load()


def test_pyav_in_and_out(tmp_path):
    av = pytest.importorskip("av", reason="PyAV not installed (pip install 'neco[video]')")
    coded, mp4 = tmp_path / "vtest.neco", tmp_path / "vtest.mp4"
    result = run("encode", str(VTEST), str(coded), "--frames", "0:3", "--scale", "160x90", "-q", "30")
    assert result.exit_code == 0, result.stderr
    info = neco.info(coded.read_bytes())
    assert (info["width"], info["height"], info["frames"]) == (160, 90, 3)
    result = run("decode", str(coded), str(mp4))
    assert result.exit_code == 0, result.stderr
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == 3 and decoded[0].shape == (90, 160, 3)
    assert psnr(decoded[2], neco.open(coded).frame(2)) > PSNR_FLOOR


def test_pyav_unknown_encoder_leaves_nothing(tmp_path, tiny_video):
    pytest.importorskip("av", reason="PyAV not installed (pip install 'neco[video]')")
    result = run("decode", str(tiny_video), str(tmp_path / "x.mkv"), "--vcodec", "no-such-codec")
    assert_one_line_error(result)
    assert os.listdir(tmp_path) == []


def test_pillow_save_all_writes_video(tmp_path):
    first, second = Image.fromarray(smooth_image(W, H)), Image.fromarray(smooth_image(W, H)[::-1])
    path = tmp_path / "anim.neco"
    first.save(path, save_all=True, append_images=[second], duration=100, quality=40)
    with Image.open(path) as image:
        assert image.n_frames == 2 and image.info["duration"] == 100.0
        image.seek(1)
        assert psnr(np.asarray(image), np.asarray(second)) > PSNR_FLOOR
