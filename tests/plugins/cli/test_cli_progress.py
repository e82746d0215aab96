"""Progress on stderr: drawn on a terminal (a real pseudo-terminal for the installed script,
a stand-in terminal in-process), never without one, nothing at all with -q / --quiet."""

import fcntl
import os
from pathlib import Path
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import neco
from conftest import smooth_image
from neco.plugins.adapters import y4m
from neco.plugins.cli import cli, progress

W, H = 32, 32
NECO = shutil.which("neco") or str(Path(sys.executable).with_name("neco"))


def frames(n: int = 3) -> list[np.ndarray]:
    return [np.roll(smooth_image(W, H), 4 * i, axis=1) for i in range(n)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "clip.y4m"
    with open(path, "wb") as f:
        writer = y4m.Y4MWriter(f, W, H, 25, "420")
        for pixels in frames():
            writer.write(pixels)
    return path


@pytest.fixture(scope="module")
def coded(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "clip.neco"
    neco.encode_frames(frames(), path, quality=30, frame_rate=25)
    return path


def on_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the installed ``neco`` with stderr on a pseudo-terminal (100 columns); (status, its stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = subprocess.Popen([NECO, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=slave)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return child.wait(timeout=60), seen.decode(errors="replace")


def test_frame_sequence_encode_shows_progress_on_a_terminal(clip, tmp_path):
    status, seen = on_terminal(["encode", str(clip), "out.neco"], tmp_path)
    assert status == 0, seen
    # done / total, elapsed and ETA, rate; the file's name (not its folders) as the label
    assert re.search(r"\rencode clip\.y4m: +\d+%\|.*\| [0-3]/3 \[\d\d:\d\d<", seen), seen
    assert "frame/s" in seen or "s/frame" in seen, seen
    # The bar is cleared (carriage return, blanks) before the summary line.
    assert re.search(r"\r +\r\S*clip\.y4m -> out\.neco: 3 frame\(s\) 32x32", seen), seen
    assert (tmp_path / "out.neco").exists()


@pytest.fixture
def terminal(monkeypatch):
    """In-process runs whose stderr counts as a terminal (tqdm draws into click's captured stderr)."""
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)


def run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (result.stderr, result.exception)
    return result


def test_stand_in_terminal_shows_frames_of_encode_and_decode(clip, coded, tmp_path, terminal):
    stderr = run("encode", str(clip), str(tmp_path / "a.neco")).stderr
    assert re.search(r"encode clip\.y4m: +\d+%\|.*\| [0-3]/3 ", stderr), stderr
    stderr = run("decode", str(coded), str(tmp_path / "a.y4m")).stderr
    assert re.search(r"decode clip\.neco: +\d+%\|.*\| [0-3]/3 ", stderr), stderr
    stderr = run("decode", str(coded), str(tmp_path / "a.gif")).stderr
    assert re.search(r"decode clip\.neco: +\d+%\|.*\| [0-3]/3 ", stderr) and "write GIF, 3 frames: 00:0" in stderr


def test_stand_in_terminal_shows_elapsed_time_of_an_image_encode(tmp_path, terminal):
    Image.fromarray(smooth_image(16, 16)).save(tmp_path / "in.png")
    stderr = run("encode", str(tmp_path / "in.png"), str(tmp_path / "out.neco"), "--bpp", "2").stderr
    assert re.search(r"encode in\.png, searching 2 bpp: 00:\d\d", stderr), stderr


def test_no_terminal_no_progress(clip, tmp_path):
    stderr = run("encode", str(clip), str(tmp_path / "a.neco")).stderr
    assert stderr.count("\n") == 1 and "\r" not in stderr and "%|" not in stderr, stderr
    assert stderr.startswith(f"{clip} -> {tmp_path / 'a.neco'}: 3 frame(s)")


@pytest.mark.parametrize("quiet", [["-q", "encode"], ["encode", "--quiet"]])
def test_quiet_prints_nothing_even_on_a_terminal(clip, tmp_path, terminal, quiet):
    result = run(*quiet, str(clip), str(tmp_path / "a.neco"), "-q", "30")
    assert result.stderr == ""
    assert neco.open(tmp_path / "a.neco").frame_count() == 3


def test_quiet_decode(coded, tmp_path, terminal):
    assert run("decode", "-q", str(coded), str(tmp_path / "a.y4m")).stderr == ""


def test_eval_shows_a_bar_per_measurement(tmp_path, terminal):
    data = tmp_path / "images"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(smooth_image(W, H), i, axis=0)).save(data / f"img{i}.png")
    args = ["eval", str(data), "-c", "jpeg", "-q", "50,90", "-o", str(tmp_path / "out"), "--no-plot"]
    stderr = run(*args).stderr
    assert re.search(r"eval: +\d+%\|.*\| [0-4]/4 .*task", stderr), stderr
    assert "jpeg q=50: " in stderr  # the result lines still print
    quiet = run(*args, "--quiet").stderr
    assert "%|" not in quiet and "jpeg q=50: " in quiet, quiet
