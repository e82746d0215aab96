"""``neco eval`` run in-process with CliRunner on three small crops of training photos."""

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from neco.plugins.bench import codecs as bench_codecs, plot as bench_plot

from conftest import neco_eval, photo_crop

WIDTH, HEIGHT = 176, 168  # above MS-SSIM's 161-pixel minimum
QUALITIES = "30,60,90"


@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(photo_crop(WIDTH, HEIGHT, index=i)).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image, ignored")
    return folder


@pytest.fixture
def references(tmp_path):
    """A reference folder with a made-up wide-range 'vtm' curve (the default anchor)."""
    folder = tmp_path / "refs"
    folder.mkdir()
    write_curve(folder / "vtm.json", "VTM", [0.1, 0.3, 0.7, 1.5, 3, 6], [24, 28, 32, 36, 40, 44])
    return folder


def write_curve(path, name, bpp, psnr):
    path.write_text(json.dumps({"name": name, "description": name,
                                "results": {"bpp": bpp, "psnr-rgb": psnr}}))


@pytest.fixture
def jpeg_calls(monkeypatch):
    """Counts JPEG encodes; set ``interrupt_at`` to raise KeyboardInterrupt on that call."""
    calls = {"n": 0, "interrupt_at": None}
    encode = bench_codecs.JpegCodec.encode

    def counting(self, pixels, quality):
        calls["n"] += 1
        if calls["n"] == calls["interrupt_at"]:
            raise KeyboardInterrupt
        return encode(self, pixels, quality)

    monkeypatch.setattr(bench_codecs.JpegCodec, "encode", counting)
    return calls


def test_run_writes_json_csv_tables_and_plots(dataset, references, tmp_path):
    out = tmp_path / "out"
    result = neco_eval(dataset, "-c", "jpeg", "-c", "webp", "-q", QUALITIES, "-o", out,
                       "--references", references)
    assert result.exit_code == 0, result.output
    assert "3 images" in result.output and "BD vs vtm (psnr-rgb" in result.output
    saved = json.loads((out / "jpeg.json").read_text())
    assert saved["name"] == "jpeg" and saved["images"] == 3
    results = saved["results"]
    assert results["quality"] == [30, 60, 90]
    for key in ("bpp", "psnr-rgb", "psnr-y", "ms-ssim-rgb", "encoding_time", "decoding_time"):
        assert len(results[key]) == 3 and all(v is not None for v in results[key])
    assert results["bpp"] == sorted(results["bpp"]) and results["psnr-rgb"] == sorted(results["psnr-rgb"])
    rows = list(csv.DictReader((out / "jpeg.csv").open()))
    assert len(rows) == 9
    # bpp is the real byte count: the same encode by hand gives the same size.
    first = next(r for r in rows if r["image"] == "img0.png" and float(r["quality"]) == 30)
    buffer = io.BytesIO()
    Image.open(dataset / "img0.png").convert("RGB").save(buffer, format="JPEG", quality=30)
    assert int(first["bytes"]) == len(buffer.getvalue())
    means = np.mean([float(r["bpp"]) for r in rows if float(r["quality"]) == 30])
    assert results["bpp"][0] == pytest.approx(means)
    table = json.loads((out / "bd-rate.json").read_text())
    assert set(table["anchors"]["vtm"]) == {"jpeg", "webp"}
    assert (out / "bd-rate.txt").read_text().startswith("BD vs vtm")
    if bench_plot.matplotlib_available():
        for name in ("rd-psnr-rgb.png", "rd-psnr-rgb.svg", "rd-ms-ssim-rgb.png", "rd-ms-ssim-rgb.svg"):
            assert (out / name).stat().st_size > 1000


def test_rerun_takes_everything_from_the_cache(dataset, tmp_path, jpeg_calls):
    args = (dataset, "-c", "jpeg", "-q", QUALITIES, "-o", tmp_path / "out", "--no-plot")
    assert neco_eval(*args).exit_code == 0
    first = (tmp_path / "out" / "jpeg.json").read_text()
    assert jpeg_calls["n"] == 9
    assert neco_eval(*args).exit_code == 0
    assert jpeg_calls["n"] == 9
    assert (tmp_path / "out" / "jpeg.json").read_text() == first


