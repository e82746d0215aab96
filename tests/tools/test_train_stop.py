"""Stopping tools/train_image.py with Ctrl-C or SIGTERM (what `timeout` sends) saves a checkpoint
at the step reached, so a run cut short by a time limit loses no steps."""

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
import torch

TRAIN = Path(__file__).resolve().parents[2] / "tools" / "train_image.py"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_run_saves_the_step_it_reached(tmp_path, signum):
    rng = np.random.default_rng(0)
    for i in range(6):  # five to train on, the last four by name held out
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(tmp_path / f"{i:03d}.png")
    checkpoint = tmp_path / "ck.pt"
    run = subprocess.Popen(
        [sys.executable, str(TRAIN), "--data", str(tmp_path), "--checkpoint", str(checkpoint), "--from-scratch",
         "--channels", "8", "--latent-channels", "8", "--lambdas", "0.002,0.03", "--batch", "2", "--crop", "64",
         "--threads", "1", "--steps", "1000000", "--save-every", "1000000", "--validate-every", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in run.stdout:  # the first progress line: training is under way, nothing saved yet
            if line.startswith("step "):
                break
        else:
            pytest.fail(f"training ended before its first progress line (exit {run.wait()})")
        assert not checkpoint.exists()
        run.send_signal(signum)
        rest = run.stdout.read()
        assert run.wait(timeout=60) == 0, rest
    finally:
        run.kill()
    stopped = [line for line in rest.splitlines() if line.startswith("stopped at step")]
    assert stopped, rest
    saved = torch.load(checkpoint, weights_only=False)
    assert stopped[0] == f"stopped at step {saved['step']}, checkpoint saved"
    assert 20 <= saved["step"] < 1000000
    assert {"optimizer", "ema", "ema_slow"} <= saved.keys()
