"""Encoder effort: refine one image's latents for its own rate-distortion cost.

Every effort first refines the hyper-latents z for the rate alone (refine_hyper_latents: no
synthesis runs); effort 0 then codes the latents y the analysis transform gives, and encoder.py
fits the last layer's decoder adaptation in closed form (fit.py) at every effort. Higher efforts treat the
latents y and hyper-latents z as free variables and minimise

    bits / pixels + lambda * 255^2 * MSE        (the training loss, at the coded rate position)

for this very image, through the decoder's own synthesis g_s and the float twin of its
hyper-decoder, with stochastic Gumbel annealing (SGA: Yang, Bamler & Mandt 2020, "Improving
Inference for Neural Image Compression"): each latent is rounded down or up at random, with
odds that sharpen as a temperature falls, so the optimiser sees the rounding it will get.
This closes part of the amortization gap of an encoder trained on other images.

The refined latents are rounded and entropy-coded exactly as at effort 0 (the integer
hyper-decoder picks the tables). Jointly with them, the same steps fit a decoder adaptation
(adaptation.py): small corrections to the synthesis' biases and last weight, coded in the file when
they pay for their bits. A refinement that ends worse than its start (by the same cost,
hard-rounded) is dropped.
"""

from contextlib import contextmanager, nullcontext
import copy
import logging
import math
import time

import torch
from torch import nn
import torch.nn.functional as F

from ..constants import ACT_MAX, MAX_EFFORT
from ..entropy import EntropyCoder
from ..intnet import scale_from_index_value
from .adaptation import Adaptation, adapted_names, shallow_copy
from .model import ImageModel, gaussian_likelihood, interpolate_levels, rd_cost, ste_round, transform
from .payload import ADAPTATION_FLAG, flag_bits

# Optimisation steps of y and z at each effort level (effort 0 refines z alone): more steps
# lower the cost further, at the price of time (docs/RECORD.md).
EFFORT_STEPS = (0, 40, 160, 600)
assert len(EFFORT_STEPS) == MAX_EFFORT + 1
# Refinement holds the synthesis' activations for backpropagation, about 0.6 KB per pixel.
MAX_REFINE_PIXELS = 1 << 22
# Adam step on the latents (quantization-bin units): 0.01 up to rate level 7 (quality 70), growing
# 3x over the three levels above it, where larger moves pay (see step_size; docs/RECORD.md).
LEARNING_RATE = 0.01
STEP_GROWTH_FROM_LEVEL, STEP_GROWTH_PER_LEVEL = 7, 3 ** (1 / 3)
# SGA's temperature falls geometrically from TAU_START to TAU_END over the steps; these ends gave
# the lowest BD-rate of those tried (docs/RECORD.md).
TAU_START, TAU_END = 0.5, 0.15
# The refinement of z alone at every effort (refine_hyper_latents): Adam steps and their size, as
# many as keep effort 0 under its 5 s per Kodak image; more gained little (docs/RECORD.md).
HYPER_STEPS, HYPER_LEARNING_RATE = 20, 0.04
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
# Adam step on the decoder adaptation's deltas (adaptation.py), the best of those tried
# (docs/RECORD.md).
ADAPTATION_LEARNING_RATE = 1e-3

# Step exponents (step 2^-e) of the adaptation refinement fits, each compared by a synthesis.
STEP_EXPONENTS = (5, 6, 7, 8)
# Weight of rate_proxy in the fit (coded bits per proxy bit), the best of those tried
# (docs/RECORD.md).
RATE_PROXY_WEIGHT = 2.0
# Progress lines (logging, INFO) per refinement: long efforts take minutes.
PROGRESS_REPORTS = 4

log = logging.getLogger(__name__)


