"""Model and codec registry: a throwaway plugin package, installed as a dist-info on sys.path,
is listed by ``neco list`` and usable by its stable name."""

import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import neco
from conftest import smooth_image
from neco.codec import registry
from neco.codec.image_hp.model import ImageModel, ImageModelConfig, frozen_tensors
from neco.formats import ModelError
from neco.plugins.bench import codecs as bench_codecs
from neco.plugins.cli import cli

PLUGIN = '''
import hashlib
import zlib

import numpy as np
import torch

from neco.plugins.bench.codecs import Codec


class ToyModel:
    """A lossless zlib "model" with the coding-model interface of a neco.models plugin."""

    model_id = "toy-zlib-v1"
    digest = hashlib.sha256(b"toy-zlib-v1 weights").digest()[:4]
    max_rate_fx = 0
    rates = "lossless"

    def rate_fx_from_quality(self, quality):
        return 0

    def analyse(self, x, device="cpu"):
        return x

    def code_latents(self, y0, rate_fx, effort=0, pixels=None):
        return zlib.compress(y0.numpy().tobytes()), {}

    def decode(self, payload, height, width, device="cpu"):
        pixels = np.frombuffer(zlib.decompress(payload), np.uint8).reshape(3, height, width)
        return torch.from_numpy(pixels.copy())


def load():
    return ToyModel()


def broken():
    raise RuntimeError("weights missing")


class ToyCodec(Codec):
    name = "toyraw"

    def version(self):
        return "toyraw 0.1"

    def encode(self, pixels, quality):
        h, w = pixels.shape[:2]
        return h.to_bytes(4, "little") + w.to_bytes(4, "little") + zlib.compress(pixels.tobytes())

    def decode(self, data):
        h, w = int.from_bytes(data[:4], "little"), int.from_bytes(data[4:8], "little")
        return np.frombuffer(zlib.decompress(data[8:]), np.uint8).reshape(h, w, 3)
'''

ENTRY_POINTS = """
[neco.models]
toy-zlib-v1 = neco_toy_plugin:load
toy-broken-v1 = neco_toy_plugin:broken

[neco.codecs]
toyraw = neco_toy_plugin:ToyCodec
"""


def install_toy(path, patch) -> None:
    """Install `neco-toy-plugin` the way pip lays it out: a module and its .dist-info."""
    (path / "neco_toy_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = path / "neco_toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: neco-toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    patch.syspath_prepend(str(path))
    patch.delitem(sys.modules, "neco_toy_plugin", raising=False)  # imported afresh, removed after
    registry.reload()


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    install_toy(tmp_path, monkeypatch)
    yield
    registry.reload()


def test_plugin_is_listed(toy_plugin):
    assert {"image-hp-v1", "toy-zlib-v1"} <= set(registry.available())
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "lossless" in lines["toy-zlib-v1"] and "neco-toy-plugin 0.1" in lines["toy-zlib-v1"]
    assert registry.digest("toy-zlib-v1").hex()[:8] in lines["toy-zlib-v1"]
    assert "error: " in lines["toy-broken-v1"] and "weights missing" in lines["toy-broken-v1"]
    assert "image-hp-v1" in lines and "shipped" in lines["image-hp-v1"]
    assert "toyraw 0.1" in lines["toyraw"]


def test_plugin_model_codes_files(toy_plugin, tmp_path):
    pixels = smooth_image(40, 24)
    data = neco.encode(pixels, model="toy-zlib-v1")
    assert neco.info(data)["model_id"] == "toy-zlib-v1"
    assert np.array_equal(neco.decode_array(data), pixels)  # lossless toy
    (tmp_path / "in.neco").write_bytes(data)
    result = CliRunner().invoke(cli, ["decode", str(tmp_path / "in.neco"), "-f", "y4m", "-"])
    assert result.exit_code == 0 and result.stdout_bytes.startswith(b"YUV4MPEG2 W40 H24")


def test_plugin_codec_is_usable(toy_plugin):
    codec = bench_codecs.codecs()["toyraw"]()
    pixels = smooth_image(40, 24)
    assert np.array_equal(codec.decode(codec.encode(pixels, 50)), pixels)


def test_plugin_codec_runs_in_the_bench(toy_plugin):
    from neco.plugins.bench.codecs import make_codec
    codec = make_codec("toyraw")
    pixels = smooth_image(40, 24)
    assert np.array_equal(codec.decode(codec.encode(pixels, 50)), pixels)


def test_broken_and_missing_models_are_model_errors(toy_plugin):
    with pytest.raises(ModelError, match="weights missing"):
        neco.encode(smooth_image(40, 24), model="toy-broken-v1")
    with pytest.raises(ModelError, match="unknown model 'nope-v1'.*toy-zlib-v1"):
        neco.encode(smooth_image(40, 24), model="nope-v1")


def test_file_of_an_uninstalled_plugin_is_refused(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        install_toy(tmp_path, patch)
        data = neco.encode(smooth_image(40, 24), model="toy-zlib-v1")
    registry.reload()
    with pytest.raises(ModelError, match="unknown model 'toy-zlib-v1'"):
        neco.decode(data)


def test_exported_weights_are_readable_by_all_and_load_with_their_digest(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    model = ImageModel(ImageModelConfig(channels=8, latent_channels=8, hyper_channels=8, lambdas=(0.002, 0.03)))
    path = registry.export("tiny-test-v1", "image-hp", frozen_tensors(model), model.cfg.to_json())
    assert path.stat().st_mode & 0o777 == 0o644
    config, tensors = registry.load_tensors("tiny-test-v1")  # verifies the recorded SHA-256
    assert ImageModelConfig.from_json(config) == model.cfg and "cdf_tables" in tensors
