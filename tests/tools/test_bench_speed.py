"""tools/bench_speed.py (issue 40): neco's decode and encode speed as a ratio to AVIF's, one run."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench_speed.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_speed", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_ratios_and_best_times():
    bench = _load_bench()
    text = bench.table(["image", "ms", "ratio"], [["kodim01", 512.26, 53.71], ["k2", 0.0123, 7.0]])
    assert text.splitlines() == ["image        ms  ratio",
                                 "kodim01   512.3   53.7",
                                 "k2       0.0123   7.00"]
    r = bench.ratios([10.0, 30.0], [1.0, 2.0])
    assert r == pytest.approx({"mean_of_ratios": 12.5, "ratio_of_means": 40 / 3})
    calls = []
    best = bench.best_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, k=2)
    assert calls == ["a", "b"] * 3  # a warm-up round, then the codecs interleaved in each round
    assert set(best) == {"a", "b"} and all(0 <= t < 1 for t in best.values())


@pytest.mark.bench
def test_bench_prints_ratios_to_avif(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH), "--limit", "1", "--k", "1", "--large", "400x300",
                          "--threads", "1", "--json", str(tmp_path / "speed.json")],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    ratios = re.findall(r"^ratio neco/AVIF decode \(([^)]*)\): \D*([\d.]+)x", out.stdout, re.M)
    assert [label for label, _ in ratios] == ["size-matched", "Pillow default quality", "400x300"], out.stdout
    assert all(float(value) > 0 for _, value in ratios)
    assert "torch" in out.stdout and "1 threads; libavif max_threads 1 (--threads)" in out.stdout
    assert "Effort-0 encode" in out.stdout and "640x360 frame" in out.stdout
    result = json.loads((tmp_path / "speed.json").read_text())
    image = result["kodak"]["images"][0]
    assert image["image"] == "kodim01" and 0 < image["neco_bpp"] < 24 and 0 <= image["avif_quality"] <= 100
    assert all(image[f"{name}_s"] > 0 for name in ("neco", "matched", "default"))
    assert all(v > 0 for v in result["kodak"]["vs_matched"].values())
    large = result["large"]
    assert large["size"] == [400, 300] and large["neco_s"] > 0 and large["avif_s"] > 0
    assert large["neco_peak_rss_mib"] > 0 and large["avif_peak_rss_mib"] > 0
    assert set(result["encode"]) == {"64x64 crop", "640x360 frame", "kodak 768x512"}
    assert all(t["neco"] > 0 and t["avif"] > 0 for t in result["encode"].values())
