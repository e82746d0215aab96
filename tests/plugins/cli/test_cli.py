"""The ``neco`` command line, run in-process with click's CliRunner.

Model-running tests are few and use a 64x48 image; the rest replace `neco.encode` with a stub
or fail before any model runs.
"""

import errno
import io
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import neco
from conftest import PSNR_FLOOR, psnr, smooth_image
from neco.codec import registry
from neco.formats import MAGIC
from neco.plugins.cli import cli

WIDTH, HEIGHT = 64, 48


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.stderr, result.exception)
    assert result.stderr.startswith("neco: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


@pytest.fixture(scope="module")
def neco_bytes() -> bytes:
    """One real encode shared by the tests that need a valid file."""
    return neco.encode(Image.fromarray(smooth_image()), quality=75)


@pytest.fixture
def png_file(tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(png_bytes(smooth_image()))
    return path


@pytest.fixture
def fake_encode(monkeypatch):
    """Replace the model with a stub: tests of file handling need no real encode."""
    payload = MAGIC + b"stub payload"
    monkeypatch.setattr(neco, "encode", lambda image, **kwargs: payload)
    return payload


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"neco {neco.__version__}"


@pytest.mark.parametrize("command", [[], ["encode"], ["decode"], ["info"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_encode_decode_round_trip(tmp_path, png_file):
    coded, decoded = tmp_path / "out.neco", tmp_path / "back.png"
    result = run("encode", str(png_file), str(coded), "--quality", "80")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"-> {coded}: {WIDTH}x{HEIGHT}, " in result.stderr and " bpp, " in result.stderr
    assert coded.read_bytes().startswith(MAGIC)

    result = run("decode", str(coded), str(decoded))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    with Image.open(decoded) as image:
        assert image.format == "PNG" and image.size == (WIDTH, HEIGHT) and image.mode == "RGB"
        assert psnr(np.asarray(image), smooth_image()) > PSNR_FLOOR
    assert leftovers(tmp_path) == []


def test_decode_reference_prints_psnr(tmp_path, png_file, neco_bytes):
    coded = tmp_path / "in.neco"
    coded.write_bytes(neco_bytes)
    result = run("decode", str(coded), str(tmp_path / "back.png"), "--reference", str(png_file))
    assert result.exit_code == 0, result.stderr
    expected = psnr(neco.decode_array(neco_bytes), smooth_image())
    assert f"PSNR {expected:.2f} dB" in result.stderr


def test_decode_reference_of_other_size_is_an_error(tmp_path, neco_bytes):
    coded, other = tmp_path / "in.neco", tmp_path / "other.png"
    coded.write_bytes(neco_bytes)
    other.write_bytes(png_bytes(smooth_image(10, 10)))
    result = run("decode", str(coded), str(tmp_path / "back.png"), "--reference", str(other))
    assert result.exit_code == 1 and "differs" in result.stderr
    assert not (tmp_path / "back.png").exists()


def test_stdin_stdout(neco_bytes):
    result = run("encode", "-", "-", input=png_bytes(smooth_image()))
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(MAGIC)
    assert "<stdin> -> <stdout>" in result.stderr

    result = run("decode", "-", "-", "-f", "png", input=neco_bytes)
    assert result.exit_code == 0, result.stderr
    with Image.open(io.BytesIO(result.stdout_bytes)) as image:
        assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)


def test_decode_to_stdout_needs_format(neco_bytes):
    result = run("decode", "-", "-", input=neco_bytes)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--format" in result.stderr


def test_decode_unknown_output_extension(tmp_path, neco_bytes):
    (tmp_path / "in.neco").write_bytes(neco_bytes)
    result = run("decode", str(tmp_path / "in.neco"), str(tmp_path / "out.xyz"))
    assert result.exit_code == 2
    assert not (tmp_path / "out.xyz").exists()


def test_quality_and_bpp_exclusive(tmp_path, png_file):
    result = run("encode", str(png_file), str(tmp_path / "o.neco"), "-q", "50", "--bpp", "0.5")
    assert result.exit_code == 2
    assert not (tmp_path / "o.neco").exists()


def test_refuses_to_overwrite(tmp_path, png_file, fake_encode):
    out = tmp_path / "out.neco"
    out.write_bytes(b"precious")
    result = run("encode", str(png_file), str(out))
    assert_one_line_error(result)
    assert "--force" in result.stderr
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("flag", ["-y", "--force"])
def test_force_overwrites(tmp_path, png_file, fake_encode, flag):
    out = tmp_path / "out.neco"
    out.write_bytes(b"old")
    result = run("encode", str(png_file), str(out), flag)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == fake_encode
    assert leftovers(tmp_path) == []


def test_force_overwrite_real_decode(tmp_path, neco_bytes):
    src, out = tmp_path / "in.neco", tmp_path / "out.png"
    src.write_bytes(neco_bytes)
    out.write_bytes(b"old")
    assert run("decode", str(src), str(out)).exit_code == 1
    assert out.read_bytes() == b"old"
    result = run("decode", str(src), str(out), "-y")
    assert result.exit_code == 0, result.stderr
    assert Image.open(out).size == (WIDTH, HEIGHT)


def test_unreadable_image_creates_no_output(tmp_path, fake_encode):
    bad, out = tmp_path / "bad.png", tmp_path / "out.neco"
    bad.write_bytes(b"this is not an image")
    result = run("encode", str(bad), str(out))
    assert_one_line_error(result)
    assert "not an image" in result.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_failure_leaves_existing_output_untouched(tmp_path, fake_encode):
    bad, out = tmp_path / "bad.png", tmp_path / "out.neco"
    bad.write_bytes(png_bytes(smooth_image())[:60])  # truncated PNG
    out.write_bytes(b"precious")
    result = run("encode", str(bad), str(out), "--force")
    assert_one_line_error(result)
    assert out.read_bytes() == b"precious" and leftovers(tmp_path) == []


def test_disk_full_removes_temp_file(tmp_path, png_file, fake_encode, monkeypatch):
    out = tmp_path / "out.neco"
    out.write_bytes(b"precious")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    result = run("encode", str(png_file), str(out), "-y")
    assert_one_line_error(result)
    assert os.strerror(errno.ENOSPC) in result.stderr
    assert out.read_bytes() == b"precious" and leftovers(tmp_path) == []


def test_ctrl_c_exits_130_without_output(tmp_path, png_file, monkeypatch):
    out = tmp_path / "out.neco"

    def interrupted(image, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(neco, "encode", interrupted)
    result = run("encode", str(png_file), str(out))
    assert_one_line_error(result, exit_code=130)
    assert not out.exists() and leftovers(tmp_path) == []


def test_ctrl_c_while_writing(tmp_path, png_file, fake_encode, monkeypatch):
    out = tmp_path / "out.neco"
    out.write_bytes(b"precious")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    result = run("encode", str(png_file), str(out), "-y")
    assert_one_line_error(result, exit_code=130)
    assert out.read_bytes() == b"precious" and leftovers(tmp_path) == []


def test_stdout_gets_nothing_when_encode_fails(monkeypatch):
    def failing(image, **kwargs):
        raise neco.ModelError("no such model")

    monkeypatch.setattr(neco, "encode", failing)
    result = run("encode", "-", "-", input=png_bytes(smooth_image()))
    assert_one_line_error(result)
    assert result.stdout_bytes == b""
    assert "no such model" in result.stderr


def test_decompression_bomb(png_file, tmp_path, fake_encode, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64x48 > 2x the limit
    result = run("encode", str(png_file), str(tmp_path / "out.neco"))
    assert_one_line_error(result)
    assert "decompression bomb" in result.stderr


def test_missing_input(tmp_path, fake_encode):
    result = run("encode", str(tmp_path / "missing.png"), str(tmp_path / "out.neco"))
    assert_one_line_error(result)
    assert "missing.png" in result.stderr
    assert not (tmp_path / "out.neco").exists()


@pytest.mark.parametrize(
    "damage",
    [lambda d: d[: len(d) // 2], lambda d: d[:8], lambda d: b"garbage" * 10, lambda d: b""],
    ids=["truncated", "header-only", "garbage", "empty"],
)
@pytest.mark.parametrize("command", ["decode", "info"])
def test_corrupt_neco(tmp_path, neco_bytes, damage, command):
    bad = tmp_path / "bad.neco"
    bad.write_bytes(damage(neco_bytes))
    args = [str(tmp_path / "out.png")] if command == "decode" else []
    result = run(command, str(bad), *args)
    assert_one_line_error(result)
    assert not (tmp_path / "out.png").exists() and leftovers(tmp_path) == []


def test_flipped_payload_byte(tmp_path, neco_bytes):
    damaged = bytearray(neco_bytes)
    damaged[-5] ^= 0xFF
    (tmp_path / "bad.neco").write_bytes(bytes(damaged))
    result = run("decode", str(tmp_path / "bad.neco"), str(tmp_path / "out.png"))
    assert_one_line_error(result)
    assert not (tmp_path / "out.png").exists()


def test_info(tmp_path, neco_bytes):
    path = tmp_path / "x.neco"
    path.write_bytes(neco_bytes)
    result = run("info", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    details = json.loads(result.stdout)
    assert (details["width"], details["height"]) == (WIDTH, HEIGHT)
    assert details["size_bytes"] == len(neco_bytes)
    assert isinstance(details["weights_digest"], str) and details["chunks"]
    frame = next(chunk for chunk in details["chunks"] if chunk["type"] == "FRAME")
    assert frame["rate_level"] == registry.get_encoder(details["model_id"]).rate_fx_from_quality(75) / 256
    assert frame["decoder_adaptation"] in (True, False)

    result = run("info", "-", input=neco_bytes)
    assert result.exit_code == 0, result.stderr
    assert "<stdin>" in result.stdout and "model_id:" in result.stdout
    assert str(WIDTH) in result.stdout
    assert "rate_level=" in result.stdout and "decoder_adaptation=" in result.stdout
