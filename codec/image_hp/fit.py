"""The encoder's closed-form decoder adaptation: the synthesis' last layer corrected for the coded
latents of this image by least squares, then quantized for rate and distortion together
(adaptation.py holds what the decoder applies). It runs at every effort, at the price of about
one and a half decodes (one synthesis pass and a Gram matrix of ~26 kMAC per pixel).
"""

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..constants import SYMBOL_MAX
from ..entropy import EntropyCoder
from .adaptation import Adaptation, adapted_names, cheapest_row

# Step exponents (step 2^-e) the fit tries, coarse to fine, compared by their exact cost.
FIT_STEP_EXPONENTS = (2, 3, 4, 5, 6, 7, 8, 9)


def last_layer(g_s: nn.Module) -> nn.Conv2d:
    """The synthesis' last convolution (the one whose weight is adapted), which the closed-form
    fit corrects."""
    return g_s.get_submodule(adapted_names(g_s)[-1].rsplit(".", 1)[0])


def with_last_layer_input(g_s: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """g_s(v) with the input of its last convolution before it on the channel axis: (1, C + 3,
    H, W). Pixel-aligned, so it can be computed in tiles like the synthesis itself."""
    seen = []
    handle = last_layer(g_s).register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    try:
        out = g_s(v)
    finally:
        handle.remove()
    return torch.cat([seen[0], out], dim=1)



# Ridge weights (times the mean diagonal of the features' Gram matrix, > 0 thanks to the constant
# feature) the closed-form fit tries: the cost of each is measured and the cheapest kept. The
# smallest keeps the system regular where features are linearly dependent (a ReLU that never
# fires on this image).
RIDGE_WEIGHTS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# Pixels per chunk (whole rows, at least one) when the fit accumulates its Gram matrix: bounds
# the unfolded copy of the features (C k k floats per pixel) to ~75 MB.
FIT_PIXELS = 1 << 16


def fit_last_layer(g_s: nn.Module, features: torch.Tensor, residual: torch.Tensor, lam: float,
                   coder: EntropyCoder, flag_bits: int, base: "Adaptation | None" = None) -> "Adaptation | None":
    """`base` (an adaptation, or None) plus a closed-form correction of the last convolution,
    or `base` itself when no correction lowers the cost bits / pixels + lam * 255^2 * MSE.

    g_s is the synthesis with `base` applied; `features` (1, C, H', W') is the input of its last
    convolution (H' >= H, W' >= W: see _normal_equations) and `residual` (1, 3, H, W) the target
    minus its output; `flag_bits` is what the adaptation's flag adds to the payload's first
    varint (payload.flag_bits). The output is linear in that layer's weight and bias, so
    the correction that best fits the residual solves a least-squares problem: a Wiener filter, as HEVC/VVC
    encoders derive their adaptive loop filter (Tsai et al. 2013, "Adaptive Loop Filtering for
    Video Coding", IEEE JSTSP 7(6)).
    For each step exponent of FIT_STEP_EXPONENTS (none coarser than base's, which must stay
    exact) the solution of the ridge weight whose rounding costs least is then quantized for
    rate and distortion together (_rd_quantized), until a step costs more than the coarser one
    before it (the cost falls, then rises as the step shrinks); the cheapest result is kept. A
    cost is the exact bits plus the MSE, a quadratic form in the correction: exact for this
    linear layer, before clamping to [0, 1] and rounding to 8 bits.

    The features are the layer's own inputs: more of them (the post-filter's input, its squares)
    cost BD-rate once quantized and coded (docs/RECORD.md).
    """
    layer = last_layer(g_s)
    gram, cross = _normal_equations(features, residual, layer.kernel_size[0])
    pixels = residual.shape[-2] * residual.shape[-1]
    kappa = lam * 255 ** 2 * pixels / residual.numel()   # bits per unit of squared-error change
    names, params = adapted_names(g_s), dict(g_s.named_parameters())
    last = (len(names) - 1, names.index(names[-1].replace(".weight", ".bias")))   # weight, bias
    if base is None:
        exponents, start, start_bits = FIT_STEP_EXPONENTS, [torch.zeros(params[name].shape) for name in names], 0.0
    else:  # steps no coarser than base's, at which its symbols stay within SYMBOL_MAX: base stays exact
        largest = max(int(s.abs().max()) for s in base.symbols)
        exponents = [e for e in FIT_STEP_EXPONENTS
                     if e >= base.step_exponent and largest << (e - base.step_exponent) <= SYMBOL_MAX]
        start, start_bits = base.deltas(), base.bits(coder, flag_bits)
    start_columns = _columns(start[last[0]], start[last[1]]).double()

    def cost(adaptation: Adaptation) -> float:
        """Bits the adaptation adds plus kappa times the squared-error change it brings."""
        deltas = adaptation.deltas()
        change = squared_error_change(gram, cross, *(deltas[i] - start[i] for i in last))
        return adaptation.bits(coder, flag_bits) - start_bits + kappa * change

    eye = torch.eye(len(gram), dtype=gram.dtype) * float(torch.diagonal(gram).mean())
    solutions = [torch.linalg.solve(gram + ridge * eye, cross) for ridge in RIDGE_WEIGHTS]   # (C k k + 1, 3)
    best, best_cost, previous = base, 0.0, float("inf")
    for exponent in exponents:
        rounded = []
        for solution in solutions:
            deltas = list(start)
            deltas[last[0]] = start[last[0]] + solution[:-1].T.reshape(start[last[0]].shape).float()
            deltas[last[1]] = start[last[1]] + solution[-1].float()
            rounded.append(Adaptation.quantize(deltas, exponent, coder))
        adaptation = _rd_quantized(min(rounded, key=cost), last, start_columns, gram, cross, kappa, coder)
        adaptation_cost = cost(adaptation)
        if adaptation_cost > previous:
            break
        previous = adaptation_cost
        if adaptation_cost < best_cost:
            best, best_cost = adaptation, adaptation_cost
    return best


def _columns(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The last layer's weight (out, C, k, k) and bias (out,) as the columns of the normal
    equations: (C k k + 1, out), the k x k patches of each input channel, then the constant."""
    return torch.cat([weight.reshape(len(bias), -1).T, bias[None]])


# Sweeps of _rd_quantized's coordinate descent at most; it stops at the first that moves no
# symbol, before this cap except at the finest steps of the top rates (docs/RECORD.md).
RDO_SWEEPS = 50


def _rd_quantized(adaptation: Adaptation, last: tuple[int, int], start_columns: torch.Tensor, gram: torch.Tensor,
                  cross: torch.Tensor, kappa: float, coder: EntropyCoder) -> Adaptation:
    """The adaptation with its last layer's symbols moved, one at a time, by one step or to
    zero while that lowers bits + kappa * squared-error change: rate-distortion optimized
    quantization by coordinate descent, as video encoders choose their transform coefficients
    (Karczewicz et al. 2008, "Rate distortion optimized quantization"), here against an exact
    distortion: the quadratic form of the normal equations. Rounding the least-squares solution
    spends bits on symbols that barely lower the error; this saves them (docs/RECORD.md).

    Each sweep prices every symbol's best move at once, then makes the moves that pay, best
    first, each priced again after the moves before it. The table rows (weight, bias) are chosen
    afresh before every sweep, so no sweep raises the cost; it stops when no move pays.
    """
    step = 2.0 ** -adaptation.step_exponent
    s = _columns(*(adaptation.symbols[i] for i in last)).numpy().copy()       # (features, out) int64
    g_mat, diag = gram.numpy(), torch.diagonal(gram).numpy()
    grad = g_mat @ (s * step - start_columns.numpy()) - cross.numpy()      # half the error's gradient
    table_bits = coder.code_lengths
    bias_row = len(s) - 1

    def gain(code_change, move, i, column):
        """Change of bits + kappa * squared error when symbol (i, column) moves by `move` steps
        and its code length by code_change (numbers, or arrays over all symbols)."""
        dm = move * step
        return code_change + kappa * (dm * dm * diag[i] + 2 * dm * grad[i, column])

    for _ in range(RDO_SWEEPS):
        weight_bits = table_bits[cheapest_row(table_bits, s[:-1])]
        bias_bits = table_bits[cheapest_row(table_bits, s[-1])]
        # every symbol's best move, priced at once: one step down, one up, or to zero
        options = np.clip(np.stack([s - 1, s + 1, np.zeros_like(s)]), -SYMBOL_MAX, SYMBOL_MAX)
        code = weight_bits[options + SYMBOL_MAX] - weight_bits[s + SYMBOL_MAX]
        code[:, bias_row] = bias_bits[options[:, bias_row] + SYMBOL_MAX] - bias_bits[s[bias_row] + SYMBOL_MAX]
        gains = gain(code, options - s, np.arange(len(s))[:, None], np.arange(s.shape[1])).min(0)
        paying = np.argwhere(gains < 0)
        if not len(paying):
            break
        for i, column in paying[np.argsort(gains[gains < 0], kind="stable")].tolist():
            bits = bias_bits if i == bias_row else weight_bits
            v = int(s[i, column])
            priced = [(gain(float(bits[o + SYMBOL_MAX] - bits[v + SYMBOL_MAX]), o - v, i, column), o - v)
                      for o in {v - 1, v + 1, 0} - {v} if abs(o) <= SYMBOL_MAX]
            best_gain, move = min(priced)
            if best_gain < 0:
                s[i, column] += move
                grad[:, column] += g_mat[:, i] * (move * step)
    symbols = list(adaptation.symbols)
    weight, bias = (symbols[i] for i in last)
    symbols[last[0]] = torch.from_numpy(s[:-1].T.copy()).reshape(weight.shape)
    symbols[last[1]] = torch.from_numpy(s[-1].copy()).reshape(bias.shape)
    return Adaptation.from_symbols(adaptation.step_exponent, tuple(symbols), coder)




def squared_error_change(gram: torch.Tensor, cross: torch.Tensor, weight_delta: torch.Tensor,
                         bias_delta: torch.Tensor) -> float:
    """Change of the residual's sum of squares when the last layer's weight and bias move by
    these deltas: m'Gm - 2 m'c, with m the deltas as columns in the order of the normal
    equations' features (the k x k patches of each input channel, then the constant)."""
    moved = _columns(weight_delta, bias_delta).double()
    return float(torch.sum(moved * (gram @ moved)) - 2 * torch.sum(moved * cross))


def _normal_equations(features: torch.Tensor, residual: torch.Tensor, k: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(Gram matrix of the k x k patches of `features` around each residual pixel, with a
    constant 1 appended, their correlation with the residual), float64, accumulated over chunks
    of whole rows of about FIT_PIXELS pixels.

    `features` may reach past the residual's bottom and right edges (the synthesis runs on the
    padded image and its last layer sees those values there); beyond its own edges it is zero,
    as the convolution pads it.

    The patches are never unfolded: the Gram block of taps a and b sums X(q) X(q + b - a)^T over
    the pixels shifted by a, so one product per tap offset over the pixels every shift covers
    (the chunk's core), plus the few border rows and columns each shift adds, gives all k^4
    blocks: (2k - 1)^2 instead of k^4 products of C x C per pixel (25 against 81 at k = 3).
    Products are float32, as are the sums (float64 sums are far slower); each chunk's are
    accumulated in float64 (docs/RECORD.md).
    """
    pad = k // 2
    height, width = residual.shape[-2:]
    features = features[..., :height + pad, :width + pad]
    feature_height, feature_width = features.shape[-2:]
    channels, taps = features.shape[1], [(i, j) for i in range(k) for j in range(k)]
    blocks = torch.zeros(channels, k * k, channels, k * k, dtype=torch.float64)
    sums = torch.zeros(channels, k * k, dtype=torch.float64)
    correlation = torch.zeros(channels, k * k, residual.shape[1], dtype=torch.float64)
    count, target_sums = 0, torch.zeros(residual.shape[1], dtype=torch.float64)
    rows = max(1, FIT_PIXELS // width)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        top, bottom = max(0, r0 - pad), min(feature_height, r1 + pad)
        # x[:, p + a] for p = (0, 0) ... (r1 - r0 - 1, width - 1) is the patch tap a of pixel (r0 + p)
        x = F.pad(features[0, :, top:bottom, :].float(),
                  (pad, width + pad - feature_width, pad - (r0 - top), r1 + pad - bottom))
        target = residual[0, :, r0:r1, :].float()
        _accumulate_chunk(x, target, taps, 2 * pad, blocks, sums, correlation)
        count += target.shape[1] * target.shape[2]
        target_sums += target.sum((1, 2), dtype=torch.float64)
    dims = channels * k * k
    gram = torch.zeros(dims + 1, dims + 1, dtype=torch.float64)
    gram[:dims, :dims] = blocks.reshape(dims, dims)
    gram[:dims, dims] = gram[dims, :dims] = sums.reshape(dims)
    gram[dims, dims] = count
    cross = torch.cat([correlation.reshape(dims, -1), target_sums[None]])
    return gram, cross


def _accumulate_chunk(x: torch.Tensor, target: torch.Tensor, taps: list[tuple[int, int]], span: int,
                      blocks: torch.Tensor, sums: torch.Tensor, correlation: torch.Tensor) -> None:
    """Add one chunk's share to the Gram blocks, patch sums and correlations (_normal_equations).

    x (C, rows + span, width + span) holds the padded features, target (T, rows, width) the
    residual. A product over a rectangle of x with itself shifted by d reads both as strided
    matrices of the flattened x: rows of x's full width, whose columns outside the rectangle are
    zeroed in the first operand (a masked copy) or multiply zeros of the target."""
    channels, _, full_width = x.shape
    rows, width = target.shape[1:]
    flat = x.reshape(channels, -1)
    # core: the pixels q that q - a + (0..rows, 0..width) covers for every tap a (none in a
    # chunk of at most `span` rows or columns: then each tap's rectangle is summed whole)
    has_core = rows > span and width > span
    if has_core:
        masked = torch.zeros_like(x)
        masked[:, span:rows, span:width] = x[:, span:rows, span:width]
        masked = masked.reshape(channels, -1)
        first, last = span * full_width + span, (rows - 1) * full_width + width

    def product_over_core(dr: int, dc: int) -> torch.Tensor:
        if not has_core:
            return torch.zeros(channels, channels)
        shift = dr * full_width + dc
        return masked[:, first:last] @ flat[:, first + shift:last + shift].T

    def product_over(r: tuple[int, int], c: tuple[int, int], dr: int, dc: int) -> torch.Tensor:
        a = x[:, r[0]:r[1], c[0]:c[1]].reshape(channels, -1)
        return a @ x[:, r[0] + dr:r[1] + dr, c[0] + dc:c[1] + dc].reshape(channels, -1).T

    cores = {}
    for u, (ar, ac) in enumerate(taps):
        rect = ((ar, ar + rows), (ac, ac + width))   # the pixels tap a reads
        if has_core:   # rect minus the core: the rows above and below it, the columns beside it
            borders = [((ar, span), rect[1]), ((rows, ar + rows), rect[1]),
                       ((span, rows), (ac, span)), ((span, rows), (width, ac + width))]
        else:
            borders = [rect]
        borders = [(r, c) for r, c in borders if r[1] > r[0] and c[1] > c[0]]
        for v in range(u, len(taps)):
            dr, dc = taps[v][0] - ar, taps[v][1] - ac
            if (dr, dc) not in cores:
                cores[dr, dc] = product_over_core(dr, dc)
            block = cores[dr, dc].clone()
            for r, c in borders:
                block += product_over(r, c, dr, dc)
            blocks[:, u, :, v] += block.double()
            if v != u:
                blocks[:, v, :, u] += block.T.double()
        sums[:, u] += x[:, rect[0][0]:rect[0][1], rect[1][0]:rect[1][1]].sum((1, 2)).double()
    # the target laid on x's grid (zeros in the padding columns), flattened over the rows it spans
    laid = F.pad(target, (0, full_width - width)).reshape(target.shape[0], -1)[:, :(rows - 1) * full_width + width]
    for u, (ar, ac) in enumerate(taps):
        shift = ar * full_width + ac
        correlation[:, u] += (flat[:, shift:shift + laid.shape[1]] @ laid.T).double()
