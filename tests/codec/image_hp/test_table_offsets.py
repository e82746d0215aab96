"""Table offsets (codec/image_hp/offsets.py): per-image, per-channel shifts of the latents' table rows;
the flags' and blocks' share of the payload."""

import numpy as np
import pytest
import torch

import neco
from neco.codec import registry
from neco.codec.image_hp import encoder, offsets
from neco.codec.constants import SYMBOL_MAX
from neco.codec.session import encode_array
from neco.codec.image_hp.payload import ADAPTATION_FLAG, TABLE_OFFSETS_FLAG, flag_bits, read_first_field
from neco.formats import ChunkType, encode_varint, read_container, write_container
from conftest import photo_crop


@pytest.fixture(scope="module")
def coder():
    return registry.get_encoder(registry.DEFAULT_IMAGE_MODEL)


def _frame(data: bytes) -> bytes:
    return next(c.payload for c in read_container(data).chunks if c.type == ChunkType.FRAME)


def _bits(coder, coded, offsets) -> float:
    table_bits = coder.coder.code_lengths
    rows = [r if offsets is None else offsets.shifted(ch, r) for ch, _, r in coded]
    return sum(float(table_bits[r.numpy(), s.numpy() + SYMBOL_MAX].sum()) for (_, s, _), r in zip(coded, rows))


def test_offsets_narrow_and_widen_the_tables_channels_need(coder):
    """A channel of zeros coded with wide tables gets a negative offset, one of large values
    coded with narrow tables a positive one, a channel its tables fit none; the offsets pay for
    their own bits, and nothing is sent where they would not."""
    gen = torch.Generator().manual_seed(0)
    zeros = torch.zeros(1, 4000, dtype=torch.int64)
    large = torch.randint(-6, 7, (1, 4000), generator=gen)
    coded = [(slice(0, 2), torch.cat([zeros, large]), torch.cat([torch.full_like(zeros, 20), torch.zeros_like(large)])),
             (slice(2, 3), zeros, torch.zeros_like(zeros))]
    offsets = encoder.choose_offsets(coder.coder, coded, 3, 8)
    assert offsets is not None and offsets.offsets[0] < 0 < offsets.offsets[1] and offsets.offsets[2] == 0
    own = 8 + 8 + float(coder.coder.code_lengths[offsets.row, offsets.offsets.numpy() + SYMBOL_MAX].sum())
    assert _bits(coder, coded, offsets) + own < _bits(coder, coded, None)
    fitting = [(slice(0, 1), zeros[:, :50], torch.zeros_like(zeros[:, :50]))]
    assert encoder.choose_offsets(coder.coder, fitting, 1, 8) is None
    # 600 zeros at row 5: narrower rows save ~12 bits, more than the offset's own symbol costs
    # but less than that plus the row byte and the flag's varint byte
    slight = [(slice(0, 1), zeros[:, :600], torch.full_like(zeros[:, :600], 5))]
    assert encoder.choose_offsets(coder.coder, slight, 1, 8) is None
    assert encoder.choose_offsets(coder.coder, slight, 1, -8) is not None   # were the fixed bits free


def test_shifted_rows_stay_in_the_table():
    shifts = offsets.TableOffsets(0, torch.tensor([-5, 0, 7]))
    rows = torch.tensor([[2, 40], [63, 0], [60, 1]])
    assert torch.equal(shifts.shifted(slice(0, 3), rows), torch.tensor([[0, 35], [63, 0], [63, 8]]))
    assert torch.equal(shifts.shifted(slice(1, 3), rows[1:]), torch.tensor([[63, 0], [63, 8]]))


def test_offsets_change_the_bits_not_the_picture(coder, monkeypatch):
    """A file with table offsets decodes to the very pixels of the same latents coded without
    them, in fewer bytes: the decoder applies the offsets the encoder chose."""
    pixels = photo_crop(320, 256, index=2)
    with_offsets = neco.encode(pixels, quality=30)
    assert read_first_field(_frame(with_offsets)).table_offsets
    monkeypatch.setattr(encoder, "choose_offsets", lambda *args: None)
    without = neco.encode(pixels, quality=30)
    assert not read_first_field(_frame(without)).table_offsets
    assert len(with_offsets) < len(without)
    assert np.array_equal(neco.decode_array(with_offsets), neco.decode_array(without))
    assert neco.info(with_offsets)["chunks"][0]["table_offsets"] is True


def test_bad_offsets_blocks_are_refused(coder):
    """A payload that ends where the offsets' row belongs, or names a row past the table, is corrupt."""
    data = neco.encode(photo_crop(320, 256, index=2), quality=30)
    payload = _frame(data)
    first = read_first_field(payload)
    assert first.table_offsets
    row_at = first.end + (1 + len(coder.decoder.adapted_shapes) if first.adapted else 0)
    header = read_container(data).header
    for bad in (payload[:row_at], payload[:row_at] + b"\x40" + payload[row_at + 1:]):
        with pytest.raises(neco.CorruptDataError):
            neco.decode_array(write_container(header, [(ChunkType.FRAME, bad)]))
    # the flag is bit 17 of the first varint
    assert TABLE_OFFSETS_FLAG == 1 << 17 and payload[:first.end] == encode_varint(
        first.rate_fx | TABLE_OFFSETS_FLAG | first.adapted << 16)


def test_stats_count_every_coded_symbol():
    """stats["cross_entropy_bits"] covers the adaptation's and the offsets' symbols as well as
    z and y: the coded words exceed it only by the ANS coder's end (its 64-bit state and the
    32-bit word granularity), not by the blocks' hundreds of bits."""
    result = encode_array(photo_crop(320, 256, index=2), quality=30)
    first = read_first_field(_frame(result.data))
    assert first.adapted and first.table_offsets
    assert 0 <= result.stats["coded_bits"] - result.stats["cross_entropy_bits"] < 96


def test_flag_bits_count_the_varint_bytes_a_flag_adds():
    assert flag_bits(0, ADAPTATION_FLAG) == 16            # 1 byte -> 3
    assert flag_bits(1 << 7, ADAPTATION_FLAG) == 8        # 2 -> 3
    assert flag_bits(5 | ADAPTATION_FLAG, TABLE_OFFSETS_FLAG) == 0
