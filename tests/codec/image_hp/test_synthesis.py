"""The decoder's run of the synthesis (synthesis.py) against the network's own forward: the
in-place inverse GDN and the striped post-filter bit for bit, the transposed convolution by
phases within float rounding, the whole within one pixel level."""

import copy

import pytest
import torch
from torch import nn

from neco.codec import registry
from neco.codec.image_hp import synthesis


@pytest.fixture(scope="module")
def g_s():
    return registry.get_decoder(registry.DEFAULT_IMAGE_MODEL).net().g_s


def _input(shape, seed):
    g = torch.Generator().manual_seed(seed)
    v = (torch.randn(shape, generator=g) * 3).to(memory_format=torch.channels_last)
    v[..., 2, :] = 0.0
    v[..., 3, :] = -0.0
    return v


def test_inverse_gdn_in_place_is_bit_identical(g_s):
    gdn, v = g_s[1], _input((1, 128, 6, 5), 4)
    with torch.no_grad():
        expected = gdn(v)
        got = synthesis.inverse_gdn_in_place(gdn, v.clone())
    assert torch.equal(got, expected)
    assert torch.equal(torch.signbit(got), torch.signbit(expected))


@pytest.mark.parametrize("rows", [1, 3, 7, 128])
def test_post_filter_in_stripes_is_bit_identical(g_s, monkeypatch, rows):
    monkeypatch.setattr(synthesis, "_RESIDUAL_ROWS", rows)
    post, x = g_s[7], _input((1, 3, 21, 9), 5)
    with torch.no_grad():
        assert torch.equal(synthesis.residual_in_stripes(post, x), post(x))
    assert synthesis._halo(post.body) == 4


def test_transposed_convolution_by_phases(g_s):
    """The shipped 128-to-3 layer and a random 7-output one: the same sums up to float rounding."""
    layers = [g_s[6], nn.ConvTranspose2d(5, 7, 5, stride=2, padding=2, output_padding=1)]
    for layer, x in zip(layers, [_input((1, 128, 6, 5), 6), _input((1, 5, 4, 7), 7)]):
        with torch.no_grad():
            expected, got = layer(x), synthesis.transposed_by_phases(layer, x)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, rtol=0, atol=1e-5 * expected.abs().max().item())


def test_run_matches_the_network_within_one_level(g_s):
    v = _input((1, 192, 6, 5), 8)
    with torch.no_grad():
        expected = g_s(v)
        got = synthesis.run(g_s, v.clone())
    levels = lambda x: (x.clamp(0, 1) * 255).round()   # noqa: E731
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert (levels(got) - levels(expected)).abs().max() <= 1


def test_run_leaves_other_transposed_convolutions_alone():
    """Only small stride-2 kernel-5 layers run by phases; a wide one runs as it is, bit for bit."""
    layer = nn.ConvTranspose2d(4, 32, 5, stride=2, padding=2, output_padding=1)
    x = _input((1, 4, 5, 6), 9)
    with torch.no_grad():
        assert torch.equal(synthesis.run(copy.deepcopy(layer), x), layer(x))
