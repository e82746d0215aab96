"""neco.plugins.atomic: the temporary file made before the work, and errors that name the target."""

import errno
import os

import pytest

from neco.plugins import atomic


def test_reserved_file_is_the_one_renamed(tmp_path):
    target = tmp_path / "out.bin"
    reserved = atomic.reserve(target)
    tmp, _fd = reserved
    assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".out.bin.")
    with atomic.atomic_file(target, reserved=reserved) as f:
        f.write(b"data")
    assert target.read_bytes() == b"data" and os.listdir(tmp_path) == ["out.bin"]


def test_release_removes_an_unused_reservation(tmp_path):
    atomic.release(atomic.reserve(tmp_path / "out.bin"))
    assert os.listdir(tmp_path) == []


def test_reserve_in_a_missing_folder_names_the_target(tmp_path):
    target = tmp_path / "missing" / "out.bin"
    with pytest.raises(FileNotFoundError) as caught:
        atomic.reserve(target)
    assert caught.value.filename == str(target) and caught.value.filename2 is None


def test_a_failed_rename_names_the_target(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"

    def refused(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), src, None, dst)

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(PermissionError) as caught:
        atomic.write_atomic(target, b"data")
    assert caught.value.filename == str(target) and caught.value.filename2 is None
    assert ".tmp" not in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_no_room_names_the_target_other_errors_keep_their_names(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(OSError) as full:
        with atomic.atomic_file(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert full.value.filename == str(target)
    with pytest.raises(OSError) as other:  # e.g. reading the input failed: not about the target
        with atomic.atomic_file(target):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
    assert other.value.filename is None
    assert os.listdir(tmp_path) == []
