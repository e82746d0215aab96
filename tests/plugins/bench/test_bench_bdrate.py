"""BD-rate / BD-PSNR of `neco eval`: known values, the published Kodak table, a reference package."""

import json

import numpy as np
import pytest

from neco.plugins.bench.bdrate import bd_rate
from neco.plugins.bench.report import Curve, bd_quality, bd_table, format_bd_table

from conftest import SHARED

REFERENCES = SHARED / "reference" / "kodak"
RATE = [0.1, 0.25, 0.5, 0.9, 1.5]
PSNR = [27.0, 30.1, 33.0, 35.8, 38.9]


def reference(name: str) -> dict:
    path = REFERENCES / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"no reference curves at {REFERENCES}")
    return json.loads(path.read_text())["results"]


def test_identical_curves_give_zero():
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0, abs=1e-12)
    assert bd_quality(RATE, PSNR, RATE, PSNR) == pytest.approx(0, abs=1e-12)


def test_every_rate_times_0_9_gives_minus_10_percent():
    assert bd_rate(RATE, PSNR, [0.9 * r for r in RATE], PSNR) == pytest.approx(-10, abs=1e-9)


def test_every_psnr_plus_1_db_gives_plus_1_db():
    assert bd_quality(RATE, PSNR, RATE, [p + 1 for p in PSNR]) == pytest.approx(1, abs=1e-9)


def test_curves_that_do_not_overlap_are_an_error():
    with pytest.raises(ValueError, match="overlap"):
        bd_quality(RATE, PSNR, [r * 100 for r in RATE], PSNR)


@pytest.mark.parametrize("name, expected", [
    ("avif-measured", 39.6), ("webp-measured", 67.4), ("jpeg-measured", 162.1),
    ("compressai-bmshj2018-hyperprior_mse_cpu", 30.5), ("paper-elic2022_mse", -7.0)])
def test_published_kodak_table_against_vtm(name, expected):
    vtm, test = reference("vtm"), reference(name)
    assert bd_rate(vtm["bpp"], vtm["psnr-rgb"], test["bpp"], test["psnr-rgb"]) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("name", ["avif-measured", "jpeg-measured", "paper-elic2022_mse"])
def test_agrees_with_the_bjontegaard_package(name):
    bjontegaard = pytest.importorskip("bjontegaard")
    vtm, test = reference("vtm"), reference(name)
    args = (vtm["bpp"], vtm["psnr-rgb"], test["bpp"], test["psnr-rgb"])
    options = {"method": "pchip", "require_matching_points": False, "min_overlap": 0}
    assert bd_rate(*args) == pytest.approx(bjontegaard.bd_rate(*args, **options), abs=1e-9)
    assert bd_quality(*args) == pytest.approx(bjontegaard.bd_psnr(*args, **options), abs=1e-9)


def test_table_reports_missing_metric_and_ms_ssim_in_db():
    anchor = Curve("anchor", RATE, {"psnr-rgb": PSNR, "ms-ssim-rgb": [0.9, 0.95, 0.97, 0.98, 0.99]})
    same = Curve("same", RATE, {"psnr-rgb": PSNR, "ms-ssim-rgb": [0.9, 0.95, 0.97, 0.98, 0.99]})
    psnr_only = Curve("psnr-only", [0.9 * r for r in RATE], {"psnr-rgb": PSNR})
    rows = bd_table(anchor, [same, psnr_only], "ms-ssim-rgb")
    assert rows[0]["bd-rate"] == pytest.approx(0, abs=1e-12)
    assert rows[1]["bd-rate"] is None and "no ms-ssim-rgb in psnr-only" in rows[1]["note"]
    rows = bd_table(anchor, [same, psnr_only], "psnr-rgb")
    assert rows[1]["bd-rate"] == pytest.approx(-10)
    text = format_bd_table("anchor", "psnr-rgb", rows)
    assert "-10.0 %" in text and "+0.0 %" in text


def test_ms_ssim_points_are_on_a_db_scale():
    curve = Curve("c", [0.5, 1.0], {"ms-ssim-rgb": [0.9, 0.99]})
    rate, value = curve.points("ms-ssim-rgb")
    assert np.allclose(value, [10, 20])
