"""Encode under one CPU configuration, decode under another: symbols identical, pixels within 1.

Each configuration is a fresh subprocess (ATEN_CPU_CAPABILITY is read once, when torch starts).
"""

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import photo_crop

WORKER = Path(__file__).with_name("cross_config_worker.py")
BEST = torch.backends.cpu.get_cpu_capability()
CONFIGS = {"default-1thread": ("DEFAULT", "default", 1), "best-2threads": (BEST, None, 2)}


def _run(config, action, src, dst):
    expected, env_cap, threads = CONFIGS[config]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("ATEN_CPU_CAPABILITY", None)
    if env_cap:
        env["ATEN_CPU_CAPABILITY"] = env_cap
    out = subprocess.run([sys.executable, str(WORKER), expected, str(threads), action, str(src), str(dst)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("enc_cfg,dec_cfg", [("default-1thread", "best-2threads"),
                                             ("best-2threads", "default-1thread")])
def test_decode_across_configurations(tmp_path, enc_cfg, dec_cfg):
    if BEST == "DEFAULT":
        pytest.skip("this CPU has no vector capability beyond DEFAULT")
    np.save(tmp_path / "in.npy", photo_crop(200, 136, index=3))
    enc = _run(enc_cfg, "encode", tmp_path / "in.npy", tmp_path / "x.neco")
    dec = _run(dec_cfg, "decode", tmp_path / "x.neco", tmp_path / "out_a.npy")
    same = _run(enc_cfg, "decode", tmp_path / "x.neco", tmp_path / "out_b.npy")
    assert enc["symbols"] == dec["symbols"] == same["symbols"]
    a, b = np.load(tmp_path / "out_a.npy"), np.load(tmp_path / "out_b.npy")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
