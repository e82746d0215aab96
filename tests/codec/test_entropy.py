import numpy as np
import pytest
import torch

from neco.codec.constants import ALPHABET_SIZE, CDF_PRECISION, NUM_SCALES, SYMBOL_MAX
from neco.codec.entropy import EntropyCoder, build_gaussian_tables, finish, new_decoder, new_encoder
from neco.formats import CorruptDataError


@pytest.fixture(scope="module")
def coder():
    return EntropyCoder(build_gaussian_tables())


def test_tables_are_normalised_integers():
    t = build_gaussian_tables()
    assert t.shape == (NUM_SCALES, ALPHABET_SIZE) and t.dtype == np.int32
    assert np.all(t >= 1)
    assert np.all(t.astype(np.int64).sum(1) == 1 << CDF_PRECISION)
    # wider scales put less mass on zero
    assert np.all(np.diff(t[:, SYMBOL_MAX]) <= 0)


def test_round_trip_including_extreme_symbols(coder):
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, NUM_SCALES, (5000,), generator=g)
    sym = (torch.randn(5000, generator=g) * torch.from_numpy(np.exp(idx.numpy() * 0.12)) * 0.11).round()
    sym = sym.clamp(-SYMBOL_MAX, SYMBOL_MAX).long()
    sym[:4] = torch.tensor([SYMBOL_MAX, -SYMBOL_MAX, SYMBOL_MAX, -SYMBOL_MAX])  # tail symbols
    enc = new_encoder()
    coder.encode(enc, sym, idx)
    data = finish(enc)
    assert torch.equal(coder.decode(new_decoder(data), idx), sym)


def test_coding_overhead_below_half_percent(coder):
    """Actual range-coder bits vs the model's own cross-entropy on realistic symbol counts."""
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(10, 40, (200_000,), generator=g)
    scale = torch.from_numpy(np.exp(np.linspace(np.log(0.11), np.log(256), NUM_SCALES)))[idx]
    sym = (torch.randn(200_000, generator=g, dtype=torch.float64) * scale).round().long()
    enc = new_encoder()
    coder.encode(enc, sym, idx)
    actual = 8 * len(finish(enc))
    ideal = coder.cross_entropy_bits(sym, idx)
    assert actual <= ideal * 1.005


def test_symbol_outside_alphabet_is_refused(coder):
    with pytest.raises(ValueError):
        coder.encode(new_encoder(), torch.tensor([SYMBOL_MAX + 1]), torch.tensor([3]))


def test_payload_not_whole_words_is_corrupt():
    with pytest.raises(CorruptDataError):
        new_decoder(b"\x00\x01\x02")
