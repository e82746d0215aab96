"""Entropy core: integer Gaussian CDF tables and the constriction ANS coder that uses them.

The tables are built once (`build_gaussian_tables`, float64 erf, then integers) and stored
with each model; coding only ever reads them. Every latent symbol carries a table index chosen
by exact integer arithmetic (intnet.py), so encoder and decoder pick the same row on any
machine, and constriction only receives table rows -- exact integers -- never network floats.

Symbols are grouped by table index and each group is coded with one categorical model. The
decoder knows every index before it decodes, so it rebuilds the same groups.

The coder is asymmetric numeral systems (constriction.stream.stack.AnsCoder), not a range
coder, because ANS decoding cannot fail: any 32-bit words, read with any model, decode to some
symbols, and the only invalid stream (one ending in a zero word) is refused by an explicit check
in `new_decoder`. A range decoder instead meets "invalid data" states on corrupt input (an
AssertionError from constriction), so a corrupt file could only be caught by wrapping
constriction's exception. ANS is last-in first-out: `StreamEncoder` collects the groups in
decoding order and pushes them in reverse when it finishes.
"""

import math

import constriction
import numpy as np
import torch

from neco.formats.errors import CorruptDataError

from .constants import ALPHABET_SIZE, CDF_PRECISION, NUM_SCALES, SCALE_MAX, SCALE_MIN, SYMBOL_MAX


def scale_table() -> np.ndarray:
    """The NUM_SCALES log-spaced standard deviations, SCALE_MIN..SCALE_MAX."""
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), NUM_SCALES))


def build_gaussian_tables() -> np.ndarray:
    """Integer frequency tables (NUM_SCALES, ALPHABET_SIZE), each row summing to 2**CDF_PRECISION.

    Row i is a zero-mean Gaussian of standard deviation scale_table()[i] discretized to
    integer bins [k-0.5, k+0.5); every symbol gets frequency >= 1 so clamped outliers stay
    codable, and rounding slack goes to the most probable symbol.
    """
    total = 1 << CDF_PRECISION
    k = np.arange(-SYMBOL_MAX, SYMBOL_MAX + 1, dtype=np.float64)
    rows = []
    for s in scale_table():
        upper = np.array([math.erfc(-(v + 0.5) / (s * math.sqrt(2))) for v in k]) / 2
        lower = np.array([math.erfc(-(v - 0.5) / (s * math.sqrt(2))) for v in k]) / 2
        pmf = np.clip(upper - lower, 0, None)
        freq = np.floor(pmf / pmf.sum() * (total - ALPHABET_SIZE)).astype(np.int64) + 1
        freq[SYMBOL_MAX] += total - freq.sum()
        rows.append(freq)
    return np.stack(rows).astype(np.int32)


class EntropyCoder:
    """Range coding of integer symbols with table-indexed integer Gaussian models."""

    def __init__(self, tables: np.ndarray):
        if tables.shape != (NUM_SCALES, ALPHABET_SIZE) or np.any(tables < 1):
            raise ValueError("malformed CDF tables")
        if np.any(tables.astype(np.int64).sum(1) != 1 << CDF_PRECISION):
            raise ValueError("CDF table rows must sum to 2**CDF_PRECISION")
        self.tables = tables
        # code length in bits of every symbol under every row (rows, alphabet): the encoder's
        # choices price symbols with it
        self.code_lengths = CDF_PRECISION - np.log2(tables.astype(np.float64))
        self._models: dict[int, constriction.stream.model.Categorical] = {}

    def _model(self, index: int):
        if index not in self._models:
            probs = self.tables[index].astype(np.float64)
            self._models[index] = constriction.stream.model.Categorical(probs, perfect=False)
        return self._models[index]

    @staticmethod
    def _groups(indices: np.ndarray):
        order = np.argsort(indices, kind="stable")
        sorted_idx = indices[order]
        bounds = np.flatnonzero(np.diff(sorted_idx)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(order)]])
        for s, e in zip(starts, ends):
            if e > s:
                yield int(sorted_idx[s]), order[s:e]

    def encode(self, encoder: "StreamEncoder", symbols: torch.Tensor, indices: torch.Tensor) -> None:
        """Append symbols (ints in [-SYMBOL_MAX, SYMBOL_MAX]) coded with tables[indices]."""
        sym = symbols.reshape(-1).numpy().astype(np.int32) + SYMBOL_MAX
        idx = indices.reshape(-1).numpy()
        if sym.min(initial=0) < 0 or sym.max(initial=0) >= ALPHABET_SIZE:
            raise ValueError("symbol outside the coder alphabet")
        for index, where in self._groups(idx):
            encoder.groups.append((sym[where], self._model(index)))

    def decode(self, decoder, indices: torch.Tensor) -> torch.Tensor:
        """Decode as many symbols as `indices` holds, in the order `encode` wrote them."""
        idx = indices.reshape(-1).numpy()
        out = np.empty(idx.size, dtype=np.int32)
        for index, where in self._groups(idx):
            out[where] = decoder.decode(self._model(index), where.size)
        return torch.from_numpy(out.astype(np.int64) - SYMBOL_MAX).view(indices.shape)

    def cross_entropy_bits(self, symbols: torch.Tensor, indices: torch.Tensor) -> float:
        """Ideal code length of the symbols under the integer tables (for overhead checks)."""
        sym = symbols.reshape(-1).numpy() + SYMBOL_MAX
        return float(np.sum(self.code_lengths[indices.reshape(-1).numpy(), sym]))


class StreamEncoder:
    """Symbol groups in the order the decoder will read them, ANS-coded by `finish`."""

    def __init__(self) -> None:
        self.groups: list[tuple[np.ndarray, object]] = []

    def finish(self) -> bytes:
        """Little-endian bytes of the compressed words (constriction emits native-order uint32).

        ANS is a stack: the last group pushed is the first decoded, so groups go in reverse,
        each with `encode_reverse` so its symbols also come out in order.
        """
        coder = constriction.stream.stack.AnsCoder()
        for symbols, model in reversed(self.groups):
            coder.encode_reverse(symbols, model)
        return coder.get_compressed().astype("<u4").tobytes()


def new_decoder(data: bytes):
    """An ANS decoder over a payload's coded words; every stream it accepts decodes."""
    if len(data) % 4:
        raise CorruptDataError("entropy-coded payload length is not a multiple of 4 bytes")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    if words.size and words[-1] == 0:
        raise CorruptDataError("entropy-coded payload ends in a zero word (no ANS coder writes one)")
    return constriction.stream.stack.AnsCoder(words)