def synthesis_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 for the synthesis during refinement on CPUs with native bfloat16 dot products
    (AVX512-BF16 or AMX, through oneDNN), else float32 (None): emulated bfloat16 would be
    slower. Only the encoder's choice of latents sees it; on other machines each effort level
    takes about twice as long, for the same cost reduction (docs/RECORD.md)."""
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or \
        getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return torch.bfloat16 if device.type == "cpu" and native and torch.backends.mkldnn.is_available() else None


def lambda_at(lambdas: tuple[float, ...], rate_fx: int, frac_bits: int) -> float:
    """The rate-distortion trade-off at a fixed-point rate position (geometric interpolation,
    like the gains)."""
    lo = rate_fx >> frac_bits
    frac = (rate_fx & ((1 << frac_bits) - 1)) / (1 << frac_bits)
    hi = min(lo + 1, len(lambdas) - 1)
    return math.exp((1 - frac) * math.log(lambdas[lo]) + frac * math.log(lambdas[hi]))


# The encoder weighs distortion by the slope of the codec's own rate-distortion curve, not by the
# lambda a level was trained at: that slope is 1.0-1.5 x lambda, and 1.5 x paid (docs/RECORD.md).
SLOPE_SCALE = 1.5


def encoder_lambda(lambdas: tuple[float, ...], rate_fx: int, frac_bits: int) -> float:
    """The trade-off the encoder's decisions optimize at a rate position (refinement's loss, the
    closed-form fit's choice): SLOPE_SCALE x the trained lambda."""
    return SLOPE_SCALE * lambda_at(lambdas, rate_fx, frac_bits)


def step_size(rate_fx: int, frac_bits: int) -> float:
    """The refinement's Adam step at a fixed-point rate position: LEARNING_RATE, growing
    geometrically above level STEP_GROWTH_FROM_LEVEL (the top levels' latents gain from
    larger moves, the lower ones lose)."""
    above = max(0.0, rate_fx / (1 << frac_bits) - STEP_GROWTH_FROM_LEVEL)
    return LEARNING_RATE * STEP_GROWTH_PER_LEVEL ** above


def soft_round(v: torch.Tensor, tau: float) -> torch.Tensor:
    """SGA: v rounded down or up at random, relaxed with a Gumbel-softmax at temperature tau.

    The odds of each side fall with its distance d through -atanh(d) / tau, so values close
    to an integer almost always go to it, and all of them do as tau -> 0.
    """
    floor = torch.floor(v)
    frac = v - floor
    eps = 1e-5
    logits = torch.stack([-torch.atanh(frac.clamp(eps, 1 - eps)),
                          -torch.atanh((1 - frac).clamp(eps, 1 - eps))], dim=-1) / tau
    up = F.gumbel_softmax(logits, tau=tau, hard=False)[..., 1]
    return floor + up


