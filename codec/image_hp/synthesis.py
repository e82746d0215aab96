"""The decoder's run of the synthesis g_s: the same network as `g_s(v)`, in less time and memory.

Three rewrites, each measured on a Kodak decode (kodim23, one thread, docs/RECORD.md):
- the inverse GDN after a convolution works in that convolution's fresh output (bit-identical);
- the residual post-filter runs in row stripes with the halo of its 3x3 layers and its ReLUs in
  place (bit-identical: each output row sees the same inputs in the same order). Whole-image
  temporaries of 32 channels cost more in first-touch page faults than in arithmetic;
- a stride-2 transposed convolution with few outputs (the 128-to-3 one) runs as a 3x3
  convolution to four phases and a pixel shuffle: the same products, summed in another order
  (pixels within the cross-configuration bound of one level).
"""

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import Residual, SimplifiedGDN

# Output rows of the post-filter computed at a time (its halo is 4 rows on each side).
_RESIDUAL_ROWS = 128
# Transposed convolutions with at most this many outputs run as phase convolutions.
_PHASE_MAX_OUTPUTS = 16
# Rows of a tile's inverse GDN whose signs are restored at a time (bounds that step's temporaries).
_SIGN_ROWS = 64


def inverse_gdn_in_place(gdn: SimplifiedGDN, x: torch.Tensor) -> torch.Tensor:
    """gdn(x) (inverse: x * norm) computed in x itself, by the same float operations: norm is
    the same convolution of |x| (taken in place, the signs kept as bits), |x| * norm in place,
    then the signs restored. IEEE multiplication rounds magnitudes and sets the sign apart, so
    -(|x| * n) is x * n bit for bit (-0.0 included). Saves a tile's |x| and product copies."""
    beta = gdn.beta.abs() + 1e-6
    gamma = gdn.gamma.abs()
    negative = torch.signbit(x)
    norm = F.conv2d(x.abs_(), gamma, beta)
    x.mul_(norm)
    del norm
    for r0 in range(0, x.shape[-2], _SIGN_ROWS):
        part, neg = x[..., r0:r0 + _SIGN_ROWS, :], negative[..., r0:r0 + _SIGN_ROWS, :]
        part.copy_(torch.where(neg, -part, part))
    return x


def _halo(body: nn.Sequential) -> int:
    """Rows of input each output row of a stack of stride-1 convolutions depends on, per side."""
    return sum(layer.kernel_size[0] // 2 for layer in body if isinstance(layer, nn.Conv2d))


def residual_in_stripes(residual: Residual, x: torch.Tensor) -> torch.Tensor:
    """residual(x) = x + body(x) for a body of stride-1 convolutions and ReLUs, in row stripes
    with the body's halo: each stripe's temporaries are small and reused, where whole-image ones
    are fresh memory every layer."""
    halo, height = _halo(residual.body), x.shape[-2]
    out = torch.empty_like(x)
    for r0 in range(0, height, _RESIDUAL_ROWS):
        r1 = min(height, r0 + _RESIDUAL_ROWS)
        a0, a1 = max(0, r0 - halo), min(height, r1 + halo)
        part = x[..., a0:a1, :]
        h = part
        for layer in residual.body:
            h = h.relu_() if type(layer) is nn.ReLU else layer(h)
        torch.add(part[..., r0 - a0:r1 - a0, :], h[..., r0 - a0:r1 - a0, :], out=out[..., r0:r1, :])
    return out


def phase_weights(layer: nn.ConvTranspose2d) -> torch.Tensor:
    """The weight (4 * C_out, C_in, 3, 3) of the 3x3 convolution whose pixel shuffle by 2 is the
    transposed convolution `layer` (kernel 5, stride 2, padding 2, output padding 1).

    Output pixel 2m + a of the transposed convolution sums input m + e times kernel tap a + 2 - 2e
    (e = -1, 0, 1; taps outside 0..4 do not exist), in each dimension."""
    w = layer.weight   # (C_in, C_out, 5, 5)
    cin, cout = w.shape[:2]
    phases = w.new_zeros((cout, 2, 2, cin, 3, 3))
    for a in range(2):
        for e in range(3):
            k = a + 4 - 2 * e
            if 0 <= k < 5:
                for b in range(2):
                    for f in range(3):
                        n = b + 4 - 2 * f
                        if 0 <= n < 5:
                            phases[:, a, b, :, e, f] = w[:, :, k, n].t()
    return phases.reshape(4 * cout, cin, 3, 3).contiguous(memory_format=torch.channels_last)


def _phased(layer: nn.ConvTranspose2d) -> bool:
    return (layer.out_channels <= _PHASE_MAX_OUTPUTS and layer.kernel_size == (5, 5) and layer.stride == (2, 2)
            and layer.padding == (2, 2) and layer.output_padding == (1, 1) and layer.groups == 1)


def transposed_by_phases(layer: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """layer(x) as a 3x3 convolution to its four output phases and a pixel shuffle."""
    return F.pixel_shuffle(F.conv2d(x, phase_weights(layer), layer.bias.repeat_interleave(4), padding=1), 2)


def run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """module(x), with the rewrites above where they apply: in a Sequential, an inverse GDN right
    after a convolution (whose fresh output nobody else holds) works in place; a Residual runs in
    stripes; a small transposed convolution by phases; anything else as it is."""
    if type(module) is Residual:
        return residual_in_stripes(module, x)
    if type(module) is nn.ConvTranspose2d and _phased(module):
        return transposed_by_phases(module, x)
    if type(module) is not nn.Sequential:
        return module(x)
    fresh = False
    for layer in module:
        if fresh and type(layer) is SimplifiedGDN and layer.inverse:
            x = inverse_gdn_in_place(layer, x)
        else:
            x = run(layer, x)
        fresh = type(layer) in (nn.Conv2d, nn.ConvTranspose2d)
    return x
