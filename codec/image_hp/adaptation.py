"""Decoder adaptation: per-image corrections to a few synthesis parameters, coded in the file.

The encoder fits small corrections ("deltas") to the synthesis for this very image: the bias of
every convolution of g_s and the weight of its last one (the post-filter's 32-to-3 output
layer). They are quantized to a power-of-two step and coded in the FRAME payload (payload.py);
the decoder adds them to its weights before it synthesizes: the learned counterpart of VVC's
adaptive loop filter, and a small instance of instance-adaptive compression (van Rozendaal et
al. 2021). The encoder's side is in fit.py (closed form) and refine.py (jointly with the latents).

The probability path is untouched: the deltas change pixels, never a table choice, so entropy
decoding stays exact on every machine and only the (float) synthesis sees them.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..constants import SYMBOL_MAX
from ..entropy import EntropyCoder
from .payload import TABLE_ROW_BITS


def adapted_names(g_s: nn.Module) -> list[str]:
    """Names of the adapted parameters of a synthesis, in coding order: the bias of every
    convolution in module order, then the weight of the last convolution."""
    convs = [name for name, module in g_s.named_modules() if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))]
    return [f"{name}.bias" for name in convs] + [f"{convs[-1]}.weight"]


def shallow_copy(module: nn.Module) -> nn.Module:
    """A copy of a module tree that shares its tensors but has its own module, parameter and hook
    dicts: a parameter replaced or a hook added on the copy never reaches the shared model (which
    other threads may be running)."""
    clone = copy.copy(module)
    clone._modules = {name: None if child is None else shallow_copy(child)
                      for name, child in module._modules.items()}
    clone._parameters = dict(module._parameters)
    for name, value in vars(module).items():
        if name.endswith("hooks") or "_hooks_" in name:
            setattr(clone, name, type(value)(value))
    return clone


@dataclass(frozen=True)
class Adaptation:
    """Quantized deltas of the adapted parameters: symbols (int64, each tensor's shape) at
    step 2^-step_exponent, each tensor coded with one table row."""
    step_exponent: int
    rows: tuple[int, ...]
    symbols: tuple[torch.Tensor, ...]

    @classmethod
    def quantize(cls, deltas: list[torch.Tensor], step_exponent: int, coder: EntropyCoder) -> "Adaptation":
        """Deltas rounded to the step, each tensor with the table row that codes it in the
        fewest bits."""
        symbols = tuple(torch.round(d.detach().double().cpu() * 2 ** step_exponent)
                        .clamp(-SYMBOL_MAX, SYMBOL_MAX).to(torch.int64) for d in deltas)
        return cls.from_symbols(step_exponent, symbols, coder)

    @classmethod
    def from_symbols(cls, step_exponent: int, symbols: tuple[torch.Tensor, ...], coder: EntropyCoder
                     ) -> "Adaptation":
        """These symbols at step 2^-step_exponent, each tensor with the table row that codes it
        in the fewest bits."""
        return cls(step_exponent, tuple(cheapest_row(coder.code_lengths, s.numpy()) for s in symbols), symbols)

    def deltas(self) -> list[torch.Tensor]:
        return [s.float() * 2.0 ** -self.step_exponent for s in self.symbols]

    def head(self) -> tuple[int, tuple[int, ...]]:
        """Its block before the payload's coded words (payload.py): step exponent, table rows."""
        return self.step_exponent, self.rows

    def bits(self, coder: EntropyCoder, flag_bits: int) -> float:
        """Size of the adaptation in the file: `flag_bits` (what its flag adds to the payload's
        first varint: payload.flag_bits), its block's bytes and the symbols' ideal code length."""
        symbols_bits = sum(coder.cross_entropy_bits(s, i) for s, i in self.coded())
        return flag_bits + TABLE_ROW_BITS * (1 + len(self.rows)) + symbols_bits

    def coded(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(symbols, table rows) of each tensor, in coding order (first in the payload's words)."""
        return [(s, torch.full_like(s, row)) for s, row in zip(self.symbols, self.rows)]

    @classmethod
    def decode(cls, coder: EntropyCoder, decoder, header: tuple[int, tuple[int, ...]],
               shapes: list[torch.Size]) -> "Adaptation":
        """The adaptation whose block (`payload.read_head`) is given, its symbols popped from an
        ANS decoder."""
        step_exponent, rows = header
        symbols = tuple(coder.decode(decoder, torch.full(shape, row, dtype=torch.int64))
                        for shape, row in zip(shapes, rows))
        return cls(step_exponent, rows, symbols)

    def apply(self, g_s: nn.Module) -> nn.Module:
        """The synthesis with the deltas added: a shallow copy of its modules that shares every
        other parameter, so a decode copies no weights and leaves the shared model untouched."""
        adapted = shallow_copy(g_s)
        with torch.no_grad():
            for name, delta in zip(adapted_names(g_s), self.deltas()):
                module_name, kind = name.rsplit(".", 1)
                module = adapted.get_submodule(module_name)
                moved = getattr(module, kind).detach().clone()   # keeps the weight's memory format
                moved += delta.to(moved.device)
                module._parameters[kind] = nn.Parameter(moved, requires_grad=False)
        return adapted


def cheapest_row(table_bits: np.ndarray, symbols: np.ndarray) -> int:
    """The table row that codes these symbols in the fewest bits."""
    return int(np.argmin(table_bits[:, symbols.reshape(-1) + SYMBOL_MAX].sum(1)))

