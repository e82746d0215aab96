"""Optional perceptual metrics of `neco eval` (SSIMULACRA2, FLIP, VMAF) on tiny images and clips.

Each metric's tests are skipped when its package (``pip install 'neco[metrics]'``) is missing;
the tests of a missing package's warning run everywhere.
"""

import csv
import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from neco.plugins.bench import codecs as bench_codecs, perceptual as bench_perceptual, run as bench_run
from neco.plugins.bench.perceptual import PERCEPTUAL, flip, ssimulacra2, unavailable, vmaf, vmaf_luma
from neco.plugins.bench.run import carry_metrics, select_metrics

from conftest import SHARED, neco_eval, photo_crop

SIDE = 64


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """VMAF on 64x48 frames: more threads only add overhead (seconds, on a busy machine)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image():
    return photo_crop(SIDE, SIDE, index=3)


def need(name: str):
    return pytest.importorskip(PERCEPTUAL[name].module, reason=f"{name}: pip install 'neco[metrics]'")


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(photo_crop(SIDE, SIDE, index=i)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def jpeg_calls(monkeypatch):
    calls = {"n": 0}
    encode = bench_codecs.JpegCodec.encode

    def counting(self, pixels, quality):
        calls["n"] += 1
        return encode(self, pixels, quality)

    monkeypatch.setattr(bench_codecs.JpegCodec, "encode", counting)
    return calls


# --- the metrics: direction and range -------------------------------------------------------

def test_ssimulacra2_is_100_for_identical_images_and_falls_with_quality(image):
    need("ssimulacra2")
    assert ssimulacra2(image, image) == pytest.approx(100)
    fine, coarse = ssimulacra2(image, jpeg(image, 90)), ssimulacra2(image, jpeg(image, 20))
    assert 100 > fine > coarse
    assert ssimulacra2(image[:7], image[:7]) is None  # below the 8x8 the metric needs


def test_flip_is_0_for_identical_images_and_grows_with_error(image):
    need("flip")
    assert flip(image, image) == 0
    fine, coarse = flip(image, jpeg(image, 90)), flip(image, jpeg(image, 20))
    assert 0 < fine < coarse <= 1


def test_image_metrics_refuse_mismatched_shapes(image):
    for function in (ssimulacra2, flip):
        with pytest.raises(ValueError, match="one size"):
            function(image, image[:-1])


def moving_frames(count: int = 4, width: int = 64, height: int = 48) -> np.ndarray:
    """A camera pan over a photo: each frame moves 3 pixels."""
    photo = photo_crop(width + 3 * count, height + 3 * count, index=2)
    return np.stack([photo[3 * i:3 * i + height, 3 * i:3 * i + width] for i in range(count)])


def test_vmaf_luma_is_limited_range_bt601():
    frames = np.array([[[[0, 0, 0], [255, 255, 255], [255, 0, 0]]]], np.uint8)
    assert vmaf_luma(frames).flatten().tolist() == [16, 235, 81]  # 16 + 65.481 = 81.48, rounded


def test_vmaf_is_at_most_100_and_falls_with_quality():
    need("vmaf")
    frames = moving_frames()
    same = vmaf(frames, frames)
    assert same[0] == pytest.approx(97.43, abs=0.01)  # no motion feature on the first frame, as libvmaf
    assert same[1:] == [100] * 3  # clipped, as libvmaf does
    fine = vmaf(frames, np.stack([jpeg(f, 90) for f in frames]))
    coarse = vmaf(frames, np.stack([jpeg(f, 15) for f in frames]))
    assert all(0 <= c < f <= s <= 100 for c, f, s in zip(coarse, fine, same))
    assert vmaf(frames[:, :16], frames[:, :16]) is None  # below the 17 pixels a side it needs


def test_vmaf_in_chunks_is_vmaf_torch_on_the_whole_clip(monkeypatch):
    torch = need("vmaf") and pytest.importorskip("torch")
    from vmaf_torch import VMAF
    frames = moving_frames(5)
    decoded = np.stack([jpeg(f, 30) for f in frames])
    monkeypatch.setattr(bench_perceptual, "VMAF_CHUNK", 2)  # chunks of 2, 2 and 1 frames
    with torch.no_grad():
        whole = VMAF(clip_score=True)(vmaf_luma(frames), vmaf_luma(decoded)).flatten().tolist()
    assert vmaf(frames, decoded) == pytest.approx(whole, abs=1e-4)


def test_a_missing_package_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "flip_evaluator", None)  # what a missing package looks like to import
    assert unavailable("flip").startswith("not installed (pip install flip-evaluator")


# --- the cache: rows carry their metrics' versions -------------------------------------------

def test_select_and_carry_metrics():
    row = {"bytes": 10, "psnr-rgb": 30.0, "flip": 0.1, "ssimulacra2": 70.0,
           "metric-versions": {"flip": "f", "ssimulacra2": "s"}}
    assert select_metrics(row, ("flip",)) == {"bytes": 10, "psnr-rgb": 30.0, "flip": 0.1,
                                               "metric-versions": {"flip": "f"}}
    assert select_metrics(row, ()) == {"bytes": 10, "psnr-rgb": 30.0}
    new = {"bytes": 10, "psnr-rgb": 30.0, "vmaf": 90.0, "metric-versions": {"vmaf": "v"}}
    merged = carry_metrics(row, new)
    assert merged["flip"] == 0.1 and merged["vmaf"] == 90.0
    assert merged["metric-versions"] == {"vmaf": "v", "flip": "f", "ssimulacra2": "s"}
    assert carry_metrics({**row, "bytes": 11}, new) == new  # another encoding: nothing carried


# --- the CLI ---------------------------------------------------------------------------------

def test_run_with_perceptual_metrics_writes_json_and_csv(dataset, tmp_path):
    need("ssimulacra2"), need("flip")
    out = tmp_path / "out"
    result = neco_eval(dataset, "-c", "jpeg", "-q", "20,90", "--metric", "ssimulacra2", "--metric", "flip",
                       "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    results = json.loads((out / "jpeg.json").read_text())["results"]
    ssim2, error = results["ssimulacra2"], results["flip"]
    assert len(ssim2) == len(error) == 2
    assert ssim2[0] < ssim2[1] < 100 and error[0] > error[1] > 0  # q20 worse than q90 on both
    assert list(results).index("flip") > list(results).index("psnr-y")
    rows = list(csv.DictReader((out / "jpeg.csv").open()))
    assert len(rows) == 4 and {"ssimulacra2", "flip"} <= set(rows[0])
    assert np.mean([float(r["flip"]) for r in rows if r["quality"] == "90.0"]) == pytest.approx(error[1])
    assert "SSIMULACRA2" in result.output and "FLIP" in result.output  # the rate point's summary line


def test_perceptual_metrics_are_plotted(dataset, tmp_path):
    need("flip")
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    assert neco_eval(dataset, "-c", "jpeg", "-q", "20,90", "--metric", "flip", "-o", out).exit_code == 0
    assert (out / "rd-flip.png").is_file() and (out / "rd-flip.svg").is_file()
    assert not (out / "rd-ssimulacra2.png").exists()  # not measured, not plotted


def test_a_new_metric_is_measured_and_cached_rows_serve_fewer(dataset, tmp_path, jpeg_calls, monkeypatch):
    need("ssimulacra2"), need("flip")
    out = tmp_path / "out"
    run = lambda *metrics: neco_eval(dataset, "-c", "jpeg", "-q", "50", *metrics, "-o", out,  # noqa: E731
                                     "--no-plot")
    assert run().exit_code == 0 and jpeg_calls["n"] == 2
    assert run("--metric", "flip").exit_code == 0 and jpeg_calls["n"] == 4  # a new metric: measured
    assert run().exit_code == 0 and jpeg_calls["n"] == 4  # fewer metrics: from the cache
    assert "flip" not in json.loads((out / "jpeg.json").read_text())["results"]
    assert run("--metric", "ssimulacra2").exit_code == 0 and jpeg_calls["n"] == 6
    both = run("--metric", "ssimulacra2", "--metric", "flip")  # flip carried over: all cached
    assert both.exit_code == 0 and jpeg_calls["n"] == 6
    assert {"ssimulacra2", "flip"} <= set(json.loads((out / "jpeg.json").read_text())["results"])
    monkeypatch.setattr(bench_run, "metric_version", lambda name: "another version")
    assert run("--metric", "flip").exit_code == 0 and jpeg_calls["n"] == 8  # a new version: measured


def test_a_missing_metric_package_is_a_warning_not_a_crash(dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "flip_evaluator", None)
    out = tmp_path / "out"
    result = neco_eval(dataset, "-c", "jpeg", "-q", "50", "--metric", "flip", "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "flip" in line and "warning" in line]
    assert len(warnings) == 1 and "not installed" in warnings[0]
    assert "flip" not in json.loads((out / "jpeg.json").read_text())["results"]


def test_vmaf_is_skipped_for_images(dataset, tmp_path):
    result = neco_eval(dataset, "-c", "jpeg", "-q", "50", "--metric", "vmaf", "-o", tmp_path / "out", "--no-plot")
    assert result.exit_code == 0 and "vmaf is a video metric: skipped for images" in result.output


def test_bd_metric_and_usage(dataset, tmp_path):
    result = neco_eval(dataset, "-c", "jpeg", "-q", "30,60,90", "--metric", "psnr-y", "-o", tmp_path / "out",
                       "--no-plot")
    assert result.exit_code == 0 and "(psnr-y;" in (tmp_path / "out" / "bd-rate.txt").read_text()
    result = neco_eval(dataset, "--metric", "psnr-y", "--metric", "ms-ssim-rgb", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "BD tables take one of" in result.output


def test_vmaf_of_a_video_run(tmp_path):
    need("vmaf"), pytest.importorskip("av")
    video = SHARED / "data" / "video" / "vtest.avi"
    if not video.is_file():
        pytest.skip("no ../shared/data/video/vtest.avi")
    if bench_codecs.make_codec("x264").unavailable():
        pytest.skip("x264 unavailable")
    out = tmp_path / "out"
    result = neco_eval(video, "-c", "x264", "-q", "20,40", "--frames", "6", "--size", "64x48",
                       "--metric", "vmaf", "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "x264.json").read_text())
    fine, coarse = saved["results"]["vmaf"]
    assert 100 >= fine > coarse
    assert [len(p["vmaf"]) for p in saved["per_frame"]] == [6, 6]
    assert fine == pytest.approx(np.mean(saved["per_frame"][0]["vmaf"]))
    rows = list(csv.DictReader((out / "x264.csv").open()))
    assert len(rows) == 12 and all(0 <= float(r["vmaf"]) <= 100 for r in rows)
