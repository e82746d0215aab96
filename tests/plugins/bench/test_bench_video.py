"""Video mode of `neco eval`: PyAV codecs, per-frame accounting and the CLI, on 8 tiny frames."""

import csv
import io
import json
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from neco.plugins.bench import codecs as bench_codecs, plot as bench_plot
from neco.plugins.cli import cli
import neco
from neco.codec import registry
from neco.plugins.bench.codecs import CODECS, NecoCodec, NecoVideoCodec, X264Codec, make_codec
from neco.plugins.bench.metrics import psnr_rgb
from neco.plugins.bench.run import measure_one
from neco.plugins.bench.video import find_video, type_stats

from conftest import SHARED, photo_crop

pytest.importorskip("av", reason="PyAV not installed (pip install 'neco[video]')")
VTEST = SHARED / "data" / "video" / "vtest.avi"
FRAMES, SIZE = 8, (64, 48)
VIDEO_CODECS = [name for name, codec in CODECS.items() if codec.kind == "video"]


@pytest.fixture(scope="module")
def clip():
    if not VTEST.is_file():
        pytest.skip("no ../shared/data/video/vtest.avi")
    return find_video(VTEST, FRAMES, SIZE)


def usable(spec: str):
    codec = make_codec(spec)
    reason = codec.unavailable()
    if reason:
        pytest.skip(f"{spec} unavailable here: {reason}")
    return codec


