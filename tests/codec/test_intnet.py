"""The integer networks must be exact: same integers whatever the threads or the order."""

import torch

from neco.codec.constants import ACT_FRAC_BITS, ACT_MAX
from neco.codec.intnet import (FloatConvNet, _exact_conv, context_layers, hyper_layers, mean_and_index,
                               split_parameters)

ONE = 2 ** ACT_FRAC_BITS


def _float_net(layers):
    torch.manual_seed(0)
    net = FloatConvNet(layers)
    with torch.no_grad():  # weights large enough that rounding and clamps matter
        for conv in net.convs:
            conv.weight.normal_(0, 0.2)
            conv.bias.normal_(0, 0.5)
    return net


def test_integer_nets_are_deterministic_across_thread_counts():
    for layers, shape in ((hyper_layers(16, 24), (16, 5, 7)), (context_layers(8), (24, 9, 6))):
        net = _float_net(layers).freeze()
        a = torch.randint(-40 * ONE, 40 * ONE, shape).double()
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one = net(a)
            torch.set_num_threads(2)
            two = net(a)
        finally:
            torch.set_num_threads(before)
        assert torch.equal(one, two) and torch.equal(one, torch.round(one))


def test_hyper_decoder_shapes_and_parameters():
    net = _float_net(hyper_layers(16, 24)).freeze()
    h = net(torch.randint(-20 * ONE, 20 * ONE, (16, 5, 7)).double())
    mean_fx, idx = mean_and_index(h)
    assert mean_fx.shape == idx.shape == (24, 20, 28) and idx.dtype == torch.int64
    assert int(idx.min()) >= 0 and int(idx.max()) <= 63


def test_exact_conv_matches_integer_reference():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(-2 ** 21, 2 ** 21, (8, 6, 5), generator=g)
    w = torch.randint(-2 ** 15, 2 ** 15, (4, 8, 3, 3), generator=g)
    got = _exact_conv(a.double(), w.double().flatten(1), 3).to(torch.int64)
    pad = torch.nn.functional.pad(a, (1, 1, 1, 1))
    ref = torch.zeros(4, 6, 5, dtype=torch.int64)
    for dy in range(3):
        for dx in range(3):
            ref += torch.einsum("oc,chw->ohw", w[:, :, dy, dx], pad[:, dy:dy + 6, dx:dx + 5])
    assert torch.equal(got, ref)
    w1 = w[:, :, 1:2, 1:2]
    got1 = _exact_conv(a.double(), w1.double().flatten(1), 1).to(torch.int64)
    assert torch.equal(got1, torch.einsum("oc,chw->ohw", w1[:, :, 0, 0], a))


def test_striped_conv_equals_whole(monkeypatch):
    import neco.codec.intnet as intnet
    a = torch.randint(-1000, 1000, (4, 9, 6)).double()
    w = torch.randint(-500, 500, (3, 36)).double()
    whole = _exact_conv(a, w, 3)
    monkeypatch.setattr(intnet, "_IM2COL_MAX_ELEMENTS", 36 * 6 * 2)
    assert torch.equal(whole, _exact_conv(a, w, 3))


def test_float_twin_matches_integer_net_closely():
    for layers, cin in ((hyper_layers(16, 24), 16), (context_layers(8), 24)):
        float_net = _float_net(layers)
        int_net = float_net.freeze()
        a = torch.randint(-20, 20, (cin, 4, 4)).float()
        got = int_net((a * ONE).double()) / ONE
        want = float_net(a[None])[0].double()
        assert torch.allclose(got, want, atol=0.25), (got - want).abs().max()  # weight rounding, 2^-13 each


def test_parameters_split_the_same_way_in_float_and_integer():
    p = torch.cat([torch.full((3, 2, 2), 5000.0), torch.full((3, 2, 2), 7.4)])
    mean, t = split_parameters(p[None])
    mean_fx, idx = mean_and_index((p * ONE).double().clamp(-ACT_MAX * ONE, ACT_MAX * ONE))
    assert torch.equal(mean[0], mean_fx.double() / ONE) and torch.equal(torch.round(t[0]), idx.double())
