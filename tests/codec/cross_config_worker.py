"""Worker for test_cross_config: runs in a fresh process under one configuration.

    python cross_config_worker.py CONFIG_JSON encode OUT_DIR IN.npy...   # at each quality, + one adapted
    python cross_config_worker.py CONFIG_JSON decode OUT_DIR IN.neco...

CONFIG_JSON names the CPU capability the process must see, the thread count, torch's
deterministic mode, the synthesis/analysis tile edge in latents (null = the default) and the
device. The worker asserts what it runs on (ATEN_CPU_CAPABILITY has no effect once torch has
run, so each configuration needs its own process), then prints one JSON line mapping each
file to the hash of its decoded symbols: by name after `encode`, and as DIR/NAME (its folder
and name) after `decode`, which also saves the pixels as OUT_DIR/DIR--NAME.npy. Each image is
also coded once with a decoder adaptation (image_hp/adaptation.py) of fixed pseudo-random deltas, so that
the adapted synthesis is compared across configurations too. An input of shape (N, H, W, 3) is a
clip: coded by the video profile (one group of pictures, I then P frames) at each quality; its
digest covers every frame's symbols (the last frame's depend on all before it) and its pixels
are every frame's.
"""

import hashlib
import io
import json
from pathlib import Path
import sys

import numpy as np
import torch

import neco
from neco.codec import registry
from neco.codec.image_hp import decoder
from neco.formats import read_container

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import encode_adapted  # noqa: E402

QUALITIES = (10, 90)


def symbols_digest(data: bytes) -> str:
    container = read_container(data)
    h = container.header
    decoder = registry.get_decoder(h.model_id)
    if h.profile == "video":   # every frame in stream order, through the reference buffer
        stream, tensors = decoder.stream(), []
        for payload in container.frames:
            _, z, y, mean, adaptation = stream.latents(payload, h.height, h.width)
            tensors += [z, y, mean, *(adaptation.symbols if adaptation else ())]
        return hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest()
    _, z, y, mean, adaptation = decoder.decode_latents(container.chunks[0].payload, h.height, h.width)
    tensors = (z, y, mean) + (adaptation.symbols if adaptation else ())
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest()


def decode_pixels(data: bytes, device: str) -> np.ndarray:
    """An image's pixels, or a clip's frames stacked."""
    if read_container(data).header.profile == "video":
        with neco.open(data, device=device) as reader:
            return np.stack(list(reader))
    return neco.decode_array(data, device=device)


def main(config_json: str, action: str, out_dir: str, *paths: str) -> None:
    config = json.loads(config_json)
    torch.set_num_threads(config["threads"])
    torch.use_deterministic_algorithms(config["deterministic"])
    if config["tile"]:
        decoder.TILE_LATENTS = config["tile"]
    capability = torch.backends.cpu.get_cpu_capability()
    assert capability == config["capability"], (capability, config["capability"])
    assert torch.get_num_threads() == config["threads"]
    assert torch.are_deterministic_algorithms_enabled() == config["deterministic"]
    device = config["device"]
    assert device == "cpu" or torch.cuda.is_available()
    out, digests = Path(out_dir), {}
    for path in map(Path, paths):
        if action == "encode" and np.load(path).ndim == 4:   # a clip: one group of pictures
            frames = list(np.load(path))
            for q in QUALITIES:
                out_stream = io.BytesIO()
                neco.encode_frames(frames, out_stream, quality=q, device=device, gop=len(frames))
                name = f"{path.stem}-q{q}.neco"
                (out / name).write_bytes(out_stream.getvalue())
                digests[name] = symbols_digest(out_stream.getvalue())
        elif action == "encode":
            pixels = np.load(path)
            for q in QUALITIES:
                data = neco.encode(pixels, quality=q, device=device)
                name = f"{path.stem}-q{q}.neco"
                (out / name).write_bytes(data)
                digests[name] = symbols_digest(data)
            data = encode_adapted(pixels, 60, device)
            (out / f"{path.stem}-adapted.neco").write_bytes(data)
            digests[f"{path.stem}-adapted.neco"] = symbols_digest(data)
        else:
            data = path.read_bytes()
            digests[f"{path.parent.name}/{path.name}"] = symbols_digest(data)
            np.save(out / f"{path.parent.name}--{path.stem}.npy", decode_pixels(data, device))
    print(json.dumps(digests))


if __name__ == "__main__":
    main(*sys.argv[1:])
