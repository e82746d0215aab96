"""Frame sequences: `neco.encode_frames` streams a VIDEO container, `neco.open` decodes and seeks."""

from fractions import Fraction
import io

import numpy as np
import pytest

import neco
from conftest import PSNR_FLOOR, psnr, smooth_image
from neco.formats import ChunkType, CorruptDataError, InvalidArgumentError, Kind, UnsupportedError, read_container

W, H = 64, 48


def clip(n: int = 3) -> list[np.ndarray]:
    base = smooth_image(W, H)
    return [np.roll(base, 8 * i, axis=1) for i in range(n)]


class Pipe(io.RawIOBase):
    """A stream that cannot seek, like stdin."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


@pytest.fixture(scope="module")
def video() -> bytes:
    out = io.BytesIO()
    result = neco.encode_frames(iter(clip()), out, quality=60, frame_rate=Fraction(30000, 1001))
    assert result.frames == 3 and result.bytes_written == len(out.getvalue())
    return out.getvalue()


def test_container_layout(video):
    container = read_container(video)
    header = container.header
    assert (header.kind, header.width, header.height) == (Kind.VIDEO, W, H)
    assert header.num_frames == 0 and header.frame_rate == Fraction(30000, 1001)  # a generator: count unknown
    assert [c.type for c in container.chunks] == [ChunkType.FRAME] * 3 + [ChunkType.INDEX]


def test_iterate_and_seek_agree(video):
    with neco.open(io.BytesIO(video)) as reader:
        frames = list(reader)
        assert reader.frame_count() == 3 and len(frames) == 3
        assert all(psnr(a, b) > PSNR_FLOOR for a, b in zip(frames, clip()))
        assert np.array_equal(reader.frame(2), frames[2])
        assert np.array_equal(next(iter(reader)), frames[0])  # a seekable input can be read again
        with pytest.raises(InvalidArgumentError):
            reader.frame(3)


def test_pipe_streams_once(video):
    reader = neco.open(Pipe(video))
    assert len(list(reader)) == 3
    with pytest.raises(UnsupportedError):
        reader.frame(0)


def test_list_declares_count_and_file_paths(tmp_path):
    path = tmp_path / "clip.neco"
    neco.encode_frames(clip(2), path, quality=30)
    with neco.open(path) as reader:
        assert reader.header.num_frames == 2 and reader.header.frame_rate is None
        assert reader.frame(1).shape == (H, W, 3)


def test_truncated_stream_fails_after_good_frames(video):
    frames = []
    with pytest.raises(CorruptDataError):
        for frame in neco.open(io.BytesIO(video[:-3])):
            frames.append(frame)
    assert len(frames) == 3


def test_frame_checks():
    with pytest.raises(InvalidArgumentError):
        neco.encode_frames([], io.BytesIO())
    with pytest.raises(InvalidArgumentError):
        neco.encode_frames([smooth_image(W, H), smooth_image(32, 32)], io.BytesIO())
    with pytest.raises(InvalidArgumentError):
        neco.encode_frames(clip(1), io.BytesIO(), quality=50, bpp=0.5)


def test_still_image_api_is_unchanged(video):
    with pytest.raises(UnsupportedError):
        neco.decode(video)
    image = neco.encode(smooth_image(W, H), quality=60)
    assert neco.open(image).frame_count() == 1  # a still image reads as one frame


def test_progress_callback_once_per_frame():
    calls = []
    neco.encode_frames(clip(), io.BytesIO(), quality=30, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    calls.clear()
    neco.encode_frames(iter(clip(2)), io.BytesIO(), quality=30, progress=lambda *counts: calls.append(counts))
    assert calls == [(1, None), (2, None)]  # a generator: the total is unknown
