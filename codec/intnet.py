"""The hyper-decoder as an exact integer network (the probability path).

Every entropy-model parameter the decoder needs (a mean and a scale-table index per latent) is
computed by this network from the decoded hyper-latents. Float arithmetic would differ in the
last bit across machines and flip table indices (CompressAI #279, tensorflow/compression #41),
so the decoder runs it on integers: Ballé, Johnston & Minnen, "Integer networks for data
compression with latent-variable models" (ICLR 2019).

Fixed-point scheme (constants.py): weights are integers with WEIGHT_FRAC_BITS fraction bits,
activations integers with ACT_FRAC_BITS fraction bits, clamped to +-ACT_MAX units. A 3x3
convolution multiplies and accumulates those integers; `check_bounds` proves every partial sum
stays below 2**53, so carrying them in float64 is exact whatever the summation order (BLAS
blocking, thread count, SIMD width, GPU). The accumulator is rescaled by an exact power-of-two
floor division. Convolutions are im2col + matmul so no Winograd/FFT algorithm is ever chosen.

Training uses `HyperSynthesis`, the float twin with the same layer graph and the same clamps;
`freeze()` rounds its weights once into an `IntegerHyperSynthesis`.
"""

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .constants import (ACT_FRAC_BITS, ACT_MAX, EXACT_LIMIT, NUM_SCALES, SCALE_MAX, SCALE_MIN,
                        SYMBOL_MAX, WEIGHT_FRAC_BITS, WEIGHT_MAX)

# Scale-table position the hyper-decoder starts from (training initialisation only).
INITIAL_SCALE_INDEX = 25.0
# Cap on the float64 im2col buffer of one exact convolution (elements), bounding memory on
# large images: rows of output are processed in stripes.
_IM2COL_MAX_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class HyperLayer:
    """One 3x3 convolution of the hyper-decoder, then optional ReLU and pixel shuffle."""
    cin: int
    cout: int
    relu: bool
    upscale: int  # pixel-shuffle factor applied after the convolution (1 = none)


def hyper_layers(hyper_channels: int, latent_channels: int) -> tuple[HyperLayer, ...]:
    """Layer graph of the hyper-decoder: z (1/64 res) -> mean and scale index of y (1/16 res)."""
    n, half = hyper_channels, hyper_channels // 2
    return (
        HyperLayer(n, n, relu=True, upscale=1),
        HyperLayer(n, 4 * half, relu=True, upscale=2),
        HyperLayer(half, 4 * half, relu=True, upscale=2),
        HyperLayer(half, 2 * latent_channels, relu=False, upscale=1),
    )


class _BoundedIndex(torch.autograd.Function):
    """Clamp to the table range; pass gradients that point back into the range.

    A plain clamp would stop all gradient outside the range, so a position that starts out
    of range could never return (the LowerBound idea of Ballé's GDN / CompressAI).
    """

    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t)
        return t.clamp(0, NUM_SCALES - 1)

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        inward = ((t >= 0) | (grad < 0)) & ((t <= NUM_SCALES - 1) | (grad > 0))
        return grad * inward


def scale_from_index_value(t: torch.Tensor) -> torch.Tensor:
    """Standard deviation for a (continuous) scale-table position t, as used in training."""
    step = torch.log(torch.tensor(SCALE_MAX / SCALE_MIN)) / (NUM_SCALES - 1)
    return SCALE_MIN * torch.exp(step * _BoundedIndex.apply(t))


