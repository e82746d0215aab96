"""Unsigned LEB128 varints, the integer encoding of every `.neco` length and header number.

Seven value bits per byte, least significant group first; the high bit of a byte is set when
another byte follows. Only the shortest encoding of a value is valid (no trailing 0x00 group),
so every value has exactly one byte form and a file re-encodes byte for byte. At most
`MAX_VARINT_BYTES` bytes, enough for any 64-bit value; a hostile file cannot make the reader
loop or build huge integers.
"""

from .errors import CorruptDataError, InvalidArgumentError

MAX_VARINT_BYTES = 10       # bytes: ceil(64 / 7)
MAX_VARINT = 2**64 - 1      # largest encodable value


def encode_varint(value: int) -> bytes:
    """Return the shortest LEB128 encoding of `value` (0 <= value <= MAX_VARINT)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VARINT:
        raise InvalidArgumentError(f"varint value must be an int in [0, 2**64), got {value!r}")
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int = 0, what: str = "varint") -> tuple[int, int]:
    """Decode the varint starting at `data[pos]`; return (value, position after it).

    Raises CorruptDataError, naming `what`, when the varint runs past the end of `data`, is
    longer than MAX_VARINT_BYTES, is not in its shortest form, or exceeds 64 bits.
    """
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise CorruptDataError(f"{what}: varint runs past the end of the data")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if byte == 0 and i > 0:
                raise CorruptDataError(f"{what}: varint is not in its shortest form")
            if value > MAX_VARINT:
                raise CorruptDataError(f"{what}: varint exceeds 64 bits")
            return value, pos + i + 1
    raise CorruptDataError(f"{what}: varint longer than {MAX_VARINT_BYTES} bytes")
