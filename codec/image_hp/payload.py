"""The FRAME payload of an image-hp model (docs/FORMAT.md section 10): the one reader and the one
writer of its bytes. Torch-free, so `neco info` reads it without loading a model.

    varint    rate position (low RATE_POSITION_BITS bits) | ADAPTATION_FLAG | TABLE_OFFSETS_FLAG
    u8, u8*n  the decoder adaptation's step exponent and one table row per adapted tensor (if flagged)
    u8        the table offsets' table row (if flagged)
    words     the ANS coder's words: adaptation symbols, offsets, z, then y (decoder.py)
"""

from typing import NamedTuple

from neco.formats.errors import CorruptDataError, UnsupportedError
from neco.formats.varint import decode_varint, encode_varint

from ..constants import NUM_SCALES, RATE_FRAC_BITS

RATE_POSITION_BITS = 16
ADAPTATION_FLAG = 1 << RATE_POSITION_BITS
TABLE_OFFSETS_FLAG = 1 << (RATE_POSITION_BITS + 1)
KNOWN_FLAGS = ADAPTATION_FLAG | TABLE_OFFSETS_FLAG   # higher bits are reserved
# Step exponents of the adaptation's deltas (step 2^-e) a decoder accepts.
MIN_STEP_EXPONENT, MAX_STEP_EXPONENT = 1, 16
TABLE_ROW_BITS = 8   # each table row in the blocks is a byte


class FirstField(NamedTuple):
    rate_fx: int            # rate position
    adapted: bool           # a decoder adaptation block follows
    table_offsets: bool     # table offsets follow (after the adaptation block, if any)
    end: int                # the position after the field


class PayloadHead(NamedTuple):
    """Everything before the coded words."""
    rate_fx: int
    adaptation: tuple[int, tuple[int, ...]] | None   # (step exponent, table row per tensor)
    offsets_row: int | None
    words: int                                       # position of the coded words


def read_first_field(payload: bytes) -> FirstField:
    """The payload's first varint: rate position and flags."""
    value, pos = decode_varint(payload, 0)
    if value >> RATE_POSITION_BITS & ~(KNOWN_FLAGS >> RATE_POSITION_BITS):
        raise UnsupportedError(f"FRAME payload flags {value >> RATE_POSITION_BITS:#x} are not known to this decoder")
    return FirstField(value & (ADAPTATION_FLAG - 1), bool(value & ADAPTATION_FLAG), bool(value & TABLE_OFFSETS_FLAG),
                      pos)


def read_head(payload: bytes, adapted_tensors: int) -> PayloadHead:
    """The fields before the coded words, each checked; `adapted_tensors` is the model's count."""
    first = read_first_field(payload)
    pos, adaptation, offsets_row = first.end, None, None
    if first.adapted:
        block = payload[pos:pos + 1 + adapted_tensors]
        if len(block) < 1 + adapted_tensors:
            raise CorruptDataError("FRAME payload ends inside its decoder adaptation block")
        step_exponent, rows = block[0], tuple(block[1:])
        if not MIN_STEP_EXPONENT <= step_exponent <= MAX_STEP_EXPONENT or max(rows) >= NUM_SCALES:
            raise CorruptDataError(f"decoder adaptation block out of range (step exponent {step_exponent}, "
                                   f"table rows up to {max(rows)})")
        adaptation, pos = (step_exponent, rows), pos + len(block)
    if first.table_offsets:
        if pos >= len(payload):
            raise CorruptDataError("FRAME payload ends inside its table offsets block")
        if payload[pos] >= NUM_SCALES:
            raise CorruptDataError(f"table offsets row {payload[pos]} is out of range")
        offsets_row, pos = payload[pos], pos + 1
    return PayloadHead(first.rate_fx, adaptation, offsets_row, pos)


def write(rate_fx: int, adaptation: tuple[int, tuple[int, ...]] | None, offsets_row: int | None,
          words: bytes) -> bytes:
    """The payload of a frame: the fields `read_head` reads, then the coded words."""
    first = rate_fx | (ADAPTATION_FLAG if adaptation else 0) | (TABLE_OFFSETS_FLAG if offsets_row is not None else 0)
    blocks = bytes((adaptation[0], *adaptation[1])) if adaptation else b""
    blocks += bytes((offsets_row,)) if offsets_row is not None else b""
    return encode_varint(first) + blocks + words


def flag_bits(first: int, flag: int) -> int:
    """Bits that setting `flag` adds to a first field whose value is `first` (its varint may
    grow by a byte, or two at rate positions below 2^7)."""
    return 8 * (len(encode_varint(first | flag)) - len(encode_varint(first)))


def describe(payload: bytes) -> dict:
    """What `neco info` shows of a FRAME: its rate level (the trained levels' scale, fractional
    between them) and whether it carries a decoder adaptation and table offsets."""
    first = read_first_field(payload)
    return {"rate_level": first.rate_fx / (1 << RATE_FRAC_BITS), "decoder_adaptation": first.adapted,
            "table_offsets": first.table_offsets}
