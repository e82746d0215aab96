import numpy as np
import pytest
import torch

from neco.codec.constants import ALPHABET_SIZE, CDF_PRECISION, NUM_SCALES, SYMBOL_MAX
from neco.codec.entropy import EntropyCoder, StreamEncoder, build_gaussian_tables, new_decoder
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
    enc = StreamEncoder()
    coder.encode(enc, sym[:1000], idx[:1000])  # two calls, read back in the order written
    coder.encode(enc, sym[1000:], idx[1000:])
    dec = new_decoder(enc.finish())
    assert torch.equal(coder.decode(dec, idx[:1000]), sym[:1000])
    assert torch.equal(coder.decode(dec, idx[1000:]), sym[1000:])


def test_coding_overhead_below_half_percent(coder):
    """Actual ANS-coder bits vs the model's own cross-entropy on realistic symbol counts."""
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(10, 40, (200_000,), generator=g)
    scale = torch.from_numpy(np.exp(np.linspace(np.log(0.11), np.log(256), NUM_SCALES)))[idx]
    sym = (torch.randn(200_000, generator=g, dtype=torch.float64) * scale).round().long()
    enc = StreamEncoder()
    coder.encode(enc, sym, idx)
    actual = 8 * len(enc.finish())
    ideal = coder.cross_entropy_bits(sym, idx)
    assert actual <= ideal * 1.005


def test_symbol_outside_alphabet_is_refused(coder):
    with pytest.raises(ValueError):
        coder.encode(StreamEncoder(), torch.tensor([SYMBOL_MAX + 1]), torch.tensor([3]))


def test_payload_not_whole_words_is_corrupt():
    with pytest.raises(CorruptDataError):
        new_decoder(b"\x00\x01\x02")


def test_payload_ending_in_zero_word_is_corrupt():
    with pytest.raises(CorruptDataError, match="zero word"):
        new_decoder(b"\x07\x00\x00\x00" + bytes(4))


def test_any_accepted_words_decode(coder):
    """The structural guarantee behind fuzz safety: whatever words pass new_decoder's checks
    (including none at all) decode with any tables to in-alphabet symbols, never an error."""
    rng = np.random.default_rng(2)
    for case in range(300):
        n = int(rng.integers(0, 12))
        words = rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype("<u4")
        if case % 3 == 0:
            words[:] = 0xFFFFFFFF
        if n:
            words[-1] |= 1
        dec = new_decoder(words.tobytes())
        for _ in range(5):
            idx = torch.from_numpy(rng.integers(0, NUM_SCALES, int(rng.integers(1, 400))))
            sym = coder.decode(dec, idx)
            assert sym.shape == idx.shape and int(sym.abs().max()) <= SYMBOL_MAX
