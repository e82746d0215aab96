"""neco batch: the summary, bad inputs listed with exit status 1, a re-run that skips what is
done, usage errors, and a real Ctrl-C (SIGINT to the process group, as a terminal sends it)."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from click.testing import CliRunner
from PIL import Image

import neco.batch as batch
from neco.plugins.cli import cli

from conftest import photo_crop


def make_folder(folder: Path, count: int, size: int = 32) -> Path:
    folder.mkdir()
    for i in range(count):
        Image.fromarray(photo_crop(size, size, index=i % 40)).save(folder / f"img{i:02d}.png")
    return folder


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_batch_converts_lists_failures_and_resumes(tmp_path):
    src = make_folder(tmp_path / "src", 3)
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run("batch", src, tmp_path / "out", "-q", "30", "-j", "1")
    assert result.exit_code == 1, result.output
    assert "4 file(s): 3 converted, 0 skipped, 1 failed" in result.output
    assert "neco: failed: bad.png: " in result.output
    assert "neco: error: 1 file(s) failed; see " in result.output and batch.JOURNAL in result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.neco")) == ["img00.neco", "img01.neco", "img02.neco"]
    index = json.loads((tmp_path / "out" / batch.INDEX).read_text())
    assert index["options"]["quality"] == 30 and index["totals"]["done"] == 3

    (src / "bad.png").unlink()
    result = run("batch", src, tmp_path / "out", "-q", "30")
    assert result.exit_code == 0, result.output
    assert "3 file(s): 0 converted, 3 skipped, 0 failed" in result.output

    result = run("batch", tmp_path / "out", tmp_path / "back", "--decode", "-f", "webp")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "back" / "img01.webp").size == (32, 32)


def test_batch_usage_errors(tmp_path):
    src = make_folder(tmp_path / "src", 1)
    for args, message in ((["-q", "10", "-b", "1"], "mutually exclusive"),
                          (["--address", "auto"], "apply to --engine ray"),
                          (["-f", "png"], "apply to --decode"),
                          (["--engine", "spark"], "Invalid value")):
        result = run("batch", src, tmp_path / "out", *args)
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(tmp_path):
    src = make_folder(tmp_path / "src", 16, size=48)
    out = tmp_path / "out"
    command = [sys.executable, "-c", "import sys; from neco.plugins.cli import main; main(sys.argv[1:])", "batch", str(src), str(out), "-j", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    journal = out / batch.JOURNAL
    deadline = time.monotonic() + 120
    while (not journal.exists() or len(journal.read_bytes().splitlines()) < 2) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)  # the whole group, as a terminal's Ctrl-C
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"neco: error: interrupted" in stderr
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert 2 <= len(records) < 16
    assert sorted(p.name for p in out.glob("*.neco")) == sorted(r["output"] for r in records)
    assert not list(out.glob(".*.tmp"))
    result = run("batch", src, out, "-j", "1")
    assert result.exit_code == 0, result.output
    assert f"16 file(s): {16 - len(records)} converted, {len(records)} skipped, 0 failed" in result.output
