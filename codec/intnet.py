"""Exact integer networks for the probability path: the hyper-decoder and the context network.

Every entropy-model parameter the decoder needs (a mean and a scale-table index per latent) is
computed by these networks from decoded symbols. Float arithmetic would differ in the last bit
across machines and flip table indices (CompressAI #279, tensorflow/compression #41), so the
decoder runs them on integers: Ballé, Johnston & Minnen, "Integer networks for data
compression with latent-variable models" (ICLR 2019).

Fixed-point scheme (constants.py): weights are integers with WEIGHT_FRAC_BITS fraction bits,
activations integers with ACT_FRAC_BITS fraction bits, clamped to +-ACT_MAX units. A
convolution multiplies and accumulates those integers; `check_bounds` proves every partial sum
stays below 2**53, so carrying them in float64 is exact whatever the summation order (BLAS
blocking, thread count, SIMD width, GPU). The accumulator is rescaled by an exact power-of-two
floor division. Convolutions are im2col + matmul so no Winograd/FFT algorithm is ever chosen.

Training uses `FloatConvNet`, the float twin with the same layer graph and the same clamps;
`freeze()` rounds its weights once into an `IntegerConvNet`.
"""

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .constants import (ACT_FRAC_BITS, ACT_MAX, EXACT_LIMIT, NUM_SCALES, SCALE_MAX, SCALE_MIN,
                        SYMBOL_MAX, WEIGHT_FRAC_BITS, WEIGHT_MAX)

# Scale-table position the hyper-decoder starts from (training initialisation only).
INITIAL_SCALE_INDEX = 25.0
# Cap on the float64 im2col buffer of one exact convolution (elements, 32 MB), bounding memory
# on large images: rows of output are processed in stripes (exact whatever the stripe).
_IM2COL_MAX_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class ConvLayer:
    """One convolution of an integer network ('same' padding), then optional ReLU and pixel shuffle."""
    cin: int
    cout: int
    relu: bool
    upscale: int = 1  # pixel-shuffle factor applied after the convolution (1 = none)
    kernel: int = 3   # 3 or 1


def hyper_layers(hyper_channels: int, latent_channels: int) -> tuple[ConvLayer, ...]:
    """The hyper-decoder: z (1/64 res) -> the hyper part of y's parameters (1/16 res):
    2 * latent_channels outputs, means then scale-table positions."""
    n, half = hyper_channels, hyper_channels // 2
    return (
        ConvLayer(n, n, relu=True),
        ConvLayer(n, 4 * half, relu=True, upscale=2),
        ConvLayer(half, 4 * half, relu=True, upscale=2),
        ConvLayer(half, 2 * latent_channels, relu=False),
    )


def context_layers(latent_channels: int, channel_context: bool = False) -> tuple[ConvLayer, ...]:
    """The context network: (hyper parameters, decoded anchor latents[, decoded latents of
    earlier channel groups]) -> a correction of the parameters. Its 3x3 window around a
    non-anchor latent holds its four anchor neighbours (see image_hp.model.checkerboard); the
    channel-context input (models with channel groups) adds the earlier groups' latents of the
    same pass, the same position included.

    Given h, y's spatial neighbours carry little, so the network is small: a larger one did
    not pay (docs/RECORD.md)."""
    m = latent_channels
    return (ConvLayer((4 if channel_context else 3) * m, m, relu=True), ConvLayer(m, 2 * m, relu=False, kernel=1))


def _check_rows_layer(spec: tuple[ConvLayer, ...]) -> None:
    """`finish(acc, rows)` slices the last layer's outputs: it must not be the first layer
    (whose accumulator is already complete) nor pixel-shuffle its outputs."""
    if len(spec) < 2 or spec[-1].upscale != 1:
        raise ValueError("finish(rows=...) needs a last layer after the first, without pixel shuffle")


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


