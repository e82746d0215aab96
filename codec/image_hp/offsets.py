"""Table offsets: per-image corrections to the entropy model's scale choice, coded in the file.

The context model picks each latent's table row (its Gaussian's scale) from what is decoded
before it. Per image and channel those choices are often off by a row or two: a channel that
is nearly always zero in this image wants narrower tables than the model predicts, one with rare
large values wider ones. The encoder knows every symbol and every row once it has walked the
latents, so it can price each channel's symbols under rows shifted by -SPAN..SPAN exactly and
send a shift per channel (M small integers, entropy-coded with one table row; per channel the
shift that minimizes its symbols' bits plus its own under that row) when that saves more than
it costs (by their ideal code lengths). One set covers all of y and none is sent for the
hyper-latents z: two sets, or offsets for z, saved less (docs/RECORD.md).

The decoder adds channel c's offset to the row of every latent symbol of channel c, clamped to
the table: it changes which table codes a symbol, never a mean or a decoded value, so the
context model's inputs, and everything the synthesis sees, are the same with or without it.

Coding (docs/FORMAT.md, section 10): bit 17 of the payload's first varint, a u8 table row after
the adaptation block, and the M offsets as symbols after the adaptation's, before z.
"""

from dataclasses import dataclass

import torch

from ..constants import NUM_SCALES
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
