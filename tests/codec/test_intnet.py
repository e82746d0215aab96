"""The integer hyper-decoder must be exact: same integers whatever the threads or the order."""

import torch

from neco.codec.intnet import HyperSynthesis, _exact_conv3x3
from neco.codec.constants import ACT_FRAC_BITS


def _net():
    torch.manual_seed(0)
    return HyperSynthesis(16, 24).freeze()


def test_integer_net_is_deterministic_across_thread_counts():
    net = _net()
    z = torch.randint(-40, 40, (16, 5, 7))
    gain = torch.full((16,), 2 ** ACT_FRAC_BITS, dtype=torch.int64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        m1, i1 = net(z, gain)
        torch.set_num_threads(2)
        m2, i2 = net(z, gain)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(m1, m2) and torch.equal(i1, i2)
    assert m1.shape == (24, 20, 28) and i1.dtype == torch.int64


def test_exact_conv_matches_integer_reference():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(-2 ** 21, 2 ** 21, (8, 6, 5), generator=g)
    w = torch.randint(-2 ** 15, 2 ** 15, (4, 8, 3, 3), generator=g)
    got = _exact_conv3x3(a.double(), w.double().flatten(1)).to(torch.int64)
    pad = torch.nn.functional.pad(a, (1, 1, 1, 1))
    ref = torch.zeros(4, 6, 5, dtype=torch.int64)
    for dy in range(3):
        for dx in range(3):
            ref += torch.einsum("oc,chw->ohw", w[:, :, dy, dx], pad[:, dy:dy + 6, dx:dx + 5])
    assert torch.equal(got, ref)


def test_striped_conv_equals_whole(monkeypatch):
    import neco.codec.intnet as intnet
    a = torch.randint(-1000, 1000, (4, 9, 6)).double()
    w = torch.randint(-500, 500, (3, 36)).double()
    whole = _exact_conv3x3(a, w)
    monkeypatch.setattr(intnet, "_IM2COL_MAX_ELEMENTS", 36 * 6 * 2)
    assert torch.equal(whole, _exact_conv3x3(a, w))


def test_float_twin_matches_integer_net_closely():
    torch.manual_seed(0)
    float_net = HyperSynthesis(16, 24)
    int_net = float_net.freeze()
    z = torch.randint(-20, 20, (16, 4, 4))
    mean_f, t_f = float_net(z[None].float())
    mean_i, idx = int_net(z, torch.full((16,), 2 ** ACT_FRAC_BITS, dtype=torch.int64))
    assert torch.allclose(mean_f[0].double(), mean_i.double() / 2 ** ACT_FRAC_BITS, atol=0.02)
    assert (torch.round(t_f[0].clamp(0, 63)) - idx).abs().max() <= 1
