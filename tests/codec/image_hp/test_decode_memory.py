"""Peak memory of decoding a large image (issue 40): a 4000x3000 photo within 1 GiB peak RSS.

The decode runs in a fresh subprocess that reports its own peak RSS (VmHWM), torch and the
model included (~0.3 GB of it). Not ru_maxrss: Linux carries the peak of the memory a process
had before exec into it, so a child of a large pytest process would report its parent's. The payload is coded from the latents of a photo crop repeated
over a 4000x3000 image's latent planes (no 12-megapixel analysis and rate search needed): the
decoder's memory depends on the size, not on the content.
"""

import subprocess
import sys

import pytest
import torch

from neco.codec import intnet, registry
from neco.codec.image_hp import decoder as decoder_module
from neco.codec.image_hp.decoder import ImageHPDecoder
from neco.codec.image_hp.encoder import ImageHPEncoder
from neco.codec.image_hp.model import (ImageModelConfig, frozen_tensors, model_from_frozen,
                                    with_channel_groups)
from conftest import photo_crop

WIDTH, HEIGHT = 4000, 3000
GIB_KB = 1 << 20   # VmHWM is in kB

_CHILD = """
import sys
from neco.codec import registry
decoder = registry.get_decoder(sys.argv[1])
payload = open(sys.argv[2], "rb").read()
height, width = int(sys.argv[3]), int(sys.argv[4])
if sys.argv[5] == "latents":
    decoder.decode_latents(payload, height, width)
else:
    pixels = decoder.decode(payload, height, width)
    assert tuple(pixels.shape) == (3, height, width)
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


@pytest.fixture(scope="module")
def large_payload(tmp_path_factory):
    encoder = registry.get_encoder(registry.DEFAULT_IMAGE_MODEL)
    crop = torch.from_numpy(photo_crop(512, 512, index=2)).permute(2, 0, 1).contiguous()
    y0 = encoder.analyse(crop)                      # (1, M, 32, 32)
    lat_h, lat_w = 4 * -(-HEIGHT // 64), 4 * -(-WIDTH // 64)
    y0 = y0.repeat(1, 1, -(-lat_h // y0.shape[-2]), -(-lat_w // y0.shape[-1]))[..., :lat_h, :lat_w]
    payload, _ = encoder.code_latents(y0.contiguous(), encoder.rate_fx_from_quality(40))
    path = tmp_path_factory.mktemp("large") / "payload.bin"
    path.write_bytes(payload)
    return path


def _peak_rss_kb(path, what: str) -> int:
    out = subprocess.run([sys.executable, "-c", _CHILD, registry.DEFAULT_IMAGE_MODEL, str(path), str(HEIGHT),
                          str(WIDTH), what], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS read from /proc (Linux)")


@linux_only
def test_large_decode_probability_path_memory(large_payload):
    """The integer probability path (hyper-decoder, context network, entropy decoding) of a
    4000x3000 image works in row stripes: measured ~0.86 GB peak with torch (1.54 GB when it
    held whole float64 planes and their copies)."""
    peak = _peak_rss_kb(large_payload, "latents")
    assert peak < GIB_KB, f"decode_latents of {WIDTH}x{HEIGHT}: peak RSS {peak / 1024:.0f} MB"


@linux_only
@pytest.mark.slow
def test_large_decode_memory(large_payload):
    """A whole 4000x3000 decode (probability path, then the synthesis in tiles) within 1 GiB
    peak RSS: measured ~0.9 GB (1.5 GB before). Run with -m slow (~30 s)."""
    peak = _peak_rss_kb(large_payload, "pixels")
    assert peak < GIB_KB, f"decode of {WIDTH}x{HEIGHT}: peak RSS {peak / 1024:.0f} MB"


def _grouped_random_context_coder() -> ImageHPEncoder:
    """The shipped model in channel groups with a random context network (so the stripes'
    halos and the channel context matter to every probability)."""
    config, tensors = registry.load_tensors(registry.DEFAULT_IMAGE_MODEL)
    net = model_from_frozen(ImageModelConfig.from_json(config), tensors)
    if not net.cfg.channel_context:
        net = with_channel_groups(net, (16, 48, 128))
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for conv in net.context.convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.05)
    return ImageHPEncoder(ImageHPDecoder("test", net.cfg, frozen_tensors(net), b"test"))


@pytest.mark.parametrize("grouped", [False, True])
def test_stripes_give_the_same_integers(monkeypatch, grouped):
    """The probability path in one-row stripes (and one-row im2col stripes) codes and decodes
    exactly what the default stripes do: the same payload, symbols and means."""
    coder = _grouped_random_context_coder() if grouped else registry.get_encoder(registry.DEFAULT_IMAGE_MODEL)
    height, width = 200, 136   # 16 x 12 latents, 4 x 3 hyper-latents
    x = torch.from_numpy(photo_crop(width, height, index=6)).permute(2, 0, 1).contiguous()
    y0 = coder.analyse(x)
    payload, _ = coder.code_latents(y0, 900)
    decoded = coder.decoder.decode_latents(payload, height, width)
    monkeypatch.setattr(decoder_module, "_STRIPE_ELEMENTS", 1)
    monkeypatch.setattr(intnet, "_IM2COL_MAX_ELEMENTS", 1)
    assert coder.code_latents(y0, 900)[0] == payload
    striped = coder.decoder.decode_latents(payload, height, width)
    assert all(torch.equal(a, b) for a, b in zip(decoded[1:4], striped[1:4]))


def test_hyper_decoder_stripes_match_the_whole_plane():
    decoder = registry.get_decoder(registry.DEFAULT_IMAGE_MODEL)
    g = torch.Generator().manual_seed(2)
    limit = decoder_module.ACT_LIMIT_FX
    z = torch.randint(-limit, limit + 1, (decoder.cfg.hyper_channels, 7, 5), generator=g, dtype=torch.int64)
    whole = decoder.hyper(z.double())
    for rows in (1, 2, 3, 7):
        assert torch.equal(decoder.hyper.striped(z, rows, torch.int32).double(), whole)
