"""`neco encode` of a clip codes I/P frames (the video profile, issue 38) with --gop; --profile
image keeps intra frames; `neco info` shows each frame's type; `neco decode` streams them back."""

import io
import json

import numpy as np
from click.testing import CliRunner

import neco
from conftest import PSNR_FLOOR, photo_crop, psnr
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
