"""tools/train_image.py under torchrun (neco.codec.image_hp.training): two CPU processes (gloo) train one
DistributedDataParallel model on crops of their own, process 0 alone saves, and a checkpoint resumes whatever the
number of processes (one process's in two, two processes' in one)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
import torch
import torch.distributed as dist

from neco.codec.image_hp import training

TRAIN = Path(__file__).resolve().parents[2] / "tools" / "train_image.py"
TINY = dict(channels=8, latent_channels=8, lambdas=(0.002, 0.03))
# What a process of the torchrun launch records in records/<rank>.txt, one line each: the digest of each batch
# it draws, of its gradients as clipped (after DDP's exchange) and each checkpoint it saves.
RECORDING_LAUNCHER = """
import hashlib, os, runpy, sys
import torch
from neco.codec.image_hp import training

TRAIN, RECORDS = sys.argv.pop(1), sys.argv.pop(1)
log = open(os.path.join(RECORDS, os.environ["RANK"] + ".txt"), "w", buffering=1)
digest = lambda tensors: hashlib.sha256(b"".join(t.cpu().numpy().tobytes() for t in tensors)).hexdigest()[:16]

def draw_batch(*args, draw=training.draw_batch):
    batch = draw(*args)
    log.write(f"batch {digest([t for part in batch for t in part])}\\n")
    return batch

def clip_grad_norm_(parameters, *args, clip=torch.nn.utils.clip_grad_norm_):
    parameters = list(parameters)
    log.write(f"grads {digest([p.grad for p in parameters if p.grad is not None])}\\n")
    return clip(parameters, *args)

def save_checkpoint(path, cfg, model, step, save=training.save_checkpoint, **extra):
    log.write(f"save {path.name} {step}\\n")
    save(path, cfg, model, step, **extra)

training.draw_batch, training.save_checkpoint = draw_batch, save_checkpoint
torch.nn.utils.clip_grad_norm_ = clip_grad_norm_
runpy.run_path(TRAIN, run_name="__main__")
"""
# torchrun's messages when the processes cannot reach each other here (no loopback networking)
CANNOT_START = ("DistNetworkError", "RendezvousConnectionError", "RendezvousTimeoutError", "connectFullMesh",
                "failed to listen")


def _photos(folder: Path) -> Path:
    """Six photos: two to train on, the last four by name held out."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="this torch has no gloo backend: no CPU process group")
def test_two_processes_train_one_model_and_checkpoints_resume_in_either(tmp_path, monkeypatch, capsys):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)  # the in-process runs are plain ones
    photos, checkpoint, records = _photos(tmp_path / "photos"), tmp_path / "ck" / "image-hp.pt", tmp_path / "records"
    one_process = lambda steps: training.train(training.Options(
        photos, checkpoint, from_scratch=True, batch=2, crop=64, threads=1, steps=steps, save_every=10**6, validate_every=10**6, **TINY))
    torch.manual_seed(0)
    one_process(2)

    records.mkdir()
    launcher = tmp_path / "launch.py"
    launcher.write_text(RECORDING_LAUNCHER)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(launcher), str(TRAIN), str(records), "--data", str(photos), "--checkpoint", str(checkpoint),
         "--batch", "2", "--crop", "64", "--threads", "1", "--steps", "4", "--save-every", "1000000",
         "--validate-every", "1000000"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if run.returncode and any(message in run.stderr for message in CANNOT_START):
        pytest.skip(f"torchrun's gloo processes cannot connect here: {run.stderr.strip().splitlines()[-1]}")
    assert run.returncode == 0, run.stdout + run.stderr
    # process 0 alone prints (the one-process checkpoint resumed), and alone saves, once, at the last step
    assert run.stdout.count("model ImageModelConfig") == 1 and "step 2" in run.stdout, run.stdout
    lines = [(records / f"{rank}.txt").read_text().splitlines() for rank in (0, 1)]
    assert [line for line in lines[0] if line.startswith("save")] == ["save image-hp.pt 4"]
    assert not [line for line in lines[1] if line.startswith("save")]
    # each process draws its own crops; the gradients each applies are the same (DDP's mean of both)
    batches, grads = ([[line for line in rank if line.startswith(kind)] for rank in lines] for kind in ("batch", "grads"))
    assert len(batches[0]) == len(batches[1]) == 2 and not set(batches[0]) & set(batches[1])
    assert len(grads[0]) == 2 and grads[0] == grads[1] and grads[0][0] != grads[0][1]

    saved = torch.load(checkpoint, weights_only=False)
    assert saved["step"] == 4 and {"optimizer", "ema", "ema_slow", "level_loss"} <= saved.keys()
    assert not [name for name in saved["model"] if name.startswith("module.")]  # the bare model's weights
    capsys.readouterr()
    one_process(5)  # the two processes' checkpoint resumes in one
    assert "params 0.04 M, step 4" in capsys.readouterr().out
    assert torch.load(checkpoint, weights_only=False)["step"] == 5
