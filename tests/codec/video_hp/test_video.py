"""The video profile (codec/video_hp, issue 38): I/P streams round trip through the API, P frames
skip static blocks, seeking gives the sequential pixels, INDEX key flags match the frame types,
lenient decoding resumes at the next key frame, and older clips (intra-only) still decode."""

import io
import warnings

import numpy as np
import torch
import pytest

import neco
from conftest import PSNR_FLOOR, photo_crop, psnr
from neco.codec import registry
from neco.codec.video_hp import payload
from neco.formats import ChunkType, CorruptDataError, UnsupportedError, read_container, write_container


def clip(count: int = 6, width: int = 64, height: int = 64, index: int = 2) -> list[np.ndarray]:
    """Frames of a photo whose right half pans while the left half stays still."""
    base = photo_crop(width + 2 * count + 8, height + count + 8, index=index)
    frames = []
    for t in range(count):
        frame = base[4:4 + height, 4:4 + width].copy()
        half = width // 2
        frame[:, half:] = base[t:t + height, half + 2 * t:width + 2 * t]
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def coded():
    frames = clip()
    out = io.BytesIO()
    result = neco.encode_frames(frames, out, quality=50, gop=4)
    return frames, out.getvalue(), result


def test_round_trip_and_frame_types(coded):
    frames, data, result = coded
    assert result.profile == "video" and result.key_frames == 2 and result.model_id == registry.DEFAULT_VIDEO_MODEL
    container = read_container(data)
    assert container.header.profile == "video" and container.version == (1, 1)
    types = [payload.read_head(p).frame_type for p in container.frames]
    assert types == [payload.FRAME_I, payload.FRAME_P, payload.FRAME_P, payload.FRAME_P, payload.FRAME_I,
                     payload.FRAME_P]
    assert container.key_frames == [t == payload.FRAME_I for t in types]
    sizes = [len(p) for p in container.frames]
    assert max(sizes[1:4]) < 0.8 * sizes[0]            # the still half is skipped
    with neco.open(data) as reader:
        decoded = list(reader)
    assert len(decoded) == 6 and all(psnr(a, b) > PSNR_FLOOR + 5 for a, b in zip(decoded, frames))


def test_skipped_blocks_copy_the_reference_latents(coded):
    _, data, _ = coded
    container = read_container(data)
    h = container.header
    stream = registry.get_decoder(h.model_id).stream()
    _, _, y0, m0, _ = stream.latents(container.frames[0], h.height, h.width)
    _, _, y1, m1, _ = stream.latents(container.frames[1], h.height, h.width)
    # the left half (latent columns 0-1 of 4) is still: its blocks are copied, symbols and means
    assert payload.read_head(container.frames[1]).skip_prob > 0
    assert (y1[:, :, :2] == y0[:, :, :2]).all() and (m1[:, :, :2] == m0[:, :, :2]).all()


def test_seeking_gives_the_sequential_pixels(coded):
    _, data, _ = coded
    sequential = list(neco.open(data))
    with neco.open(data) as reader:
        for i in (5, 2, 3, 0, 4, 1, 1, 3):
            assert np.array_equal(reader.frame(i), sequential[i]), i


def test_info_shows_frame_types(coded):
    _, data, _ = coded
    details = neco.info(data)
    assert details["profile"] == "video" and details["key_frames"] == 2
    frames = [c for c in details["chunks"] if c["type"] == "FRAME"]
    assert [c["frame_type"] for c in frames] == list("IPPPIP") and all(c["length"] > 0 for c in frames)


def _rewritten(data: bytes, frames=None, key_frames="same") -> bytes:
    container = read_container(data)
    payloads = container.frames if frames is None else frames
    keys = container.key_frames if key_frames == "same" else key_frames
    return write_container(container.header.__class__(**{**container.header.__dict__, "num_frames": len(payloads)}),
                           [(ChunkType.FRAME, p) for p in payloads], index=True, key_frames=keys)


def test_index_flags_must_match_the_frame_types(coded):
    _, data, _ = coded
    wrong = _rewritten(data, key_frames=[True, True, False, False, True, False])
    with neco.open(wrong) as reader, pytest.raises(CorruptDataError, match="key-frame flags"):
        reader.frame(3)


def test_a_stream_starting_with_a_p_frame_is_refused(coded):
    _, data, _ = coded
    frames = read_container(data).frames[1:4]
    bad = _rewritten(data, frames, key_frames=None)
    with pytest.raises(CorruptDataError, match="frame before it"):
        list(neco.open(bad))
    with neco.open(bad) as reader, pytest.raises(CorruptDataError, match="first frame"):
        reader.frame(0)


