"""The first field of an image-profile FRAME payload (docs/FORMAT.md section 10): the rate
position and the flags. Torch-free, so `neco info` reads it without loading a model."""

from typing import NamedTuple

from neco.formats.errors import UnsupportedError
from neco.formats.varint import decode_varint, encode_varint

from .constants import RATE_FRAC_BITS

# The payload's first varint holds the rate position in its low RATE_POSITION_BITS bits; the bit
# above marks a decoder adaptation block (adapt.py) after the varint, the next the table offsets
# (table_offsets.py); higher bits are reserved.
RATE_POSITION_BITS = 16
ADAPTATION_FLAG = 1 << RATE_POSITION_BITS
TABLE_OFFSETS_FLAG = 1 << (RATE_POSITION_BITS + 1)
KNOWN_FLAGS = ADAPTATION_FLAG | TABLE_OFFSETS_FLAG


class FirstField(NamedTuple):
    rate_fx: int            # rate position
    adapted: bool           # a decoder adaptation block follows
    table_offsets: bool     # table offsets follow (after the adaptation block, if any)
    end: int                # the position after the field


def read_rate_position(payload: bytes) -> FirstField:
    """The first field of a FRAME payload."""
    value, pos = decode_varint(payload, 0)
    if value >> RATE_POSITION_BITS & ~(KNOWN_FLAGS >> RATE_POSITION_BITS):
        raise UnsupportedError(f"FRAME payload flags {value >> RATE_POSITION_BITS:#x} are not known to this decoder")
    return FirstField(value & (ADAPTATION_FLAG - 1), bool(value & ADAPTATION_FLAG), bool(value & TABLE_OFFSETS_FLAG),
                      pos)


def flag_bits(first: int, flag: int) -> int:
    """Bits that setting `flag` adds to a first field whose value is `first` (its varint may
    grow by a byte, or two at rate positions below 2^7)."""
    return 8 * (len(encode_varint(first | flag)) - len(encode_varint(first)))


def describe(payload: bytes) -> dict:
    """What `neco info` shows of a FRAME: its rate level (the trained levels' scale, fractional
    between them) and whether it carries a decoder adaptation and table offsets."""
    first = read_rate_position(payload)
    return {"rate_level": first.rate_fx / (1 << RATE_FRAC_BITS), "decoder_adaptation": first.adapted,
            "table_offsets": first.table_offsets}
