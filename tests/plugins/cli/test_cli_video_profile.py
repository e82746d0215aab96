"""`neco encode` of a clip codes I/P frames (the video profile, issue 38) with --gop; --profile
image keeps intra frames; `neco info` shows each frame's type; `neco decode` streams them back."""

import io
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import neco
from conftest import PSNR_FLOOR, photo_crop, psnr
from neco.codec import session
from neco.formats import read_container
from neco.plugins.adapters import y4m
from neco.plugins.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def clip_y4m(path, count: int = 3) -> list[np.ndarray]:
    base = photo_crop(64 + 2 * count, 64, index=4)
    frames = [np.ascontiguousarray(base[:, t:t + 64]) for t in range(count)]
    with open(path, "wb") as out:
        writer = y4m.Y4MWriter(out, 64, 64)
        for frame in frames:
            writer.write(frame)
    with open(path, "rb") as f:        # the frames as the encoder sees them (after 4:2:0)
        return list(y4m.Y4MReader(f))


def test_encode_info_decode_a_clip(tmp_path):
    frames = clip_y4m(tmp_path / "in.y4m")
    result = run("encode", str(tmp_path / "in.y4m"), str(tmp_path / "out.neco"), "-q", "30", "--gop", "2")
    assert result.exit_code == 0, result.output
    data = (tmp_path / "out.neco").read_bytes()
    assert read_container(data).key_frames == [True, False, True]
    details = json.loads(run("info", "--json", str(tmp_path / "out.neco")).output)
    assert details["profile"] == "video" and details["key_frames"] == 2
    assert [c["frame_type"] for c in details["chunks"] if c["type"] == "FRAME"] == ["I", "P", "I"]
    text = run("info", str(tmp_path / "out.neco")).output
    assert "frame_type=P" in text
    assert run("decode", str(tmp_path / "out.neco"), str(tmp_path / "back.y4m")).exit_code == 0
    with open(tmp_path / "back.y4m", "rb") as f:
        back = list(y4m.Y4MReader(f))
    assert len(back) == 3 and all(psnr(a, b) > PSNR_FLOOR for a, b in zip(back, frames))
    assert all(np.array_equal(a, b) for a, b in zip(neco.open(data), neco.open(io.BytesIO(data))))


def test_profile_image_and_still_images(tmp_path):
    clip_y4m(tmp_path / "in.y4m", 2)
    result = run("encode", str(tmp_path / "in.y4m"), str(tmp_path / "out.neco"), "-q", "30", "--profile", "image")
    assert result.exit_code == 0, result.output
    container = read_container((tmp_path / "out.neco").read_bytes())
    assert container.header.profile == "image" and container.key_frames is None
    from PIL import Image
    Image.fromarray(photo_crop(32, 32)).save(tmp_path / "still.png")
    result = run("encode", str(tmp_path / "still.png"), str(tmp_path / "still.neco"), "--gop", "4")
    assert result.exit_code == 2 and "--gop" in result.output


@pytest.fixture(scope="module")
def ip_clip(tmp_path_factory):
    """A six-frame I/P clip (gop 4: I P P P I P) of a panning photo crop, and its frames decoded in order."""
    base = photo_crop(64 + 12, 64 + 6, index=3)
    path = tmp_path_factory.mktemp("ip") / "clip.neco"
    neco.encode_frames([base[t // 2:t // 2 + 64, t:t + 64].copy() for t in range(6)], path, quality=50, gop=4,
                       frame_rate=25)
    assert read_container(path.read_bytes()).key_frames == [True, False, False, False, True, False]
    return path, list(neco.open(path))


def y4m_frames(data: bytes) -> list[np.ndarray]:
    return list(y4m.Y4MReader(io.BytesIO(data)))


def test_decode_frames_range_is_frame_accurate(tmp_path, ip_clip, monkeypatch):
    path, sequential = ip_clip
    advanced = []
    original = session.StreamDecoder.advance
    monkeypatch.setattr(session.StreamDecoder, "advance", lambda self, payload: (advanced.append(payload),
                                                                                  original(self, payload))[1])
    assert run("decode", str(path), str(tmp_path / "all.y4m")).exit_code == 0
    everything = y4m_frames((tmp_path / "all.y4m").read_bytes())
    result = run("decode", str(path), str(tmp_path / "some.y4m"), "--frames", "2:5")
    assert result.exit_code == 0, result.output
    assert "3 frame(s) (2:5 of 6)" in result.stderr
    some = y4m_frames((tmp_path / "some.y4m").read_bytes())
    assert len(some) == 3 and all(np.array_equal(a, b) for a, b in zip(some, everything[2:5]))
    assert len(advanced) == 2                    # frames 0 and 1: from the key frame before frame 2

    advanced.clear()                             # one frame to an image format: frame 5 from key frame 4
    result = run("decode", str(path), str(tmp_path / "five.png"), "--frames", "5:6")
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "five.png")), sequential[5]) and len(advanced) == 1

    result = CliRunner().invoke(cli, ["decode", "-", "-", "-f", "y4m", "--frames", "3:"], input=path.read_bytes())
    assert result.exit_code == 0, result.stderr  # stdin, to stdout, STOP left out: to the end
    assert [np.array_equal(a, b) for a, b in zip(y4m_frames(result.stdout_bytes), everything[3:])] == [True] * 3


def test_decode_frames_to_video_file(tmp_path, ip_clip):
    av = pytest.importorskip("av", reason="PyAV not installed (pip install 'neco[video]')")
    result = run("decode", str(ip_clip[0]), str(tmp_path / "cut.mkv"), "--frames", "3:99", "--vcodec", "ffv1")
    assert result.exit_code == 0, result.output  # a STOP past the end stops at the last frame
    with av.open(str(tmp_path / "cut.mkv")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3


@pytest.mark.parametrize("args, words", [
    (["--frames", "5:2"], "STOP > START"),
    (["--frames", "two:five"], "START:STOP"),
    (["--frames", "6:"], "has 6 frame(s), numbered 0 to 5"),
    (["--frames", "40:50"], "has 6 frame(s)"),
    (["--frames", "1:2", "--lenient"], "--lenient"),
])
@pytest.mark.parametrize("out", ["cut.y4m", "cut.png", "-"])
def test_decode_bad_frames_is_one_line_usage_error(tmp_path, ip_clip, args, words, out):
    clip = tmp_path / "clip.neco"
    clip.write_bytes(ip_clip[0].read_bytes())
    target = out if out == "-" else str(tmp_path / out)
    result = CliRunner().invoke(cli, ["decode", str(clip), target, "-f", "y4m" if out != "cut.png" else "png", *args])
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert result.stderr.startswith("neco: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr and result.stdout_bytes == b""
    assert os.listdir(tmp_path) == ["clip.neco"]  # no output, no temporary file


def test_decode_several_frames_to_a_still_format_is_refused(tmp_path, ip_clip):
    result = run("decode", str(ip_clip[0]), str(tmp_path / "x.png"), "--frames", "1:3")
    assert result.exit_code == 1 and "2 frames" in result.stderr and not (tmp_path / "x.png").exists()
