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

from ..constants import NUM_SCALES, SYMBOL_MAX
from ..entropy import EntropyCoder

@dataclass(frozen=True)
class TableOffsets:
    """One row offset per latent channel (int64, (M,)), coded with table row `row`."""
    row: int
    offsets: torch.Tensor

    def shifted(self, channels: slice, indices: torch.Tensor) -> torch.Tensor:
        """Table rows (channels of `channels` first, (C, ...)) with these channels' offsets added."""
        shift = self.offsets[channels].view(-1, *([1] * (indices.dim() - 1)))
        return (indices + shift).clamp(0, NUM_SCALES - 1)

    def coded(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(symbols, table rows) in coding order (after the adaptation's, before z)."""
        return [(self.offsets, torch.full_like(self.offsets, self.row))]

    @classmethod
    def decode(cls, coder: EntropyCoder, decoder, row: int, channels: int) -> "TableOffsets":
        return cls(row, coder.decode(decoder, torch.full((channels,), row, dtype=torch.int64)))
