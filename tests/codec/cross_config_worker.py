"""Worker for test_cross_config: runs in a fresh process under one CPU configuration.

    python cross_config_worker.py EXPECTED_CAPABILITY THREADS encode IN.npy OUT.neco
    python cross_config_worker.py EXPECTED_CAPABILITY THREADS decode IN.neco OUT.npy

Asserts the configuration it runs on (ATEN_CPU_CAPABILITY has no effect once torch has run, so
each configuration needs its own process), then prints a JSON line with symbol hashes.
"""

import hashlib
import json
import sys

import numpy as np
import torch

import neco
from neco.codec import registry
from neco.formats import read_container


def main(expected_capability, threads, action, src, dst):
    torch.set_num_threads(int(threads))
    capability = torch.backends.cpu.get_cpu_capability()
    assert capability == expected_capability, (capability, expected_capability)
    assert torch.get_num_threads() == int(threads)
    if action == "encode":
        data = neco.encode(np.load(src), quality=50)
        open(dst, "wb").write(data)
    else:
        data = open(src, "rb").read()
    container = read_container(data)
    h = container.header
    coder = registry.get_model(h.model_id)
    _, z, y, mean = coder.decode_latents(container.chunks[0].payload, h.height, h.width)
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in (z, y, mean))).hexdigest()
    if action == "decode":
        np.save(dst, neco.decode_array(data))
    print(json.dumps({"capability": capability, "threads": threads, "symbols": digest}))


if __name__ == "__main__":
    main(*sys.argv[1:])
