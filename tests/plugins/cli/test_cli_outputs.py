"""OUT is checked before any work: its temporary file is created first, in its folder, and every
error names OUT as the user gave it (issue 42)."""

import errno
import os
import time

import pytest
from click.testing import CliRunner

import neco
from neco.plugins.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def temporaries(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def can_create_in(directory: str) -> bool:
    """Whether a file can be created in `directory` (root ignores permission bits; /sys refuses even root)."""
    try:
        probe = os.path.join(directory, f".neco-probe-{os.getpid()}")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return False
    os.unlink(probe)
    return True


@pytest.fixture
def work(monkeypatch):
    """The codec replaced by stubs that record whether any work ran."""
    calls = []

    def record(name):
        def stub(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} ran although OUT cannot be written")
        return stub

    for name in ("encode", "encode_frames", "decode", "info", "open"):
        monkeypatch.setattr(neco, name, record(name))
    return calls


@pytest.fixture
def inputs(tmp_path):
    png, data = tmp_path / "in.png", tmp_path / "in.neco"
    from PIL import Image
    Image.new("RGB", (8, 8), "gray").save(png)
    data.write_bytes(b"not looked at")
    return {"encode": str(png), "decode": str(data)}


@pytest.fixture
def unwritable_targets(tmp_path):
    """(OUT, why) for targets whose folder cannot be written here: always a missing folder; /sys,
    /proc and a chmod 555 folder where they refuse (not the last as root)."""
    targets = [(str(tmp_path / "missing" / "x.neco"), "missing folder")]
    if os.path.isdir("/sys") and not can_create_in("/sys"):
        targets.append(("/sys/x.neco", "/sys"))
    if os.path.isdir("/proc") and not can_create_in("/proc"):
        targets.append(("/proc/x.neco", "/proc"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if not can_create_in(str(locked)):  # root writes through permission bits
        targets.append((str(locked / "x.neco"), "chmod 555 folder"))
    yield targets
    locked.chmod(0o755)


@pytest.mark.parametrize("command,suffix", [("encode", ".neco"), ("decode", ".png"), ("decode", ".y4m")])
def test_unwritable_output_fails_at_once_naming_it(work, inputs, unwritable_targets, command, suffix):
    for target, why in unwritable_targets:
        out = os.path.splitext(target)[0] + suffix
        start = time.perf_counter()
        result = run(command, inputs[command], out)
        elapsed = time.perf_counter() - start
        assert result.exit_code == 1, (why, result.output, result.exception)
        assert result.stderr.startswith(f"neco: error: {out}: "), (why, result.stderr)  # OUT as given
        assert ".tmp" not in result.stderr and result.stderr.count("\n") == 1
        assert work == [], why  # refused before any work
        assert elapsed < 1.0, (why, elapsed)


def test_unwritable_system_folders_are_refused():
    """The case of the issue, `neco encode kodim01.png /sys/x.neco`, where this machine has /sys."""
    if not os.path.isdir("/sys") or can_create_in("/sys"):
        pytest.skip("no unwritable /sys here")
    result = run("encode", "missing-input.png", "/sys/x.neco")
    assert result.stderr.startswith("neco: error: /sys/x.neco: "), result.stderr  # OUT first, before IN


def test_the_reserved_temporary_file_is_the_one_written(tmp_path, inputs, monkeypatch):
    """The temporary file exists before the codec runs, is renamed over OUT, and nothing is left."""
    seen = {}

    def encode(image, **kwargs):
        seen["during"] = temporaries(tmp_path)
        return b"coded"

    monkeypatch.setattr(neco, "encode", encode)
    out = tmp_path / "out.neco"
    result = run("encode", inputs["encode"], str(out))
    assert result.exit_code == 0, result.output
    assert len(seen["during"]) == 1 and seen["during"][0].startswith(".out.neco.")
    assert out.read_bytes() == b"coded" and temporaries(tmp_path) == []


@pytest.mark.parametrize("failure", [KeyboardInterrupt, ValueError], ids=["ctrl-c", "bug"])
def test_a_failed_run_removes_the_reserved_file(tmp_path, inputs, monkeypatch, failure):
    def encode(image, **kwargs):
        raise failure()

    monkeypatch.setattr(neco, "encode", encode)
    out = tmp_path / "out.neco"
    run("encode", inputs["encode"], str(out))
    assert not out.exists() and temporaries(tmp_path) == []


def test_a_failed_input_removes_the_reserved_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = run("encode", str(bad), str(tmp_path / "out.neco"))
    assert result.exit_code == 1
    assert temporaries(tmp_path) == [] and os.listdir(tmp_path) == ["bad.png"]


def test_directories_are_named_in_one_wording(tmp_path, inputs):
    """IN or OUT a folder: the OS's own words (what a read of a folder says elsewhere), in both."""
    folder = tmp_path / "folder"
    folder.mkdir()
    wording = os.strerror(errno.EISDIR)
    as_input = run("encode", str(folder), str(tmp_path / "out.neco"))
    as_output = run("encode", inputs["encode"], str(folder), "-y")
    with pytest.raises(IsADirectoryError) as by_the_os:
        open(folder, "rb")
    assert as_input.stderr == f"neco: error: {folder}: {wording}\n"
    assert as_output.stderr == f"neco: error: {folder}: {wording}\n"
    assert by_the_os.value.strerror == wording
