"""Table offsets: per-image corrections to the entropy model's scale choice, coded in the file.

The context model picks each latent's table row (its Gaussian's scale) from what is decoded
before it. Per image and channel those choices are often off by a row or two: a channel that
is nearly always zero in this image wants narrower tables than the model predicts, one with rare
large values wider ones. The encoder knows every symbol and every row once it has walked the
latents, so it can price each channel's symbols under rows shifted by -SPAN..SPAN exactly and
send a shift per channel (M small integers, entropy-coded with one table row; per channel the
shift that minimizes its symbols' bits plus its own under that row) when that saves more than
it costs (by their ideal code lengths). On Kodak at effort 0 (17 qualities) this
lowered the mean rate by 1.0-1.4 % at quality 0-25 and 0.4-0.6 % at 50-100 (BD-rate -0.71 %),
net of the offsets' own bits; 406 of the 408 files shrank, two grew by one byte (the coded
words come in 32-bit units, so a few bits saved can still round up). Two sets, one for the
anchors and one for the other latents, saved less than one (kodim01/05/09/13/17/21 at quality
0 / 30 / 60 / 90: 0.77 / 0.39 / 0.37 / 0.27 % of y's bits against 0.99 / 0.52 / 0.43 / 0.29 %).
The same offsets for the hyper-latents z (per channel, chosen the same way, their own bits and
row byte counted) would save 0.16 / 0.02 / 0.01 / 0.02 / 0.08 % of the file at quality 0 / 10 /
30 / 50 / 90 (kodim01/05/09/13/17/23, effort 0): not worth a field.

The decoder adds channel c's offset to the row of every latent symbol of channel c, clamped to
the table: it changes which table codes a symbol, never a mean or a decoded value, so the
context model's inputs, and everything the synthesis sees, are the same with or without it.

Coding (docs/FORMAT.md, section 10): bit 17 of the payload's first varint, a u8 table row after
the adaptation block, and the M offsets as symbols after the adaptation's, before z.
"""

from dataclasses import dataclass

import torch

from neco.formats.errors import CorruptDataError

from .constants import NUM_SCALES, SYMBOL_MAX
from .entropy import EntropyCoder

# Offsets the encoder tries, -SPAN..SPAN rows (each row ~13 % in scale).
SPAN = 8


@dataclass(frozen=True)
class TableOffsets:
    """One row offset per latent channel (int64, (M,)), coded with table row `row`."""
    row: int
    offsets: torch.Tensor

    def shifted(self, channels: slice, indices: torch.Tensor) -> torch.Tensor:
        """Table rows (channels of `channels` first, (C, ...)) with these channels' offsets added."""
        shift = self.offsets[channels].view(-1, *([1] * (indices.dim() - 1)))
        return (indices + shift).clamp(0, NUM_SCALES - 1)

    def header(self) -> bytes:
        return bytes((self.row,))

    def coded(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(symbols, table rows) in coding order (after the adaptation's, before z)."""
        return [(self.offsets, torch.full_like(self.offsets, self.row))]

    @classmethod
    def decode(cls, coder: EntropyCoder, decoder, row: int, channels: int) -> "TableOffsets":
        return cls(row, coder.decode(decoder, torch.full((channels,), row, dtype=torch.int64)))


def choose(coder: EntropyCoder, coded: list[tuple[slice, torch.Tensor, torch.Tensor]], channels: int,
           flag_bits: int) -> TableOffsets | None:
    """The offsets that code these latents in the fewest bits, counting their own symbols, their
    row byte and `flag_bits` (what setting the flag adds to the first varint), or None when no
    offsets save bits. `coded` holds (channel range, symbols (C, n), table rows (C, n)) per step."""
    table_bits = torch.from_numpy(coder.code_lengths)
    moves = torch.arange(-SPAN, SPAN + 1)
    bits = torch.zeros(channels, len(moves), dtype=torch.float64)      # channel, offset
    for group, symbols, rows in coded:
        columns = symbols + SYMBOL_MAX
        for k, move in enumerate(moves.tolist()):   # one shift at a time: memory of one step's symbols
            bits[group, k] += table_bits[(rows + move).clamp(0, NUM_SCALES - 1), columns].sum(-1)
    unshifted = float(bits[:, SPAN].sum())
    # for every row of the offsets' table: each channel's best offset under it, and the total
    totals = bits[None] + table_bits[:, moves + SYMBOL_MAX][:, None]      # row, channel, offset
    best, picks = totals.min(-1)
    costs = best.sum(-1) + 8 + flag_bits
    row = int(torch.argmin(costs))
    if float(costs[row]) >= unshifted:
        return None
    return TableOffsets(row, moves[picks[row]].to(torch.int64))


def read_row(payload: bytes, pos: int) -> tuple[int, int]:
    """The offsets' table row at payload[pos] and the position after it."""
    if pos >= len(payload):
        raise CorruptDataError("FRAME payload ends inside its table offsets block")
    if payload[pos] >= NUM_SCALES:
        raise CorruptDataError(f"table offsets row {payload[pos]} is out of range")
    return payload[pos], pos + 1