def neco_eval(*args):
    result = CliRunner().invoke(cli, ["eval", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_clip_is_cut_and_scaled(clip):
    frames = clip.load()
    assert frames.pixels.shape == (FRAMES, 48, 64, 3) and frames.pixels.dtype == np.uint8
    assert frames.frame_rate == clip.frame_rate == Fraction(25)
    assert (clip.frames, clip.width, clip.height) == (FRAMES, 64, 48)
    assert find_video(VTEST, 4, SIZE).sha256 != clip.sha256  # another cut is another cache entry
    assert not np.array_equal(frames.pixels[0], frames.pixels[-1])  # frames move


def test_x264_bitstream_is_every_packet_and_decodes(clip):
    codec = usable("x264")
    frames = clip.load()
    fine, coarse = codec.encode(frames, 18), codec.encode(frames, 40)
    assert len(coarse) < len(fine)
    assert len(fine) == len(fine.extradata) + sum(len(p) for *_, p in fine.packets)
    assert sorted(fine.frame_bits()) == list(range(FRAMES))
    decoded = codec.decode(fine)
    assert decoded.pts == tuple(range(FRAMES)) and decoded.pixels.shape == frames.pixels.shape
    assert decoded.types[0] == "I" and set(decoded.types) <= {"I", "P", "B"}
    assert min(psnr_rgb(a, b) for a, b in zip(frames.pixels, decoded.pixels)) > 33
    assert codec.version().startswith("PyAV ") and "libx264" in codec.version()


@pytest.mark.parametrize("name", VIDEO_CODECS)
def test_every_video_codec_round_trips(clip, name):
    codec = usable(name)
    frames = clip.load()
    middle = codec.default_qualities[len(codec.default_qualities) // 2]
    decoded = codec.decode(codec.encode(frames, middle))
    assert decoded.pts == tuple(range(FRAMES)) and decoded.types[0] == "I"
    assert np.mean([psnr_rgb(a, b) for a, b in zip(frames.pixels, decoded.pixels)]) > 26
    low, high = codec.default_qualities[0], codec.default_qualities[-1]
    assert len(codec.encode(frames, high)) < len(codec.encode(frames, low))  # CRF: higher, fewer bits


def test_frame_types_and_bits_are_accounted(clip):
    usable("x264")
    row = measure_one(X264Codec(gop=4), clip, 24)
    frames = row["per_frame"]
    types, bits = frames["type"], frames["bits"]
    assert len(types) == len(bits) == len(frames["psnr-rgb"]) == FRAMES
    assert types[0] == types[4] == "I"  # gop 4: a key frame every 4 frames
    assert sum(row[f"frames-{t}"] for t in set(types)) == FRAMES
    for kind in set(types):
        mine = [b for t, b in zip(types, bits) if t == kind]
        assert row[f"frames-{kind}"] == len(mine)
        assert row[f"bits-per-frame-{kind}"] == pytest.approx(sum(mine) / len(mine))
    assert row["bits-per-frame-I"] > 2 * max(row.get("bits-per-frame-P", 0), row.get("bits-per-frame-B", 0))
    assert sum(bits) <= 8 * row["bytes"] < sum(bits) + 8 * 64  # every packet, at most tiny headers apart
    assert row["bpp"] == pytest.approx(8 * row["bytes"] / (64 * 48 * FRAMES))
    assert row["kbps"] == pytest.approx(8 * row["bytes"] * 25 / FRAMES / 1000)
    assert row["psnr-rgb"] == pytest.approx(np.mean(frames["psnr-rgb"]))
    assert row["ms-ssim-rgb"] is None  # 64x48 is below MS-SSIM's five scales


def test_type_stats():
    assert type_stats(["I", "B", "P", "B"], [1000, 10, 300, 30]) == {
        "frames-B": 2, "bits-per-frame-B": 20, "frames-I": 1, "bits-per-frame-I": 1000,
        "frames-P": 1, "bits-per-frame-P": 300}


def test_crf_search_lands_on_a_target_rate(clip):
    codec = usable("x264")
    frames = clip.load()
    target = 8 * len(codec.encode(frames, 30)) / (64 * 48 * FRAMES)
    assert codec.find_quality(frames, target) == 30  # the exact rate of CRF 30 finds CRF 30
    q = codec.find_quality(frames, target * 1.5)
    assert q < 30  # more bits: a lower CRF
    assert 8 * len(codec.encode(frames, q)) / (64 * 48 * FRAMES) == pytest.approx(target * 1.5, rel=0.25)


def test_unavailable_video_codecs_are_reported(monkeypatch, clip, tmp_path):
    usable("x264")
    monkeypatch.setattr(bench_codecs.X265Codec, "encoder", "libno-such-encoder")
    assert "no libno-such-encoder encoder" in make_codec("x265").unavailable()
    out = tmp_path / "out"
    result = neco_eval(VTEST, "--frames", FRAMES, "--size", "64x48", "-c", "x265", "-c", "x264", "-q", "30",
                       "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    assert "neco: warning: x265 unavailable: this PyAV's FFmpeg has no libno-such-encoder encoder" in result.output
    assert (out / "x264.json").exists() and not (out / "x265.json").exists()
    monkeypatch.setitem(__import__("sys").modules, "av", None)  # PyAV not installed
    assert "PyAV is not installed" in make_codec("vp9").unavailable()


def test_video_run_writes_json_frame_csv_bd_table_and_plots(clip, tmp_path):
    usable("x264")
    out = tmp_path / "out"
    args = (VTEST, "--frames", FRAMES, "--size", "64x48", "-c", "x264", "-c", "x264:preset=ultrafast",
            "-q", "20,28,36", "-o", out)
    result = neco_eval(*args)
    assert result.exit_code == 0, result.output
    assert "8 frames of" in result.output and "at 64x48, 25 fps" in result.output
    assert "x264 crf=28:" in result.output and "kbps" in result.output
    assert "BD vs x264 (psnr-rgb" in result.output  # the first codec is the anchor
    saved = json.loads((out / "x264.json").read_text())
    assert saved["name"] == "x264" and saved["videos"] == 1
    assert saved["video"] == {"frames": 8, "width": 64, "height": 48, "frame_rate": "25"}
    assert "preset=medium" in saved["description"] and "gop=32" in saved["description"]
    results = saved["results"]
    assert results["quality"] == [20, 28, 36]
    assert results["bpp"] == sorted(results["bpp"], reverse=True)
    assert results["psnr-rgb"] == sorted(results["psnr-rgb"], reverse=True)
    for bpp, kbps in zip(results["bpp"], results["kbps"]):
        assert kbps == pytest.approx(bpp * 64 * 48 * 25 / 1000)
    assert results["frames-I"] == [1, 1, 1] and "bits-per-frame-I" in results
    assert "ms-ssim-rgb" not in results  # frames too small
    assert [p["quality"] for p in saved["per_frame"]] == [20, 28, 36]
    assert all(len(p["bits"]) == len(p["type"]) == 8 for p in saved["per_frame"])
    rows = list(csv.DictReader((out / "x264.csv").open()))
    assert len(rows) == 3 * 8 and rows[0]["type"] == "I" and rows[0]["frame"] == "0"
    first = [r for r in rows if float(r["quality"]) == 20]
    per_frame_bits = sum(int(r["bits"]) for r in first)
    assert per_frame_bits <= results["bpp"][0] * 64 * 48 * 8 < per_frame_bits + 8 * 64
    table = json.loads((out / "bd-rate.json").read_text())
    assert set(table["anchors"]) == {"x264"} and table["anchors"]["x264"]["x264-presetultrafast"]["bd-rate"] > 0
    if bench_plot.matplotlib_available():
        assert (out / "rd-psnr-rgb.png").stat().st_size > 1000
    again = neco_eval(*args, "--no-plot")  # all from the cache: same numbers
    assert again.exit_code == 0 and json.loads((out / "x264.json").read_text())["results"]["bpp"] == results["bpp"]


def test_neco_codes_the_clip_with_its_video_profile_beside_x264(clip, tmp_path):
    """`neco eval VIDEO -c neco -c x264`: neco's curve is the video profile (I/P frames, here gop 4) and
    its rate the .neco file's bytes."""
    usable("x264")
    assert isinstance(make_codec("neco", "video"), NecoVideoCodec) and type(make_codec("neco")) is NecoCodec
    out = tmp_path / "out"
    result = neco_eval(VTEST, "--frames", FRAMES, "--size", "64x48", "-c", "neco:gop=4", "-c", "x264", "-q", "30",
                       "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "neco-gop4.json").read_text())
    assert saved["codec"]["settings"] == {"model": registry.DEFAULT_VIDEO_MODEL, "device": "cpu", "effort": 0,
                                          "gop": 4}
    assert "whole .neco file" in saved["description"] and saved["video"]["frames"] == FRAMES
    assert saved["per_frame"][0]["type"] == list("IPPPIPPP")
    assert saved["results"]["frames-I"] == [2] and saved["results"]["frames-P"] == [6]
    file = io.BytesIO()   # the same clip coded through the API: the row's rate is this file's size
    neco.encode_frames(clip.load().pixels, file, 30, frame_rate=25, gop=4)
    assert saved["results"]["bpp"][0] == pytest.approx(8 * len(file.getvalue()) / (64 * 48 * FRAMES))
    assert sum(saved["per_frame"][0]["bits"]) < 8 * len(file.getvalue())  # FRAME payloads, without the container
    assert saved["results"]["psnr-rgb"][0] > 22 and (out / "x264.json").exists()


def test_a_short_video_gives_what_it_has(tmp_path):
    usable("x264")
    from neco.plugins.adapters.av_io import AvWriter
    path = tmp_path / "short.mkv"
    writer = AvWriter(str(path), 64, 48, Fraction(30), "libx264")
    for i in range(5):
        writer.write(np.ascontiguousarray(photo_crop(64 + 8, 48, index=0)[:, i:i + 64]))
    writer.close()
    clip = find_video(path, 96, None)
    assert (clip.frames, clip.width, clip.height, clip.frame_rate) == (5, 64, 48, 30)
    result = neco_eval(path, "-c", "x264", "-q", "30", "--size", "source", "-o", tmp_path / "out", "--no-plot")
    assert result.exit_code == 0, result.output
    assert "neco: warning: short.mkv has only 5 frames" in result.output
    saved = json.loads((tmp_path / "out" / "x264.json").read_text())
    assert saved["results"]["kbps"][0] == pytest.approx(saved["results"]["bpp"][0] * 64 * 48 * 30 / 1000)


@pytest.mark.parametrize("args, message", [
    (["-c", "jpeg"], "jpeg is an image codec: a video file as DATASET needs a video codec (neco, x264, x265, svtav1"),
    (["-c", "x264", "--size", "63x48"], "not WxH with even sides"),
    (["-c", "x264", "--limit", "2"], "--limit counts images"),
    (["-c", "x264", "-q", "60"], "takes crf 0-51"),
    (["-c", "x264", "-q", "30", "--bpp-grid", "0.1"], "--quality or --bpp-grid, not both"),
])
def test_video_usage_errors(tmp_path, args, message):
    if not VTEST.is_file():
        pytest.skip("no vtest.avi")
    result = neco_eval(VTEST, *args, "-o", tmp_path / "out")
    assert result.exit_code == 2 and message in result.output, result.output


def test_video_options_and_codecs_need_a_video(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    from PIL import Image
    Image.fromarray(photo_crop(64, 48)).save(folder / "a.png")
    result = neco_eval(folder, "-c", "x264", "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "x264 is a video codec: it needs a video file as DATASET (image codecs: neco, jpeg" in result.output
    result = neco_eval(folder, "-c", "jpeg", "--frames", "8", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "--frames and --size are for a video file" in result.output


def test_unreadable_video_is_one_line_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    result = neco_eval(bad, "-c", "x264", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "neco: error: " in result.output and "broken.mp4" in result.output
