"""Encoding with a frozen image-hp model: pixels -> the FRAME payload (decoder.py reads it back).

At every effort the hyper-latents are refined for the rate (refine.py), the synthesis' last layer
is corrected in closed form for the coded latents where that pays (fit.py), and per-channel table
offsets are sent where they save bits (choose_offsets); higher efforts refine the latents for
the image first. The payload's fields are written by payload.py.
"""

from functools import partial
import math
import warnings

import torch

from neco.formats.errors import InvalidArgumentError

from ..constants import ACT_FRAC_BITS, NUM_SCALES, RATE_FRAC_BITS, SYMBOL_MAX
from ..entropy import EntropyCoder, StreamEncoder
from . import payload
from .adaptation import Adaptation
from .decoder import LATENT_STRIDE, ImageHPDecoder, _tiled
from .fit import fit_last_layer, last_layer, with_last_layer_input
from .model import DOWNSAMPLING, interpolate_levels, pad_to_multiple
from .offsets import TableOffsets
from .payload import ADAPTATION_FLAG, TABLE_OFFSETS_FLAG, TABLE_ROW_BITS, flag_bits
from .refine import MAX_REFINE_PIXELS, encoder_lambda, refine_hyper_latents, refine_latents

# Table offsets the encoder tries, -SPAN..SPAN rows (each row ~13 % in scale).
SPAN = 8