def test_lenient_resumes_at_the_next_key_frame(coded):
    _, data, _ = coded
    container = read_container(data)
    damaged = bytearray(data)
    offset = container.chunks[2].offset          # FRAME 2 (a P frame): damage its payload's CRC
    damaged[offset + 10] ^= 0xFF
    sequential = list(neco.open(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = neco.open(bytes(damaged), strict=False)
        decoded = list(reader)
    assert len(decoded) == 4                     # frames 0, 4, 5 and 1: 2 lost, 3 lost (no reference)
    assert np.array_equal(decoded[0], sequential[0]) and np.array_equal(decoded[1], sequential[1])
    assert np.array_equal(decoded[2], sequential[4]) and np.array_equal(decoded[3], sequential[5])
    assert any("frame 2 lost" in line for line in reader.lost)
    assert any("frame 3 lost" in line and "next key frame" in line for line in reader.lost)


def test_gop_1_codes_only_key_frames():
    frames = clip(2, 64, 64)
    out = io.BytesIO()
    result = neco.encode_frames(frames, out, quality=30, gop=1)
    assert result.key_frames == 2 and read_container(out.getvalue()).key_frames == [True, True]


def test_profiles_and_their_defaults():
    frames = clip(1, 64, 64)
    out = io.BytesIO()
    result = neco.encode_frames(frames, out, bpp=0.5)            # a bpp target: intra frames, as before
    container = read_container(out.getvalue())
    assert result.profile == "image" and container.header.profile == "image" and container.version == (1, 0)
    out = io.BytesIO()
    assert neco.encode_frames(frames, out, quality=30, profile="image").profile == "image"
    for wrong in (dict(profile="video", bpp=0.5), dict(profile="sound"), dict(gop=0), dict(gop=2.5),
                  dict(model=registry.DEFAULT_IMAGE_MODEL, profile="video")):
        with pytest.raises(neco.InvalidArgumentError):
            neco.encode_frames(frames, io.BytesIO(), **wrong)


def test_a_p_frame_alone_does_not_decode(coded):
    _, data, _ = coded
    container = read_container(data)
    h = container.header
    with pytest.raises(CorruptDataError, match="frame before it"):
        registry.get_decoder(h.model_id).decode(container.frames[1], h.height, h.width)
    with pytest.raises(neco.UnsupportedError, match="frame type 7"):
        payload.read_head(b"\x07" + container.frames[1][1:])


def test_an_intra_only_clip_of_the_previous_writer_still_decodes_and_seeks():
    """The golden clip (image-hp-v1, profile image, format 1.0): every frame a key frame."""
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "golden" / "image-hp-v1" / "clip-2-frames.neco"
    data = path.read_bytes()
    container = read_container(data)
    assert container.version == (1, 0) and container.header.profile == "image" and container.key_frames is None
    sequential = list(neco.open(data))
    with neco.open(data) as reader:
        assert [np.array_equal(reader.frame(i), sequential[i]) for i in (1, 0)] == [True, True]
    assert neco.info(data)["key_frames"] == 2


def drifting(count: int = 3, size: int = 64) -> list[np.ndarray]:
    """A still photo whose brightness drifts by 8 levels a frame: too changed to copy, too
    alike to code afresh -- the blocks inter coding is for."""
    base = photo_crop(size, size, index=4).astype(np.int16)
    return [np.clip(base + 8 * t, 0, 255).astype(np.uint8) for t in range(count)]


def test_inter_blocks_are_coded_about_the_reference():
    frames = drifting()
    out = io.BytesIO()
    neco.encode_frames(frames, out, quality=50, gop=3)
    container = read_container(out.getvalue())
    h = container.header
    head = payload.read_head(container.frames[1])
    assert head.frame_type == payload.FRAME_P and head.inter_prob > 0
    stream = registry.get_decoder(h.model_id).stream()
    _, _, y0, m0, _ = stream.latents(container.frames[0], h.height, h.width)
    _, _, y1, m1, _ = stream.latents(container.frames[1], h.height, h.width)
    # an inter block's means are the reference's decoded values, which its symbols correct
    same_mean = (m1 == (y0 << 10) + m0).all(0)
    assert same_mean.any() and not torch.equal(y1[:, same_mean], y0[:, same_mean])
    decoded = list(neco.open(out.getvalue()))
    assert all(psnr(a, b) > PSNR_FLOOR + 5 for a, b in zip(decoded, frames))
    with neco.open(out.getvalue()) as reader:
        assert np.array_equal(reader.frame(2), decoded[2]) and np.array_equal(reader.frame(1), decoded[1])


@pytest.mark.parametrize("head, message", [(b"\x02\x80\x80\x00\x00", "leave intra"),
                                           (b"\x02\x00\x00\x40\x00", "shift"),
                                           (b"\x02\x00\x00", "block-mode fields")])
def test_p_frame_heads_out_of_range_are_corrupt(head, message):
    with pytest.raises(CorruptDataError, match=message):
        payload.read_head(head)
    assert payload.read_head(b"\x02\x80\x7f\x3f").mode_probs == (1, 128, 127)


def test_reserved_frame_type_is_unsupported():
    """Type 1 was a development version's P frame (never released): refused like any unknown type."""
    with pytest.raises(UnsupportedError, match="frame type 1"):
        payload.read_head(b"\x01\x80")
