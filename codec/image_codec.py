"""Coding with a frozen image-hp model: pixels <-> the FRAME payload of a `.neco` file.

FRAME payload layout for image-hp models (docs/FORMAT.md, section 10): a varint of the rate
position and flags (frame_fields.py), the decoder adaptation's block (adapt.py) and the table
offsets' row (table_offsets.py) where flagged, then the words of the constriction ANS (stack)
coder, decoded in this order: the adaptation's and the offsets' symbols where flagged, the z
symbols (C_z x ceil(H/64) x ceil(W/64), table = z_scale_index[c]), then the anchor y symbols
((row + column) even) of each channel group, then the other y symbols of each group (tables from
h_s(z) and the context network given what is decoded before, see _walk_latents, each shifted
by its channel's table offset); y is M x 4*ceil(H/64) x 4*ceil(W/64).

Analysis and synthesis run in tiles with a halo wider than their receptive field, so memory
stays bounded on large images; only the (float) pixel side is tiled, the probability path
sees whole latent planes.
"""

from functools import partial
import math

import torch

from neco.formats.errors import CorruptDataError, InvalidArgumentError
from neco.formats.varint import encode_varint

from .adapt import (Adaptation, adapted_names, fit_last_layer, last_layer, read_header as read_adaptation_header,
                    with_last_layer_input)
from .constants import ACT_FRAC_BITS, ACT_MAX, CDF_PRECISION, RATE_FRAC_BITS, SYMBOL_MAX
from .entropy import EntropyCoder, StreamEncoder, new_decoder
from .frame_fields import ADAPTATION_FLAG, TABLE_OFFSETS_FLAG, flag_bits, read_rate_position
from .refine import MAX_REFINE_PIXELS, encoder_lambda, refine_hyper_latents, refine_latents
from .image_model import (DOWNSAMPLING, ImageModelConfig, checkerboard, interpolate_levels, interpolate_levels_int,
                          integer_networks, model_from_frozen, pad_to_multiple)
from .intnet import mean_and_index
from .table_offsets import TableOffsets, choose as choose_table_offsets, read_row as read_table_offsets_row

LATENT_STRIDE = 16        # pixels per latent y
TILE_LATENTS = 64         # tile edge, in latents (1024 pixels)
# Integer activations are clamped to +-ACT_MAX units, fixed point with ACT_FRAC_BITS.
ACT_LIMIT_FX = ACT_MAX * 2 ** ACT_FRAC_BITS
HALO_LATENTS = 4          # >= receptive field of g_s (3.75 latents, its post-filter 4 pixels more) and g_a (30 pixels)


def _tiled(fn, x: torch.Tensor, unit_in: int, unit_out: int) -> torch.Tensor:
    """Apply a convolutional fn to x (1,C,H,W) in overlapping tiles of TILE_LATENTS latents.

    unit_in / unit_out: input / output samples per latent (16 and 1 for analysis, 1 and 16 for
    synthesis). Each tile is extended by HALO_LATENTS on every side and the halo is cropped
    from its output, so tiles join without seams.
    """
    lat_h, lat_w = x.shape[-2] // unit_in, x.shape[-1] // unit_in
    if lat_h <= TILE_LATENTS and lat_w <= TILE_LATENTS:
        return fn(x)
    rows = []
    for t0 in range(0, lat_h, TILE_LATENTS):
        t1 = min(lat_h, t0 + TILE_LATENTS)
        a0, a1 = max(0, t0 - HALO_LATENTS), min(lat_h, t1 + HALO_LATENTS)
        cols = []
        for s0 in range(0, lat_w, TILE_LATENTS):
            s1 = min(lat_w, s0 + TILE_LATENTS)
            b0, b1 = max(0, s0 - HALO_LATENTS), min(lat_w, s1 + HALO_LATENTS)
            out = fn(x[..., a0 * unit_in:a1 * unit_in, b0 * unit_in:b1 * unit_in])
            cols.append(out[..., (t0 - a0) * unit_out:(t1 - a0) * unit_out,
                            (s0 - b0) * unit_out:(s1 - b0) * unit_out])
        rows.append(torch.cat(cols, dim=-1))
    return torch.cat(rows, dim=-2)