class FloatConvNet(nn.Module):
    """Float twin of an IntegerConvNet for training: the same layers and the same clamps."""

    def __init__(self, spec: tuple[ConvLayer, ...]):
        super().__init__()
        self.spec = spec
        self.convs = nn.ModuleList(nn.Conv2d(s.cin, s.cout, s.kernel, padding=s.kernel // 2) for s in spec)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.finish(self.accumulate(a))

    def accumulate(self, a: torch.Tensor, first_channel: int = 0) -> torch.Tensor:
        """The first layer's output before bias from input channels first_channel ..
        first_channel + a.shape[1] alone (the float twin of IntegerConvNet.accumulate)."""
        conv = self.convs[0]
        return F.conv2d(a, conv.weight[:, first_channel:first_channel + a.shape[1]], padding=conv.padding)

    def finish(self, acc: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The network's output from its first layer's complete accumulator; `rows`: only these
        output channels (see IntegerConvNet.finish)."""
        last = len(self.convs) - 1
        if rows is not None:
            _check_rows_layer(self.spec)
        for i, (spec, conv) in enumerate(zip(self.spec, self.convs)):
            w, b = conv.weight, conv.bias
            if i == last and rows is not None:
                w, b = w[rows], b[rows]
            a = acc + b.view(-1, 1, 1) if i == 0 else F.conv2d(a, w, b, padding=conv.padding)
            a = a.clamp(0, ACT_MAX) if spec.relu else a.clamp(-ACT_MAX, ACT_MAX)
            if spec.upscale > 1:
                a = F.pixel_shuffle(a, spec.upscale)
        return a

    def freeze(self) -> "IntegerConvNet":
        weights, biases = [], []
        for conv in self.convs:
            w = conv.weight.detach().double().clamp(-WEIGHT_MAX + 1e-3, WEIGHT_MAX - 1e-3)
            weights.append(torch.round(w * 2 ** WEIGHT_FRAC_BITS).to(torch.int16))
            b = conv.bias.detach().double().clamp(-ACT_MAX, ACT_MAX)
            biases.append(torch.round(b * 2 ** (WEIGHT_FRAC_BITS + ACT_FRAC_BITS)).to(torch.int64))
        return IntegerConvNet(self.spec, weights, biases)

    def load_integer(self, net: "IntegerConvNet") -> None:
        """Initialise from frozen integer weights (to resume training from a shipped model)."""
        with torch.no_grad():
            for conv, w, b in zip(self.convs, net.weights, net.biases):
                conv.weight.copy_(w.double() / 2 ** WEIGHT_FRAC_BITS)
                conv.bias.copy_(b.double() / 2 ** (WEIGHT_FRAC_BITS + ACT_FRAC_BITS))


def split_parameters(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float latent parameters (..., 2M, h, w) -> (means clamped to the alphabet, scale positions)."""
    mean, t = p.chunk(2, dim=-3)
    return mean.clamp(-SYMBOL_MAX, SYMBOL_MAX), t


def mean_and_index(p_fx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer latent parameters (2M, h, w) -> (means in fixed point, scale-table indices), int64."""
    one = 2 ** ACT_FRAC_BITS
    mean_fx, t = p_fx.to(torch.int64).chunk(2, dim=0)
    idx = torch.div(t + one // 2, one, rounding_mode="floor").clamp(0, NUM_SCALES - 1)
    return mean_fx.clamp(-SYMBOL_MAX * one, SYMBOL_MAX * one), idx


def _exact_conv(a: torch.Tensor, w: torch.Tensor, kernel: int) -> torch.Tensor:
    """'same' convolution (kernel 3 or 1) of integer-valued float64 tensors, exact (see module
    docstring).

    a: (cin, h, w) float64 integers; w: (cout, cin*kernel^2) float64 integers -> (cout, h, w).
    """
    cin, h, wd = a.shape
    if kernel == 1:
        return (w @ a.reshape(cin, -1)).view(-1, h, wd)
    padded = F.pad(a, (1, 1, 1, 1))
    rows_per_stripe = max(1, _IM2COL_MAX_ELEMENTS // (cin * 9 * wd))
    if rows_per_stripe >= h:
        return (w @ F.unfold(padded[None], 3)[0]).view(-1, h, wd)
    out = a.new_empty((w.shape[0], h, wd))  # written stripe by stripe: no list of stripes to concatenate
    for r0 in range(0, h, rows_per_stripe):
        r1 = min(h, r0 + rows_per_stripe)
        cols = F.unfold(padded[None, :, r0:r1 + 2], 3)[0]  # (cin*9, rows*wd)
        out[:, r0:r1] = (w @ cols).view(-1, r1 - r0, wd)
        del cols
    return out


class IntegerConvNet:
    """An exact integer network: the hyper-decoder and the context network of the decoder."""

    def __init__(self, spec: tuple[ConvLayer, ...], weights: list[torch.Tensor],
                 biases: list[torch.Tensor]):
        self.spec = spec
        self.weights = weights
        self.biases = biases
        self.check_bounds()

    def check_bounds(self) -> None:
        """Prove that no partial sum of any layer can reach 2**53 (so float64 is exact)."""
        a_max = ACT_MAX * 2 ** ACT_FRAC_BITS
        for s, w, b in zip(self.spec, self.weights, self.biases):
            if tuple(w.shape) != (s.cout, s.cin, s.kernel, s.kernel) or tuple(b.shape) != (s.cout,):
                raise ValueError(f"integer network weight shape {tuple(w.shape)} does not match {s}")
            worst = w.abs().to(torch.int64).flatten(1).sum(1).max().item() * a_max
            if worst + b.abs().max().item() >= EXACT_LIMIT:
                raise ValueError("integer network weights exceed the exact float64 range")

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        """Run on a (C, h, w) float64 tensor of integers (fixed point, ACT_FRAC_BITS, within
        +-ACT_MAX units); returns the output the same way."""
        return self.finish(self.accumulate(a))

    @property
    def upscale(self) -> int:
        """Output rows per input row (the product of the layers' pixel-shuffle factors)."""
        factor = 1
        for s in self.spec:
            factor *= s.upscale
        return factor

    @property
    def halo(self) -> int:
        """Input rows on each side of a stripe that decide its output: the receptive field's
        reach, in input rows (rounded up), through every convolution and pixel shuffle."""
        reach = 0  # in rows of the current layer's output, walking back from the last layer
        for s in reversed(self.spec):
            reach = -(-reach // s.upscale) + s.kernel // 2
        return reach

    def striped(self, a: torch.Tensor, rows: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """self(a) computed `rows` input rows at a time, each stripe with `halo` rows of input
        on either side (zero padding only at the plane's own edges, as for the whole plane), and
        written into one output of `dtype` (int32 holds any activation exactly): the same
        integers as self(a), with the float64 working set of a stripe.

        a: (C, h, w) tensor of integers (any dtype that holds them; converted per stripe)."""
        h, halo, up = a.shape[-2], self.halo, self.upscale
        out = None
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            a0, a1 = max(0, r0 - halo), min(h, r1 + halo)
            part = self(a[:, a0:a1].double())[:, (r0 - a0) * up:(r1 - a0) * up]
            if out is None:
                out = torch.empty((part.shape[0], h * up, part.shape[-1]), dtype=dtype)
            out[:, r0 * up:r1 * up] = part
            del part
        return out

    def accumulate(self, a: torch.Tensor, first_channel: int = 0) -> torch.Tensor:
        """The first layer's accumulator (before bias) from input channels first_channel ..
        first_channel + len(a) alone. The layer is linear, so the accumulators of disjoint
        channel groups add up to the whole input's, exactly: each is a partial sum within the
        bound check_bounds proves. Lets a caller reuse the share of inputs that do not change."""
        w = self.weights[0][:, first_channel:first_channel + a.shape[0]]
        return _exact_conv(a, w.double().flatten(1), self.spec[0].kernel)

    def finish(self, acc: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The network's output from its first layer's complete accumulator; `rows`: only these
        output channels (of a last layer without pixel shuffle), e.g. one channel group's
        parameters."""
        lim = ACT_MAX * 2 ** ACT_FRAC_BITS
        last = len(self.spec) - 1
        if rows is not None:
            _check_rows_layer(self.spec)
        for i, (s, w, b) in enumerate(zip(self.spec, self.weights, self.biases)):
            if i == last and rows is not None:
                w, b = w[rows], b[rows]
            if i:
                acc = _exact_conv(a, w.double().flatten(1), s.kernel)
            a = acc + b.double().view(-1, 1, 1)  # a new tensor: the caller's acc stays as it is
            del acc
            a.div_(2 ** WEIGHT_FRAC_BITS).floor_()  # in place: the same operations as floor(x / 2**k)
            a = a.clamp_(0, lim) if s.relu else a.clamp_(-lim, lim)
            if s.upscale > 1:
                a = F.pixel_shuffle(a[None], s.upscale)[0]
        return a
