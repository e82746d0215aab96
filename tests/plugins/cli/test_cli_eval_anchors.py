"""``neco eval``: anchors that average other images than the run's are warned about and marked
in the BD table; --matching-images compares on the images both measured (issue 42)."""

import json

import pytest
from PIL import Image

from conftest import neco_eval, photo_crop

WIDTH, HEIGHT = 176, 168


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("anchors") / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(photo_crop(WIDTH, HEIGHT, index=i)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def full_run(dataset, tmp_path_factory):
    """jpeg over all three images: a saved run with per-image results, to be an anchor."""
    out = tmp_path_factory.mktemp("full")
    result = neco_eval(dataset, "-c", "jpeg", "-q", "30,60,90", "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    return out


def bd_json(out):
    return json.loads((out / "bd-rate.json").read_text())["anchors"]


def test_reference_curves_of_kodak_are_taken_as_its_24_images(dataset, tmp_path):
    """A reference in a folder named kodak, with no count: the 24 Kodak images; a 2-image run is marked."""
    refs = tmp_path / "kodak"
    refs.mkdir()
    (refs / "vtm.json").write_text(json.dumps({"name": "VTM", "results": {
        "bpp": [0.1, 0.3, 0.7, 1.5, 3, 6], "psnr-rgb": [24, 28, 32, 36, 40, 44]}}))
    out = tmp_path / "out"
    result = neco_eval(dataset, "-c", "jpeg", "-q", "30,60,90", "--limit", "2", "--references", refs,
                       "-o", out, "--no-plot")
    assert result.exit_code == 0, result.output
    assert "neco: warning: BD of jpeg vs vtm: means over different images: jpeg 2 images, " \
           "vtm 24 images (kodak), 0 in common" in result.stderr
    assert "jpeg *" in result.stdout and "* jpeg: means over different images" in result.stdout
    assert bd_json(out)["vtm"]["jpeg"]["images-differ"].startswith("means over different images")
    matched = neco_eval(dataset, "-c", "jpeg", "-q", "30,60,90", "--limit", "2", "--references", refs,
                        "-o", out, "--no-plot", "--matching-images")
    assert "not matched: vtm holds means only" in matched.stdout  # reference curves cannot be matched


def test_a_saved_run_as_anchor_is_matched_on_the_common_images(dataset, full_run, tmp_path):
    anchor = str(full_run / "jpeg.json")
    out = tmp_path / "out"
    marked = neco_eval(dataset, "-c", "jpeg", "-q", "30,60,90", "--limit", "2", "--anchor", anchor, "-o", out,
                       "--no-plot")
    assert marked.exit_code == 0, marked.output
    assert "jpeg 2 images, jpeg 3 images, 2 in common" in marked.stdout
    assert bd_json(out)["jpeg"]["jpeg"]["bd-rate"] != pytest.approx(0, abs=1e-6)  # means over other images
    matched = neco_eval(dataset, "-c", "jpeg", "-q", "30,60,90", "--limit", "2", "--anchor", anchor, "-o", out,
                        "--no-plot", "--matching-images")
    assert matched.exit_code == 0, matched.output
    assert "*" not in matched.stdout and "on the 2 images both measured" in matched.stdout
    assert "warning: BD" not in matched.stderr
    row = bd_json(out)["jpeg"]["jpeg"]
    assert row["matched-images"] == 2 and row["images-differ"] is None
    assert row["bd-rate"] == pytest.approx(0, abs=1e-6)  # the same codec on the same images


def test_the_same_images_are_not_marked(dataset, full_run):
    result = neco_eval("--compare", full_run / "jpeg.json", "--anchor", full_run / "jpeg.json", "--no-plot")
    assert result.exit_code == 0 and "*" not in result.stdout and "warning" not in result.stderr


@pytest.mark.parametrize("args, option, others", [
    (["-c", "mp3"], "'-c' / '--codec'", ("--quality", "--bpp-grid")),
    (["-c", "jpeg", "-q", "120"], "'-q' / '--quality'", ("--codec", "--bpp-grid")),
    (["-c", "jpeg", "--bpp-grid", "0,1"], "'--bpp-grid'", ("--codec", "--quality")),
])
def test_a_wrong_value_names_only_its_option(dataset, tmp_path, args, option, others):
    result = neco_eval(dataset, *args, "-o", tmp_path / "out")
    assert result.exit_code == 2 and f"Invalid value for {option}" in result.output
    assert not any(other in result.output for other in others), result.output