class FrozenImageModel:
    """A shipped image-hp model, ready to code: float transforms plus the integer path."""

    def __init__(self, model_id: str, cfg: ImageModelConfig, tensors: dict, digest: bytes):
        self.model_id = model_id
        self.cfg = cfg
        self.digest = digest
        # channels-last convolutions run ~1.5x faster on CPU (oneDNN); every tensor that meets
        # these weights follows their layout
        self.net = model_from_frozen(cfg, tensors).eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.hyper, self.context = integer_networks(cfg, tensors)
        self.hyper_inv_gain_fx = tensors["hyper_inv_gain_fx"]
        self.z_index = tensors["z_scale_index"]
        self.coder = EntropyCoder(tensors["cdf_tables"].numpy())
        params = dict(self.net.g_s.named_parameters())
        self.adapted_shapes = [params[name].shape for name in adapted_names(self.net.g_s)]  # adapt.py
        self.max_rate_fx = (cfg.levels - 1) << RATE_FRAC_BITS
        # Fewest bits any z position can cost (sum over channels of -log2 of the likeliest
        # symbol): a payload shorter than that for the header's size is corrupt, which
        # stops a lying header from making the decoder allocate for a huge image.
        tables = tensors["cdf_tables"].double()
        self._z_min_bits = float(sum(CDF_PRECISION - torch.log2(tables[i].max()) for i in self.z_index))

    def rate_fx_from_quality(self, quality: float) -> int:
        """Quality 0..100 maps linearly onto the trained rate levels."""
        if not 0 <= quality <= 100 or math.isnan(quality):
            raise InvalidArgumentError(f"quality must be in 0..100, got {quality}")
        return round(quality / 100 * self.max_rate_fx)

    @torch.no_grad()
    def analyse(self, x: torch.Tensor, device: str = "cpu") -> torch.Tensor:
        """g_a of a (3,H,W) uint8 image, before gains: (1, M, 4*ceil(H/64), 4*ceil(W/64))."""
        self.net.to(device)
        xp = pad_to_multiple(x[None].float().to(device) / 255, DOWNSAMPLING)
        return _tiled(self.net.g_a, xp, LATENT_STRIDE, 1)

    def _z_indices(self, shape) -> torch.Tensor:
        return self.z_index.view(-1, 1, 1).expand(shape)

    @torch.no_grad()
    def code_latents(self, y0: torch.Tensor, rate_fx: int, effort: int = 0,
                     pixels: torch.Tensor | None = None) -> tuple[bytes, dict]:
        """Code analysed latents at a rate position; returns (payload, stats).

        Given the image `pixels` ((3,H,W) uint8), the hyper-latents are refined for the rate
        (refine.refine_hyper_latents), effort > 0 then refines the latents for the image
        (refine.refine_latents, which may fit a decoder adaptation), and at every effort the
        synthesis' last layer is corrected in closed form for the coded latents where that pays
        (adapt.fit_last_layer). Without pixels (a rate search's probes) the latents are coded as
        analysed.
        """
        device, adaptation = y0.device, None
        y = y0 * interpolate_levels(self.net.log_gain, rate_fx).to(device)[None, :, None, None]
        z = self.net.h_a(y) * interpolate_levels(self.net.log_hyper_gain, rate_fx).to(device)[None, :, None, None]
        if pixels is not None:
            z = refine_hyper_latents(self.net, y, z, rate_fx)
        if effort:
            x = pixels[None].float().to(device) / 255
            y, z, adaptation = refine_latents(self.net, x, y, z, rate_fx, effort, self.cfg.lambdas, RATE_FRAC_BITS,
                                              self.coder)
        z_sym = torch.round(z[0]).clamp(-SYMBOL_MAX, SYMBOL_MAX).to(torch.int64).cpu()
        y = y[0].double().cpu()
        coded_y = []  # (channel range, symbols, table rows) of each step, in coding order

        # Plain rounding: a dead zone (rounding r - d * sign(r)) cost BD-rate on the half-size
        # holdout photos, +0.8 % at d = 0.05, and rounding away from the mean +1.9 % at d = -0.03.
        # Choosing each latent's rounding by its exact bits and a second-order estimate of the
        # squared error (one synthesis gradient and a Hutchinson estimate of the diagonal of the
        # Gauss-Newton matrix, per channel) cost +68.7 % on 512^2 holdout crops: the estimate
        # ignores that neighbouring latents' changes add up in the pixels, and many flip at once.
        def quantize(channels: slice, mask: torch.Tensor, mean_fx: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            sym = torch.round(y[channels] - mean_fx.double() / 2 ** ACT_FRAC_BITS).clamp(-SYMBOL_MAX, SYMBOL_MAX)
            coded_y.append((channels, sym.to(torch.int64)[:, mask], index[:, mask]))
            return coded_y[-1][1]

        y_sym, mean_fx = self._walk_latents(self._hyper(z_sym, rate_fx), quantize)
        if pixels is not None:
            adaptation = self._fit_adaptation(rate_fx, y_sym, mean_fx, pixels, adaptation, device)
        first = rate_fx if adaptation is None else rate_fx | ADAPTATION_FLAG
        offsets = choose_table_offsets(self.coder, coded_y, self.cfg.latent_channels,
                                       flag_bits(first, TABLE_OFFSETS_FLAG))
        blocks = [block for block in (adaptation, offsets) if block is not None]
        coded = [pair for block in blocks for pair in block.coded()]  # (symbols, table rows) in coding order
        coded += [(z_sym, self._z_indices(z_sym.shape))]
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
        if offsets is not None:
            first |= TABLE_OFFSETS_FLAG
        return encode_varint(first) + b"".join(block.header() for block in blocks) + words, stats

    def _fit_adaptation(self, rate_fx: int, y_sym: torch.Tensor, mean_fx: torch.Tensor, pixels: torch.Tensor,
                        base: Adaptation | None, device) -> Adaptation | None:
        """`base` (refinement's adaptation, or None) with the closed-form correction of the last
        layer for the coded latents (adapt.fit_last_layer), if it pays. Images beyond
        MAX_REFINE_PIXELS keep `base`: the fit holds the last layer's input, ~140 bytes per
        pixel, two to three times over at its peak."""
        height, width = pixels.shape[-2:]
        if height * width > MAX_REFINE_PIXELS:
            return base
        g_s = self.net.g_s if base is None else base.apply(self.net.g_s)
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
        out = self._synthesize(partial(with_last_layer_input, g_s), rate_fx, y_sym, mean_fx, height + margin,
                               width + margin, device).cpu()
        return out[:, :-3], pixels[None].float().cpu() / 255 - out[:, -3:, :height, :width]

    def _synthesize(self, fn, rate_fx: int, y_sym: torch.Tensor, mean_fx: torch.Tensor, height: int, width: int,
                    device) -> torch.Tensor:
        """fn (the synthesis, or a function of it) of decoded latents, in tiles, cropped to the image."""
        # The bin centres, not the centroids: the latents within a nonzero bin lie 0.1-0.4 nearer the
        # mean at small scales, but the synthesis has learned the centres (it trains on rounded
        # latents); centroids from training photos lowered holdout PSNR by 0.1-0.4 dB at rate levels
        # 5 and 10, and at level 0 on three of four photos (the fourth gained 0.09 dB).
        y_hat = (y_sym.double() + mean_fx.double() / 2 ** ACT_FRAC_BITS).float()
        inv_gain = interpolate_levels(self.net.log_inv_gain, rate_fx)[:, None, None]
        self.net.to(device)
        return _tiled(fn, (y_hat * inv_gain)[None].to(device), 1, LATENT_STRIDE)[..., :height, :width]

    def _hyper(self, z_sym: torch.Tensor, rate_fx: int) -> torch.Tensor:
        """Integer hyper-decoder output h (2M, 4h, 4w) for z symbols at a rate position."""
        gain = interpolate_levels_int(self.hyper_inv_gain_fx, rate_fx).view(-1, 1, 1)
        return self.hyper((z_sym * gain).clamp(-ACT_LIMIT_FX, ACT_LIMIT_FX).double())

    def _walk_latents(self, h: torch.Tensor, next_symbols) -> tuple[torch.Tensor, torch.Tensor]:
        """Visit the y symbols in coding order, computing each group's probabilities from what
        is decoded before it: the anchors ((row + column) even) of each channel group in turn,
        then the other positions of each group in turn. Returns (y symbols, means fixed-point).

        next_symbols(channels, mask, mean_fx, index) gives the symbols of those channels at the
        mask positions (the encoder quantizes, the decoder decodes); mean_fx and index are the
        channels' parameters at every position. The context network sees [h, decoded anchors,
        decoded latents of earlier groups in this pass]; its first layer's share from each input
        is accumulated exactly once (IntegerConvNet.accumulate) and `finish` computes only the
        current group's rows.
        """
        anchor = checkerboard(*h.shape[-2:])
        y_sym = torch.zeros((self.cfg.latent_channels, *h.shape[-2:]), dtype=torch.int64)
        mean_fx = torch.zeros_like(y_sym)
        from_h = self.context.accumulate(h)
        self._pass(h, from_h, anchor, y_sym, mean_fx, next_symbols)
        acc = from_h + self.context.accumulate(self._values(y_sym, mean_fx, anchor), 2 * self.cfg.latent_channels)
        self._pass(h, acc, ~anchor, y_sym, mean_fx, next_symbols)
        return y_sym, mean_fx

    def _pass(self, h: torch.Tensor, acc: torch.Tensor, mask: torch.Tensor, y_sym: torch.Tensor,
              mean_fx: torch.Tensor, next_symbols) -> None:
        """Every channel group in turn at the mask positions of one pass, filling y_sym and
        mean_fx there; `acc` is the context network's first-layer accumulator from h and the
        anchors, to which each group adds the previous group's decoded latents (channel context)."""
        groups = self.cfg.group_slices()
        for k, group in enumerate(groups):
            if k:
                prev = groups[k - 1]
                channel_context = self._values(y_sym[prev], mean_fx[prev], mask)
                acc = acc + self.context.accumulate(channel_context, 3 * self.cfg.latent_channels + prev.start)
            rows = self.cfg.group_rows(group)
            mean, index = mean_and_index((h[rows] + self.context.finish(acc, rows)).clamp(-ACT_LIMIT_FX, ACT_LIMIT_FX))
            y_sym[group, mask] = next_symbols(group, mask, mean, index)
            mean_fx[group, mask] = mean[:, mask]

    @staticmethod
    def _values(symbols: torch.Tensor, mean_fx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decoded latents in fixed point (the context network's input) at mask positions, 0 elsewhere."""
        return ((symbols << ACT_FRAC_BITS) + mean_fx).clamp(-ACT_LIMIT_FX, ACT_LIMIT_FX).double() * mask

    @torch.no_grad()
    def decode_latents(self, payload: bytes, height: int, width: int):
        """Entropy-decode a FRAME payload: (rate_fx, z symbols, y symbols, y means fixed-point,
        decoder adaptation or None).

        Everything here is exact integer work; cross-configuration tests compare its output.
        """
        rate_fx, adapted, has_offsets, pos = read_rate_position(payload)
        if rate_fx > self.max_rate_fx:
            raise CorruptDataError(f"rate position {rate_fx} is beyond the model's range")
        if adapted:
            header, pos = read_adaptation_header(payload, pos, len(self.adapted_shapes))
        if has_offsets:
            offsets_row, pos = read_table_offsets_row(payload, pos)
        zh, zw = -(-height // DOWNSAMPLING), -(-width // DOWNSAMPLING)
        if 8 * (len(payload) - pos) + 64 < 0.5 * self._z_min_bits * zh * zw:
            raise CorruptDataError(f"payload of {len(payload)} bytes is too short for a "
                                   f"{width}x{height} image")
        dec = new_decoder(payload[pos:])
        adaptation = Adaptation.decode(self.coder, dec, header, self.adapted_shapes) if adapted else None
        offsets = TableOffsets.decode(self.coder, dec, offsets_row, self.cfg.latent_channels) if has_offsets else None
        z_sym = self.coder.decode(dec, self._z_indices((self.cfg.hyper_channels, zh, zw)))

        def decode_symbols(channels: slice, mask: torch.Tensor, mean_fx: torch.Tensor, index: torch.Tensor):
            rows = index[:, mask]
            return self.coder.decode(dec, rows if offsets is None else offsets.shifted(channels, rows))

        y_sym, mean_fx = self._walk_latents(self._hyper(z_sym, rate_fx), decode_symbols)
        return rate_fx, z_sym, y_sym, mean_fx, adaptation

    @torch.no_grad()
    def decode(self, payload: bytes, height: int, width: int, device: str = "cpu") -> torch.Tensor:
        """FRAME payload -> (3, height, width) uint8 image."""
        rate_fx, _, y_sym, mean_fx, adaptation = self.decode_latents(payload, height, width)
        g_s = self.net.g_s if adaptation is None else adaptation.apply(self.net.g_s)
        x_hat = self._synthesize(g_s, rate_fx, y_sym, mean_fx, height, width, device)
        return (x_hat[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu()