class _Rate:
    """The float twin of the coded rate at one rate position: the hyper-decoder and the bits of
    quantized latents under their Gaussians."""

    def __init__(self, net: ImageModel, rate_fx: int):
        self.net = net
        # The hyper-decoder's float32 input gradients (convolutions over a few 1/64-scale
        # positions) varied from run to run on 2 threads; in float64 they do not, at no
        # noticeable cost (it is the smallest network).
        self.h_s = copy.deepcopy(net.h_s).double()
        self.hyper_inv_gain = interpolate_levels(net.log_hyper_inv_gain, rate_fx)[None, :, None, None]
        self.z_scale = scale_from_index_value(net.z_scale_t.round())[None, :, None, None]

    def hyper(self, z_hat: torch.Tensor) -> torch.Tensor:
        """h_s's output (means, then scale positions of y) for quantized hyper-latents."""
        return self.h_s((z_hat * self.hyper_inv_gain).clamp(-ACT_MAX, ACT_MAX).double()).float()

    def bits(self, y_hat: torch.Tensor, mean: torch.Tensor, t: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
        """Bits of y_hat under N(mean, scale(t)) plus those of z_hat under z's prior."""
        return -torch.log2(gaussian_likelihood(y_hat, mean, scale_from_index_value(t))).sum() \
            - torch.log2(gaussian_likelihood(z_hat, torch.zeros_like(z_hat), self.z_scale)).sum()

    def coded_bits(self, y: torch.Tensor, z_hat: torch.Tensor, quantize) -> tuple[torch.Tensor, torch.Tensor]:
        """Bits of y (rounded about its means by `quantize`) and z_hat, through the context model's
        two passes, and the quantized y."""
        mean, t, y_hat = self.net.latent_parameters(self.hyper(z_hat), y, quantize)
        return self.bits(y_hat, mean, t, z_hat), y_hat


@contextmanager
def adapted_forward(g_s: nn.Module, deltas: list[torch.Tensor]):
    """Within the block, a copy of g_s (adaptation.shallow_copy: the shared model is never hooked)
    computes as if its adapted parameters (adapted_names) were moved by `deltas`, differentiably in
    the deltas (for the encoder's fit; the decoder uses `Adaptation.apply`).

    Forward hooks add each delta's share to its convolution's output: a bias delta as is, a
    weight delta as the convolution of the input by it (convolution is linear in its weight).
    Moving the parameters themselves (torch.func.functional_call) is much slower: a convolution
    whose bias needs a gradient also computes its weight's (docs/RECORD.md).
    """
    g_s = shallow_copy(g_s)
    modules = dict(g_s.named_modules())

    def hook(name: str, delta: torch.Tensor):
        module_name, kind = name.rsplit(".", 1)
        module = modules[module_name]
        if kind == "bias":
            return module.register_forward_hook(lambda m, inputs, out: out + delta.view(1, -1, 1, 1).to(out.dtype))
        assert isinstance(module, nn.Conv2d), "only a Conv2d's weight is adapted"
        return module.register_forward_hook(lambda m, inputs, out: out + m._conv_forward(inputs[0], delta, None))

    handles = [hook(name, delta) for name, delta in zip(adapted_names(g_s), deltas)]
    try:
        yield g_s
    finally:
        for handle in handles:
            handle.remove()


def rate_proxy(deltas: list[torch.Tensor]) -> torch.Tensor:
    """A differentiable stand-in for the deltas' coded bits: sum(log2(1 + |d| / 2^-6)), about
    the length of each symbol's magnitude at step 2^-6. Without it the fit spends bits on deltas
    that barely lower the distortion."""
    return sum(torch.log2(1 + d.abs() * 2 ** 6).sum() for d in deltas)



@contextmanager
def _seeded(seed: int):
    """torch's global generator seeded for the block (SGA draws from it), then restored."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state)


def _temperature(step: int, steps: int) -> float:
    """SGA's temperature at a step: falling geometrically from TAU_START to TAU_END."""
    return TAU_START * (TAU_END / TAU_START) ** (step / max(1, steps - 1))


class _Cost:
    """The refinement objective for one image at one rate position."""

    def __init__(self, net: ImageModel, x: torch.Tensor, rate_fx: int, lam: float, dtype: torch.dtype | None):
        self.net, self.x = net, x
        self.rate = _Rate(net, rate_fx)
        self.inv_gain = interpolate_levels(net.log_inv_gain, rate_fx)[None, :, None, None]
        self.lam = lam
        self.pixels = x.shape[-2] * x.shape[-1]
        self.dtype = dtype  # of the synthesis (see synthesis_dtype)

    def __call__(self, y: torch.Tensor, z: torch.Tensor, quantize, deltas: list[torch.Tensor] | None = None
                 ) -> torch.Tensor:
        """The cost of latents (y, z) rounded by `quantize`, the synthesis' adapted parameters
        moved by `deltas` (adaptation.py; None: as shipped)."""
        bits, y_hat = self.rate.coded_bits(y, quantize(z), quantize)
        with adapted_forward(self.net.g_s, deltas) if deltas is not None else nullcontext(self.net.g_s) as g_s:
            x_hat = transform(g_s, y_hat * self.inv_gain, self.dtype)[..., :self.x.shape[-2], :self.x.shape[-1]]
        return rd_cost(bits / self.pixels, torch.mean((x_hat - self.x) ** 2), self.lam)


def refine_latents(net: ImageModel, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, rate_fx: int,
                   effort: int, lambdas: tuple[float, ...], frac_bits: int, coder: EntropyCoder, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor, Adaptation | None]:
    """Refined (y, z) for image x (1,3,H,W in [0,1]) at a rate position, and the decoder
    adaptation fitted with them (adaptation.py; None when it does not pay for its bits).

    Of the start, the refined latents, and the refined latents with the adaptation quantized at
    each step of STEP_EXPONENTS (its bits counted), the one with the lowest hard-rounded cost is
    returned. Deterministic for a given seed and configuration (threads, and whether the CPU has
    native bfloat16: see synthesis_dtype). The network's parameters must not require gradients.
    """
    steps = EFFORT_STEPS[effort]
    if steps == 0:
        return y, z, None
    lam = encoder_lambda(lambdas, rate_fx, frac_bits)
    cost = _Cost(net, x, rate_fx, lam, synthesis_dtype(x.device))
    y_var, z_var = y.clone().requires_grad_(True), z.clone().requires_grad_(True)
    params = dict(net.g_s.named_parameters())
    deltas = [torch.zeros_like(params[name], requires_grad=True) for name in adapted_names(net.g_s)]
    opt = torch.optim.Adam([{"params": [y_var, z_var], "lr": step_size(rate_fx, frac_bits)},
                            {"params": deltas, "lr": ADAPTATION_LEARNING_RATE}])
    start_time = time.perf_counter()
    with _seeded(seed), torch.enable_grad():
        for step in range(steps):
            tau = _temperature(step, steps)
            loss = cost(y_var, z_var, lambda v: soft_round(v, tau), deltas) \
                + RATE_PROXY_WEIGHT * rate_proxy(deltas) / cost.pixels
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (step + 1) % max(1, steps // PROGRESS_REPORTS) == 0:
                log.info("effort %d: refined %d/%d steps, %.0f s", effort, step + 1, steps,
                         time.perf_counter() - start_time)
    exact = _Cost(net, x, rate_fx, lam, None)  # the final comparison in full precision
    y_var, z_var = y_var.detach(), z_var.detach()
    with torch.no_grad():
        options = [(exact(y, z, torch.round), y, z, None), (exact(y_var, z_var, torch.round), y_var, z_var, None)]
        for exponent in STEP_EXPONENTS:
            adaptation = Adaptation.quantize(deltas, exponent, coder)
            bpp = adaptation.bits(coder, flag_bits(rate_fx, ADAPTATION_FLAG)) / exact.pixels
            options.append((exact(y_var, z_var, torch.round, adaptation.deltas()) + bpp, y_var, z_var, adaptation))
    return min(options, key=lambda option: float(option[0]))[1:]


def refine_hyper_latents(net: ImageModel, y: torch.Tensor, z: torch.Tensor, rate_fx: int, seed: int = 0
                         ) -> torch.Tensor:
    """The hyper-latents z (1, C_z, h, w) refined for the bits of themselves and of the latents y
    they code, at a rate position: the first refinement at every effort, and effort 0's only
    one (no synthesis runs).

    The hyper-analysis was trained on noisy rates and is amortized over many images; a few SGA
    steps (as in refine_latents, on z alone) find hyper-latents whose tables fit this image's y
    better. z moves y's means, so its rounding, and so its pixels a little. Each step prices y
    under h_s's parameters plus the context model's correction held at its value for the
    analysed z: given h, the context model moves a latent's parameters little, and skipping its
    two passes leaves the hyper-decoder as a step's cost, under half of a step with them
    (docs/RECORD.md). Returns the analysed z where the refined one would cost more bits (priced
    with the context model's two passes).
    """
    rate = _Rate(net, rate_fx)
    with torch.no_grad():
        start = torch.round(z)
        h = rate.hyper(start)
        mean, t, y_hat = net.latent_parameters(h, y, torch.round)
        start_bits = rate.bits(y_hat, mean, t, start)
        hyper_mean, hyper_t = h.chunk(2, dim=1)
        context_mean, context_t = mean - hyper_mean, t - hyper_t

    def bits(z_hat: torch.Tensor) -> torch.Tensor:
        hyper_mean, hyper_t = rate.hyper(z_hat).chunk(2, dim=1)
        mean, t = hyper_mean + context_mean, hyper_t + context_t
        return rate.bits(ste_round(y - mean) + mean, mean, t, z_hat)

    # Adam (Kingma & Ba 2015, with torch's defaults) written out: a process's first torch.optim
    # optimizer imports torch._dynamo, a large share of an effort-0 encode's time (docs/RECORD.md).
    refined, moment, square = z.clone(), torch.zeros_like(z), torch.zeros_like(z)
    with _seeded(seed), torch.enable_grad():
        for step in range(1, HYPER_STEPS + 1):
            refined.requires_grad_(True)
            grad, = torch.autograd.grad(bits(soft_round(refined, _temperature(step - 1, HYPER_STEPS))), refined)
            moment.lerp_(grad, 1 - ADAM_BETAS[0])
            square.mul_(ADAM_BETAS[1]).addcmul_(grad, grad, value=1 - ADAM_BETAS[1])
            denominator = (square.sqrt() / math.sqrt(1 - ADAM_BETAS[1] ** step)).add_(ADAM_EPS)
            refined = refined.detach().addcdiv(moment, denominator,
                                               value=-HYPER_LEARNING_RATE / (1 - ADAM_BETAS[0] ** step))
    with torch.no_grad():
        refined_bits, _ = rate.coded_bits(y, torch.round(refined), torch.round)
    return refined if refined_bits < start_bits else z