class ImageHPEncoder:
    """Codes frames for an image-hp decoder (whose transforms and probability path it shares)."""

    def __init__(self, decoder: ImageHPDecoder):
        self.decoder = decoder
        self.model_id, self.digest, self.cfg = decoder.model_id, decoder.digest, decoder.cfg
        self.coder, self.max_rate_fx = decoder.coder, decoder.max_rate_fx

    def rate_fx_from_quality(self, quality: float) -> int:
        """Quality 0..100 maps linearly onto the trained rate levels."""
        if not 0 <= quality <= 100 or math.isnan(quality):
            raise InvalidArgumentError(f"quality must be in 0..100, got {quality}")
        return round(quality / 100 * self.max_rate_fx)

    @torch.no_grad()
    def analyse(self, x: torch.Tensor, device: str = "cpu") -> torch.Tensor:
        """g_a of a (3,H,W) uint8 image, before gains: (1, M, 4*ceil(H/64), 4*ceil(W/64))."""
        xp = pad_to_multiple(x[None].float().to(device) / 255, DOWNSAMPLING)
        return _tiled(self.decoder.net(device).g_a, xp, LATENT_STRIDE, 1)

    @torch.no_grad()
    def code_latents(self, y0: torch.Tensor, rate_fx: int, effort: int = 0,
                     pixels: torch.Tensor | None = None) -> tuple[bytes, dict]:
        """Code analysed latents at a rate position; returns (payload, stats).

        Given the image `pixels` ((3,H,W) uint8), the hyper-latents are refined for the rate
        (refine.refine_hyper_latents), effort > 0 then refines the latents for the image
        (refine.refine_latents, which may fit a decoder adaptation), and at every effort the
        synthesis' last layer is corrected in closed form for the coded latents where that pays
        (fit.fit_last_layer). Without pixels (a rate search's probes) the latents are coded as
        analysed.
        """
        if effort and pixels is not None and pixels.shape[-2] * pixels.shape[-1] > MAX_REFINE_PIXELS:
            height, width = pixels.shape[-2:]
            warnings.warn(f"effort {effort} refines images up to {MAX_REFINE_PIXELS:,} pixels; "
                          f"this {width}x{height} image is coded at effort 0", stacklevel=2)
            effort = 0
        device, adaptation, net = y0.device, None, self.decoder.net(y0.device)
        y = y0 * interpolate_levels(net.log_gain, rate_fx).to(device)[None, :, None, None]
        z = net.h_a(y) * interpolate_levels(net.log_hyper_gain, rate_fx).to(device)[None, :, None, None]
        if pixels is not None:
            z = refine_hyper_latents(net, y, z, rate_fx)
        if effort:
            x = pixels[None].float().to(device) / 255
            y, z, adaptation = refine_latents(net, x, y, z, rate_fx, effort, self.cfg.lambdas, RATE_FRAC_BITS,
                                              self.coder)
        z_sym = torch.round(z[0]).clamp(-SYMBOL_MAX, SYMBOL_MAX).to(torch.int64).cpu()
        y = y[0].double().cpu()
        coded_y = []  # (channel range, symbols, table rows) of each step, in coding order

        # Plain rounding about the mean: dead zones, rounding away from the mean and a per-latent
        # rate-distortion choice of the rounding all cost BD-rate (docs/RECORD.md).
        def quantize(channels: slice, mask: torch.Tensor, mean_fx: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            sym = torch.round(y[channels] - mean_fx.double() / 2 ** ACT_FRAC_BITS).clamp(-SYMBOL_MAX, SYMBOL_MAX)
            coded_y.append((channels, sym.to(torch.int64)[:, mask], index[:, mask]))
            return coded_y[-1][1]

        y_sym, mean_fx = self.decoder.walk_latents(self.decoder.hyper_output(z_sym, rate_fx), quantize)
        if pixels is not None:
            adaptation = self._fit_adaptation(rate_fx, y_sym, mean_fx, pixels, adaptation, device)
        first = rate_fx if adaptation is None else rate_fx | ADAPTATION_FLAG
        offsets = choose_offsets(self.coder, coded_y, self.cfg.latent_channels, flag_bits(first, TABLE_OFFSETS_FLAG))
        blocks = [block for block in (adaptation, offsets) if block is not None]
        coded = [pair for block in blocks for pair in block.coded()]  # (symbols, table rows) in coding order
        coded += [(z_sym, self.decoder.z_indices(z_sym.shape))]
        coded += [(symbols, rows if offsets is None else offsets.shifted(channels, rows))
                  for channels, symbols, rows in coded_y]
        enc = StreamEncoder()
        for symbols, indices in coded:
            self.coder.encode(enc, symbols, indices)
        words = enc.finish()
        stats = {"cross_entropy_bits": sum(self.coder.cross_entropy_bits(s, i) for s, i in coded),
                 "coded_bits": 8 * len(words),
                 "adaptation_bits": 0.0 if adaptation is None else
                 adaptation.bits(self.coder, flag_bits(rate_fx, ADAPTATION_FLAG))}
        return payload.write(rate_fx, None if adaptation is None else adaptation.head(),
                             None if offsets is None else offsets.row, words), stats

    def _fit_adaptation(self, rate_fx: int, y_sym: torch.Tensor, mean_fx: torch.Tensor, pixels: torch.Tensor,
                        base: Adaptation | None, device) -> Adaptation | None:
        """`base` (refinement's adaptation, or None) with the closed-form correction of the last
        layer for the coded latents (fit.fit_last_layer), if it pays. Images beyond
        MAX_REFINE_PIXELS keep `base`: the fit holds the last layer's input, ~140 bytes per
        pixel, two to three times over at its peak."""
        height, width = pixels.shape[-2:]
        if height * width > MAX_REFINE_PIXELS:
            return base
        g_s = self.decoder.net(device).g_s
        g_s = g_s if base is None else base.apply(g_s)
        features, residual = self._last_layer_inputs(g_s, rate_fx, y_sym, mean_fx, pixels, device)
        return fit_last_layer(g_s, features, residual, encoder_lambda(self.cfg.lambdas, rate_fx, RATE_FRAC_BITS),
                              self.coder, flag_bits(rate_fx, ADAPTATION_FLAG), base)

    def _last_layer_inputs(self, g_s, rate_fx: int, y_sym: torch.Tensor, mean_fx: torch.Tensor, pixels: torch.Tensor,
                           device) -> tuple[torch.Tensor, torch.Tensor]:
        """(the input of g_s's last layer for decoded latents, the image minus g_s's output), on
        the CPU. The input reaches the layer's half-width past the image's bottom and right edges,
        where the padded synthesis has it: the layer's window sees it there."""
        height, width = pixels.shape[-2:]
        margin = last_layer(g_s).kernel_size[0] // 2
        out = self.decoder.synthesize(partial(with_last_layer_input, g_s), rate_fx, y_sym, mean_fx, height + margin,
                               width + margin, device).cpu()
        return out[:, :-3], pixels[None].float().cpu() / 255 - out[:, -3:, :height, :width]


def choose_offsets(coder: EntropyCoder, coded: list[tuple[slice, torch.Tensor, torch.Tensor]], channels: int,
                   flag_bits: int) -> TableOffsets | None:
    """The offsets that code these latents in the fewest bits, counting their own symbols, their
    row byte and `flag_bits` (what setting the flag adds to the first varint), or None when no
    offsets save bits. `coded` holds (channel range, symbols (C, n), table rows (C, n)) per step."""
    table_bits = torch.from_numpy(coder.code_lengths)
    moves = torch.arange(-SPAN, SPAN + 1)
    bits = torch.zeros(channels, len(moves), dtype=torch.float64)      # channel, offset
    for group, symbols, rows in coded:
        columns = symbols + SYMBOL_MAX
        for k, move in enumerate(moves.tolist()):   # one shift at a time: memory of one step's symbols
            bits[group, k] += table_bits[(rows + move).clamp(0, NUM_SCALES - 1), columns].sum(-1)
    unshifted = float(bits[:, SPAN].sum())
    # for every row of the offsets' table: each channel's best offset under it, and the total
    totals = bits[None] + table_bits[:, moves + SYMBOL_MAX][:, None]      # row, channel, offset
    best, picks = totals.min(-1)
    costs = best.sum(-1) + TABLE_ROW_BITS + flag_bits
    row = int(torch.argmin(costs))
    if float(costs[row]) >= unshifted:
        return None
    return TableOffsets(row, moves[picks[row]].to(torch.int64))