def test_interrupted_run_continues_where_it_stopped(dataset, tmp_path, jpeg_calls):
    args = (dataset, "-c", "jpeg", "-q", QUALITIES, "-o", tmp_path / "out", "--no-plot")
    jpeg_calls["interrupt_at"] = 5
    result = neco_eval(*args)
    assert result.exit_code == 130
    assert "interrupted; 4 measurements are cached" in result.output
    assert "run the same command to continue" in result.output
    assert not (tmp_path / "out" / "jpeg.json").exists()
    jpeg_calls["interrupt_at"] = None
    assert neco_eval(*args).exit_code == 0
    assert jpeg_calls["n"] == 5 + 5  # the interrupted call is done again, the four before are not
    assert json.loads((tmp_path / "out" / "jpeg.json").read_text())["images"] == 3


def test_a_changed_setting_is_measured_again(dataset, tmp_path):
    out = tmp_path / "out"
    assert neco_eval(dataset, "-c", "webp", "-q", "50", "-o", out, "--no-plot").exit_code == 0
    result = neco_eval(dataset, "-c", "webp:method=0", "-q", "50", "-o", out, "--no-plot")
    assert result.exit_code == 0
    fast, slow = (json.loads((out / f"{n}.json").read_text()) for n in ("webp-method0", "webp"))
    assert fast["codec"]["settings"] == {"method": 0} and slow["codec"]["settings"] == {"method": 6}