class HyperSynthesis(nn.Module):
    """Float hyper-decoder for training; mirrors IntegerHyperSynthesis layer for layer."""

    def __init__(self, hyper_channels: int, latent_channels: int):
        super().__init__()
        self.spec = hyper_layers(hyper_channels, latent_channels)
        self.convs = nn.ModuleList(nn.Conv2d(s.cin, s.cout, 3, padding=1) for s in self.spec)
        with torch.no_grad():  # start the scale positions mid-table (sigma ~ 2.4), not at 0.11
            self.convs[-1].bias[latent_channels:] = INITIAL_SCALE_INDEX

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mean, t): latent means and continuous scale-table positions."""
        a = z_hat.clamp(-ACT_MAX, ACT_MAX)
        for spec, conv in zip(self.spec, self.convs):
            a = conv(a)
            if spec.relu:
                a = a.clamp(0, ACT_MAX)
            if spec.upscale > 1:
                a = F.pixel_shuffle(a, spec.upscale)
        mean, t = a.chunk(2, dim=1)
        return mean.clamp(-SYMBOL_MAX, SYMBOL_MAX), t

    def freeze(self) -> "IntegerHyperSynthesis":
        weights, biases = [], []
        for conv in self.convs:
            w = conv.weight.detach().double().clamp(-WEIGHT_MAX + 1e-3, WEIGHT_MAX - 1e-3)
            weights.append(torch.round(w * 2 ** WEIGHT_FRAC_BITS).to(torch.int16))
            b = conv.bias.detach().double().clamp(-ACT_MAX, ACT_MAX)
            biases.append(torch.round(b * 2 ** (WEIGHT_FRAC_BITS + ACT_FRAC_BITS)).to(torch.int64))
        return IntegerHyperSynthesis(self.spec, weights, biases)

    def load_integer(self, net: "IntegerHyperSynthesis") -> None:
        """Initialise from frozen integer weights (to resume training from a shipped model)."""
        with torch.no_grad():
            for conv, w, b in zip(self.convs, net.weights, net.biases):
                conv.weight.copy_(w.double() / 2 ** WEIGHT_FRAC_BITS)
                conv.bias.copy_(b.double() / 2 ** (WEIGHT_FRAC_BITS + ACT_FRAC_BITS))


def _exact_conv3x3(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """3x3 'same' convolution of integer-valued float64 tensors, exact (see module docstring).

    a: (cin, h, w) float64 integers; w: (cout, cin*9) float64 integers -> (cout, h, w).
    """
    cin, h, wd = a.shape
    padded = F.pad(a, (1, 1, 1, 1))
    rows_per_stripe = max(1, _IM2COL_MAX_ELEMENTS // (cin * 9 * wd))
    out = []
    for r0 in range(0, h, rows_per_stripe):
        r1 = min(h, r0 + rows_per_stripe)
        cols = F.unfold(padded[None, :, r0:r1 + 2], 3)[0]  # (cin*9, rows*wd)
        out.append((w @ cols).view(-1, r1 - r0, wd))
    return torch.cat(out, dim=1)


class IntegerHyperSynthesis:
    """The exact integer hyper-decoder used by encoder and decoder alike."""

    def __init__(self, spec: tuple[HyperLayer, ...], weights: list[torch.Tensor],
                 biases: list[torch.Tensor]):
        self.spec = spec
        self.weights = weights
        self.biases = biases
        self.check_bounds()

    def check_bounds(self) -> None:
        """Prove that no partial sum of any layer can reach 2**53 (so float64 is exact)."""
        a_max = ACT_MAX * 2 ** ACT_FRAC_BITS
        for s, w, b in zip(self.spec, self.weights, self.biases):
            if tuple(w.shape) != (s.cout, s.cin, 3, 3) or tuple(b.shape) != (s.cout,):
                raise ValueError(f"hyper-decoder weight shape {tuple(w.shape)} does not match {s}")
            worst = w.abs().to(torch.int64).flatten(1).sum(1).max().item() * a_max
            if worst + b.abs().max().item() >= EXACT_LIMIT:
                raise ValueError("hyper-decoder weights exceed the exact float64 range")

    def __call__(self, z: torch.Tensor, inverse_gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means (fixed point, ACT_FRAC_BITS) and scale indices for y, from integer z symbols.

        z: (C, h, w) integer tensor of hyper-latent symbols; inverse_gain: (C,) int64, the
        per-channel hyper gain in fixed point (ACT_FRAC_BITS). Returns (mean_fx int64, idx int64),
        each (M, 4h, 4w).
        """
        one = 2 ** ACT_FRAC_BITS
        lim = ACT_MAX * one
        a = (z.to(torch.int64) * inverse_gain.view(-1, 1, 1)).clamp(-lim, lim).double()
        for s, w, b in zip(self.spec, self.weights, self.biases):
            acc = _exact_conv3x3(a, w.double().flatten(1)) + b.double().view(-1, 1, 1)
            a = torch.floor(acc / 2 ** WEIGHT_FRAC_BITS)
            a = a.clamp(0, lim) if s.relu else a.clamp(-lim, lim)
            if s.upscale > 1:
                a = F.pixel_shuffle(a[None], s.upscale)[0]
        mean_fx, t = a.to(torch.int64).chunk(2, dim=0)
        mean_fx = mean_fx.clamp(-SYMBOL_MAX * one, SYMBOL_MAX * one)
        idx = torch.div(t + one // 2, one, rounding_mode="floor").clamp(0, NUM_SCALES - 1)
        return mean_fx, idx
