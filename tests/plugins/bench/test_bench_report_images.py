"""bench.report: which images a curve averages, marks in BD tables, restriction to common images."""

import json

from neco.plugins.bench import report


def write_run(folder, name, images, points=(30, 60, 90)):
    """A result JSON and its per-image CSV, as `neco eval` writes them (made-up numbers)."""
    rows = [{"image": f"{image}.png", "quality": q, "bytes": 1, "bpp": q / 50 * (1 + i / 10),
             "psnr-rgb": 25 + q / 5 + i, "psnr-y": 0, "ms-ssim-rgb": None, "encoding_time": 0, "decoding_time": 0}
            for i, image in enumerate(images) for q in points]
    result, _ = report.summarize(name, "", list(points), rows)
    (folder / f"{name}.json").write_text(report.to_json(result))
    (folder / f"{name}.csv").write_text(report.to_csv(rows))
    return folder / f"{name}.json"


def test_images_from_the_csv_the_count_or_the_known_folder(tmp_path):
    curve = report.load_curve(write_run(tmp_path, "a", ["x", "y"]))
    assert curve.images == {"x", "y"} and curve.count == 2 and curve.rows
    (tmp_path / "a.csv").unlink()
    assert report.load_curve(tmp_path / "a.json").count == 2 and report.load_curve(tmp_path / "a.json").images is None
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    (kodak / "vtm.json").write_text(json.dumps({"results": {"bpp": [1, 2], "psnr-rgb": [30, 33]}}))
    assert report.load_curve(kodak / "vtm.json").images == set(report.DATASETS["kodak"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "c.json").write_text(json.dumps({"results": {"bpp": [1, 2], "psnr-rgb": [30, 33]}}))
    assert report.load_curve(other / "c.json").count is None  # not known: never marked


def test_restricted_means_are_those_of_a_run_on_those_images(tmp_path):
    full = report.load_curve(write_run(tmp_path, "full", ["x", "y", "z"]))
    (tmp_path / "sub").mkdir()
    sub = report.load_curve(write_run(tmp_path / "sub", "full", ["x", "y"]))
    same = report.restricted(full, frozenset({"x", "y"}))
    assert same.bpp == sub.bpp and same.quality["psnr-rgb"] == sub.quality["psnr-rgb"] and same.count == 2


def test_mismatch_by_count_alone_and_the_table_mark():
    a = report.Curve("a", [1, 2, 3], {"psnr-rgb": [30, 33, 36]}, count=24)
    b = report.Curve("b", [1.1, 2.1, 3.1], {"psnr-rgb": [30, 33, 36]}, count=2)
    assert report.image_mismatch(a, b) == "means over different images: b 2 images, a 24 images"
    rows = report.bd_table(a, [b], matching=True)
    assert "not matched: a and b hold means only" in rows[0]["images"]
    text = report.format_bd_table("a", "psnr-rgb", rows)
    assert text.splitlines()[2].startswith("b *") and text.splitlines()[-1].startswith("* b: means over different")
    assert report.image_mismatch(a, report.Curve("c", [1], count=24)) == ""