def test_corrupt_images_are_reported_and_skipped(dataset, tmp_path):
    good = (dataset / "img0.png").read_bytes()
    (dataset / "truncated.png").write_bytes(good[: len(good) // 2])
    (dataset / "garbage.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    result = neco_eval(dataset, "-c", "jpeg", "-q", "50", "-o", tmp_path / "out", "--no-plot")
    assert result.exit_code == 0, result.output
    assert "neco: warning: skipped truncated.png" in result.output
    assert "neco: warning: skipped garbage.jpg" in result.output
    assert "(2 skipped)" in result.output
    assert json.loads((tmp_path / "out" / "jpeg.json").read_text())["images"] == 3


def test_unavailable_codec_is_reported_not_fatal(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_codecs.JxlCodec, "plugin", "no_such_jxl_plugin_module")
    out = tmp_path / "out"
    result = neco_eval(dataset, "-c", "jxl", "-c", "jpeg", "-q", "50", "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    assert "neco: warning: jxl unavailable: pillow-jxl-plugin is not installed" in result.output
    assert (out / "jpeg.json").exists() and not (out / "jxl.json").exists()
    result = neco_eval(dataset, "-c", "jxl", "-o", out)
    assert result.exit_code == 1
    assert "neco: error: none of the codecs asked for is available" in result.output
    listing = neco_eval("--list-codecs").output
    assert "jxl    unavailable" in listing and "jpeg   Pillow" in listing


def test_a_codec_failing_on_an_image_is_reported(dataset, tmp_path, monkeypatch):
    victim = np.asarray(Image.open(dataset / "img1.png").convert("RGB"))
    encode = bench_codecs.JpegCodec.encode

    def failing(self, pixels, quality):
        if quality == 80 and np.array_equal(pixels, victim):
            raise RuntimeError("encoder exploded")
        return encode(self, pixels, quality)

    monkeypatch.setattr(bench_codecs.JpegCodec, "encode", failing)
    out = tmp_path / "out"
    result = neco_eval(dataset, "-c", "jpeg", "-q", "40,80", "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    assert "jpeg q=80 img1.png failed: RuntimeError: encoder exploded" in result.output
    assert "1 of 3 images left out of the means" in result.output
    assert json.loads((out / "jpeg.json").read_text())["images"] == 2
    assert len(list(csv.DictReader((out / "jpeg.csv").open()))) == 5


def test_compare_works_on_saved_results(tmp_path):
    write_curve(tmp_path / "a.json", "a", [0.2, 0.5, 1.0, 2.0], [28, 31, 34, 37])
    write_curve(tmp_path / "b.json", "b", [0.18, 0.45, 0.9, 1.8], [28, 31, 34, 37])
    result = neco_eval("--compare", tmp_path / "a.json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    assert "BD vs a (psnr-rgb" in result.output and "-10.0 %" in result.output
    out = tmp_path / "cmp"
    result = neco_eval("--compare", tmp_path / "b.json", "--anchor", tmp_path / "a.json", "-o", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "bd-rate.json").read_text())["anchors"]["a"]["b"]["bd-rate"] == pytest.approx(-10)
    if bench_plot.matplotlib_available():
        assert (out / "rd-psnr-rgb.png").exists() and (out / "rd-psnr-rgb.svg").exists()
        assert not (out / "rd-ms-ssim-rgb.png").exists()  # no curve has MS-SSIM


def test_compare_finds_curves_by_name_in_the_reference_folder(tmp_path, references):
    write_curve(references / "avif-measured.json", "avif", [0.2, 0.6, 1.0, 1.7], [29, 33, 36, 39])
    result = neco_eval("--compare", "avif-measured", "--anchor", "vtm", "--references", references)
    assert result.exit_code == 0, result.output
    assert "BD vs vtm" in result.output and "avif-measured" in result.output
    result = neco_eval("--compare", "nothing-like-this", "--references", references)
    assert result.exit_code == 1 and "no result file 'nothing-like-this'" in result.output


def test_without_matplotlib_a_warning_and_no_plots(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_plot, "matplotlib_available", lambda: False)
    write_curve(tmp_path / "a.json", "a", [0.2, 0.5, 1.0], [28, 31, 34])
    write_curve(tmp_path / "b.json", "b", [0.2, 0.5, 1.0], [29, 32, 35])
    result = neco_eval("--compare", tmp_path / "a.json", tmp_path / "b.json", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "neco: warning: matplotlib is not installed" in result.output
    assert not list((tmp_path / "out").glob("*.png"))


def test_parallel_jobs_give_the_serial_numbers(dataset, tmp_path):
    args = (dataset, "-c", "jpeg", "-q", "40,80", "--no-plot")
    assert neco_eval(*args, "-o", tmp_path / "serial").exit_code == 0
    assert neco_eval(*args, "-o", tmp_path / "parallel", "-j", "2").exit_code == 0
    serial, parallel = (json.loads((tmp_path / d / "jpeg.json").read_text())["results"]
                        for d in ("serial", "parallel"))
    for key in ("bpp", "psnr-rgb", "ms-ssim-rgb"):
        assert parallel[key] == serial[key]


def test_neco_runs_through_the_same_command(dataset, tmp_path):
    result = neco_eval(dataset, "-c", "neco", "-q", "20,90", "--limit", "1", "-o", tmp_path / "out",
                       "--no-plot")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "neco.json").read_text())
    assert saved["images"] == 1 and saved["codec"]["settings"]["model"]
    assert saved["results"]["bpp"][0] < saved["results"]["bpp"][1]


@pytest.mark.parametrize("args, message", [
    (["-c", "mp3"], "unknown codec 'mp3'"),
    (["-c", "jpeg", "-q", "120"], "0-100"),
    (["-c", "jpeg", "-q", "high"], "not a number list"),
    ([], "needs -o/--output"),
])
def test_usage_errors(dataset, tmp_path, args, message):
    if message != "needs -o/--output":
        args = [*args, "-o", tmp_path / "out"]
    result = neco_eval(dataset, *args)
    assert result.exit_code == 2 and message in result.output


def test_missing_dataset_and_empty_compare(tmp_path):
    result = neco_eval(tmp_path / "nowhere", "-c", "jpeg", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "no such file or directory" in result.output
    assert neco_eval("--compare").exit_code == 2


def test_bpp_grid_compares_codecs_at_matched_rates(dataset, tmp_path):
    out = tmp_path / "out"
    result = neco_eval(dataset, "-c", "jpeg", "-c", "webp", "--bpp-grid", "0.5,1", "--bpp-grid", "2",
                       "-o", out, "--no-plot", "--anchor", "jpeg")  # a codec of the run as the anchor
    assert result.exit_code == 0, result.output
    assert "jpeg bpp=0.5:" in result.output and "quality" in result.output
    for name in ("jpeg", "webp"):
        saved = json.loads((out / f"{name}.json").read_text())
        results = saved["results"]
        assert results["target-bpp"] == [0.5, 1, 2]
        for target, bpp in zip(results["target-bpp"], results["bpp"]):
            assert abs(bpp / target - 1) < 0.1, (name, target, bpp)
        assert results["quality"] == sorted(results["quality"]) and 0 < results["quality"][0] < 100
        assert "target bpps" in saved["description"]
        rows = list(csv.DictReader((out / f"{name}.csv").open()))
        assert len(rows) == 9 and {float(r["target_bpp"]) for r in rows} == {0.5, 1, 2}
        for row in rows:  # each image on its own quality, each near its target
            assert abs(float(row["bpp"]) / float(row["target_bpp"]) - 1) < 0.2
    assert "BD vs jpeg (psnr-rgb" in result.output
    help_text = neco_eval("--help").output
    assert "--bpp-grid" in help_text and "matched rates" in help_text


def test_bpp_grid_usage_errors(dataset, tmp_path):
    result = neco_eval(dataset, "-c", "jpeg", "--bpp-grid", "0.5", "-q", "50", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "--quality or --bpp-grid, not both" in result.output
    result = neco_eval(dataset, "-c", "jpeg", "--bpp-grid", "0,1", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "target bpps must be positive" in result.output
