"""Decoding with a frozen image-hp model: the FRAME payload of a `.neco` file -> pixels.

The payload's fields are read by payload.py; its coded words are the constriction ANS (stack)
coder's, decoded in this order: the decoder adaptation's and the table offsets' symbols where
flagged (adaptation.py, offsets.py), the z symbols (C_z x ceil(H/64) x ceil(W/64), table =
z_scale_index[c]), then the anchor y symbols ((row + column) even) of each channel group, then
the other y symbols of each group (tables from h_s(z) and the context network given what is
decoded before, see walk_latents, each shifted by its channel's table offset); y is
M x 4*ceil(H/64) x 4*ceil(W/64). The encoder (encoder.py) walks the latents with this class.

Analysis and synthesis run in tiles with a halo wider than their receptive field, so memory
stays bounded on large images. The integer probability path (hyper-decoder, context network)
works in row stripes with the halo of its receptive field: integer arithmetic, so the stripes
give the same numbers as whole planes; whole planes are only its accumulators, the symbols and
means, and one group's parameters (a 4000x3000 decode peaks at ~0.93 GB RSS, torch included).
"""

import copy
import threading

import torch

from neco.formats.errors import CorruptDataError

from ..constants import ACT_FRAC_BITS, ACT_MAX, CDF_PRECISION, NUM_SCALES, RATE_FRAC_BITS
from ..entropy import EntropyCoder, new_decoder
from ..intnet import mean_and_index
from .adaptation import Adaptation, adapted_names
from .model import (DOWNSAMPLING, ImageModel, ImageModelConfig, checkerboard, interpolate_levels,
                    interpolate_levels_int, integer_networks, model_from_frozen)
from .offsets import TableOffsets
from . import synthesis
from .payload import read_head

LATENT_STRIDE = 16        # pixels per latent y
TILE_LATENTS = 64         # tile edge, in latents (1024 pixels)
# Integer activations are clamped to +-ACT_MAX units, fixed point with ACT_FRAC_BITS.
ACT_LIMIT_FX = ACT_MAX * 2 ** ACT_FRAC_BITS
# Elements (float64) of one row stripe of the integer networks' widest plane (2M channels):
# bounds their working set on large images (32 MB); any stripe gives the same integers.
_STRIPE_ELEMENTS = 1 << 22
HALO_LATENTS = 4          # >= receptive field of g_s (3.75 latents, its post-filter 4 pixels more) and g_a (30 pixels)


def _tiled(fn, x: torch.Tensor, unit_in: int, unit_out: int) -> torch.Tensor:
    """Apply a convolutional fn to x (1,C,H,W) in overlapping tiles of TILE_LATENTS latents.

    unit_in / unit_out: input / output samples per latent (16 and 1 for analysis, 1 and 16 for
    synthesis). Each tile is extended by HALO_LATENTS on every side and the halo is cropped
    from its output, so tiles join without seams; tiles are written into one output tensor, so
    a large image holds its result once (fn may already reduce it, e.g. to uint8 pixels).
    """
    lat_h, lat_w = x.shape[-2] // unit_in, x.shape[-1] // unit_in
    if lat_h <= TILE_LATENTS and lat_w <= TILE_LATENTS:
        return fn(x)
    result = None   # allocated at the first tile, which gives its channels, dtype and device
    for t0 in range(0, lat_h, TILE_LATENTS):
        t1 = min(lat_h, t0 + TILE_LATENTS)
        a0, a1 = max(0, t0 - HALO_LATENTS), min(lat_h, t1 + HALO_LATENTS)
        for s0 in range(0, lat_w, TILE_LATENTS):
            s1 = min(lat_w, s0 + TILE_LATENTS)
            b0, b1 = max(0, s0 - HALO_LATENTS), min(lat_w, s1 + HALO_LATENTS)
            out = fn(x[..., a0 * unit_in:a1 * unit_in, b0 * unit_in:b1 * unit_in])
            if result is None:
                result = out.new_empty((*out.shape[:-2], lat_h * unit_out, lat_w * unit_out))
            result[..., t0 * unit_out:t1 * unit_out, s0 * unit_out:s1 * unit_out] = \
                out[..., (t0 - a0) * unit_out:(t1 - a0) * unit_out, (s0 - b0) * unit_out:(s1 - b0) * unit_out]
    return result


def _to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Synthesis output in [0, 1] -> uint8 levels (per tile: the float image is never whole)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _device_key(device) -> str:
    """One name per device: "cpu" for every CPU device, "cuda:<index>" with the current index
    when none is given."""
    device = torch.device(device)
    if device.type == "cpu":
        return "cpu"
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


class ImageHPDecoder:
    """An image-hp model, ready to decode: the integer probability path, and the float
    transforms once per device they run on."""

    def __init__(self, model_id: str, cfg: ImageModelConfig, tensors: dict, digest: bytes):
        self.model_id = model_id
        self.cfg = cfg
        self.digest = digest
        # channels-last convolutions run ~1.5x faster on CPU (oneDNN); every tensor that meets
        # these weights follows their layout
        self._lock = threading.Lock()
        self._nets = {"cpu": model_from_frozen(cfg, tensors).eval().requires_grad_(False)
                      .to(memory_format=torch.channels_last)}
        self.hyper, self.context = integer_networks(cfg, tensors)
        self.hyper_inv_gain_fx = tensors["hyper_inv_gain_fx"]
        self.z_index = tensors["z_scale_index"]
        self.coder = EntropyCoder(tensors["cdf_tables"].numpy())
        g_s = self._nets["cpu"].g_s
        params = dict(g_s.named_parameters())
        self.adapted_shapes = [params[name].shape for name in adapted_names(g_s)]
        self.max_rate_fx = (cfg.levels - 1) << RATE_FRAC_BITS
        # Fewest bits any z position can cost (sum over channels of -log2 of the likeliest
        # symbol): a payload shorter than that for the header's size is corrupt, which
        # stops a lying header from making the decoder allocate for a huge image.
        tables = tensors["cdf_tables"].double()
        self._z_min_bits = float(sum(CDF_PRECISION - torch.log2(tables[i].max()) for i in self.z_index))

    def net(self, device="cpu") -> ImageModel:
        """The float transforms on a device: one instance per device, made on first use (under a
        lock: two threads never build two)."""
        key = _device_key(device)
        with self._lock:
            if key not in self._nets:
                self._nets[key] = copy.deepcopy(self._nets["cpu"]).to(key)
        return self._nets[key]

    def z_indices(self, shape) -> torch.Tensor:
        return self.z_index.view(-1, 1, 1).expand(shape)

    def synthesis_input(self, rate_fx: int, y_sym: torch.Tensor, mean_fx: torch.Tensor) -> torch.Tensor:
        """The synthesis's input (1, M, h, w) float32: decoded latents at the bin centres, times
        the inverse gain at the rate position."""
        # The bin centres, not the centroids: the synthesis has learned the centres (it trains on
        # rounded latents), and centroids lowered holdout PSNR (docs/RECORD.md).
        # (y_sym + mean_fx / 2**F) in float64, then float32: done in place, the same operations
        # (an exact division by a power of two, one rounded addition, one rounding to float32).
        y_hat = mean_fx.double().div_(2 ** ACT_FRAC_BITS).add_(y_sym).float()
        inv_gain = interpolate_levels(self.net().log_inv_gain, rate_fx)[:, None, None]
        return y_hat.mul_(inv_gain)[None]

    def synthesize(self, fn, rate_fx: int, y_sym: torch.Tensor, mean_fx: torch.Tensor, height: int, width: int,
                    device) -> torch.Tensor:
        """fn (the synthesis, or a function of it) of decoded latents, in tiles, cropped to the image."""
        return self.synthesize_input(fn, self.synthesis_input(rate_fx, y_sym, mean_fx), height, width, device)

    @staticmethod
    def synthesize_input(fn, v: torch.Tensor, height: int, width: int, device) -> torch.Tensor:
        """fn of a synthesis input (synthesis_input), in tiles, cropped to the image."""
        return _tiled(fn, v.to(device), 1, LATENT_STRIDE)[..., :height, :width]

    def hyper_output(self, z_sym: torch.Tensor, rate_fx: int) -> torch.Tensor:
        """Integer hyper-decoder output h (2M, 4h, 4w), int32 (it holds every activation exactly),
        for z symbols at a rate position. Computed in stripes of z rows with the network's halo,
        so the float64 working set is a stripe's: the same integers as the whole plane at once."""
        gain = interpolate_levels_int(self.hyper_inv_gain_fx, rate_fx).view(-1, 1, 1)
        z_fx = (z_sym * gain).clamp(-ACT_LIMIT_FX, ACT_LIMIT_FX)
        rows = max(1, _STRIPE_ELEMENTS // (self.hyper.upscale ** 2 * 2 * self.cfg.latent_channels * z_fx.shape[-1]))
        return self.hyper.striped(z_fx, rows, torch.int32)

    def _stripes(self, height: int, width: int):
        """(first row, end row) of the row stripes the context network works in."""
        rows = max(1, _STRIPE_ELEMENTS // (2 * self.cfg.latent_channels * width))
        return [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]

    def _accumulate_into(self, acc: torch.Tensor, values, first_channel: int) -> None:
        """acc += the context network's first-layer accumulator from input channels first_channel..
        of values(r0, r1) (those inputs' rows r0..r1, float64), stripe by stripe with one row of
        halo (the 3x3 layer's reach): the same integers as from the whole plane."""
        height = acc.shape[-2]
        for r0, r1 in self._stripes(height, acc.shape[-1]):
            a0, a1 = max(0, r0 - 1), min(height, r1 + 1)
            acc[:, r0:r1] += self.context.accumulate(values(a0, a1), first_channel)[:, r0 - a0:r1 - a0]

    def walk_latents(self, h: torch.Tensor, next_symbols, known=None,
                     predicted=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Visit the y symbols in coding order, computing each group's probabilities from what
        is decoded before it: the anchors ((row + column) even) of each channel group in turn,
        then the other positions of each group in turn. Returns (y symbols, means fixed-point).

        known: None, or (positions (h, w) bool, y symbols, means) of latents known before the walk
        (a predicted frame's copied blocks, codec/video_hp): they are not coded (next_symbols never
        sees them) and enter the context network's input wherever decoded latents would.
        predicted: None, or (positions (h, w) bool, means (M, h, w) fixed point, shift) of latents
        coded about a mean given before the walk (a predicted frame's inter blocks, codec/video_hp):
        at those positions next_symbols gets that mean instead of the network's and the network's
        table row lowered by shift (clamped to the table); integers, so exact. Disjoint from known.

        next_symbols(channels, mask, mean_fx, index) gives the symbols of those channels at the
        mask positions (the encoder quantizes, the decoder decodes); mean_fx and index are the
        channels' parameters as planes, valid at the mask positions (elsewhere mean_fx holds the
        other pass's means or zeros). The context network sees [h, decoded anchors,
        decoded latents of earlier groups in this pass]; its first layer's share from each input
        is accumulated exactly once (IntegerConvNet.accumulate) and `finish` computes only the
        current group's rows. h: the hyper-decoder's output (hyper_output), integers of any dtype.

        The network's work runs in row stripes (with a one-row halo for its 3x3 first layer), so
        only the accumulators, the symbols and one group's parameters are whole planes; each
        group's symbols are still coded in one call, in the same order.
        """
        m = self.cfg.latent_channels
        height, width = h.shape[-2:]
        anchor = checkerboard(height, width)
        y_sym = torch.zeros((m, height, width), dtype=torch.int64)
        mean_fx = torch.zeros_like(y_sym)
        fixed = None
        if known is not None:
            fixed, known_sym, known_mean = known
            y_sym[:, fixed], mean_fx[:, fixed] = known_sym[:, fixed], known_mean[:, fixed]
        from_h = torch.zeros((self.context.spec[0].cout, height, width), dtype=torch.float64)
        self._accumulate_into(from_h, lambda a0, a1: h[:, a0:a1].double(), 0)
        several = len(self.cfg.group_slices()) > 1
        # the anchor pass adds its groups' channel context to its own copy (only with several groups)
        self._pass(h, [from_h.clone() if several else from_h], anchor, y_sym, mean_fx, next_symbols, fixed, predicted)
        acc = [from_h]   # handed over to the pass, which drops it once the last group's parameters are known
        del from_h
        self._accumulate_into(acc[0], lambda a0, a1: self._values(y_sym[:, a0:a1], mean_fx[:, a0:a1], anchor[a0:a1]),
                              2 * m)
        self._pass(h, acc, ~anchor, y_sym, mean_fx, next_symbols, fixed, predicted)
        return y_sym, mean_fx

    def _pass(self, h: torch.Tensor, holder: list, mask: torch.Tensor, y_sym: torch.Tensor,
              mean_fx: torch.Tensor, next_symbols, fixed: torch.Tensor | None = None, predicted=None) -> None:
        """Every channel group in turn at the mask positions of one pass, filling y_sym and
        mean_fx there; holder: [the context network's first-layer accumulator from h and the
        anchors], to which each group adds the previous group's decoded latents (channel context),
        in place; it is dropped from the holder before the last group's symbols are coded.

        Each group's means are written into mean_fx at the mask positions (stripe by stripe) and
        that plane is what next_symbols gets as mean_fx: its other positions hold the other
        pass's means (or zeros), which next_symbols does not use. fixed: positions known before
        the walk (walk_latents' known), whose symbols and means stay as they are; predicted:
        walk_latents' predicted (means and lowered table rows given at some coded positions)."""
        acc = holder.pop()
        coded = mask if fixed is None else mask & ~fixed
        groups = self.cfg.group_slices()
        height, width = h.shape[-2:]
        stripes = self._stripes(height, width)
        for k, group in enumerate(groups):
            if k:
                prev = groups[k - 1]
                self._accumulate_into(
                    acc, lambda a0, a1: self._values(y_sym[prev, a0:a1], mean_fx[prev, a0:a1], mask[a0:a1]),
                    3 * self.cfg.latent_channels + prev.start)
            rows = self.cfg.group_rows(group)
            mean = mean_fx[group]
            index = torch.empty_like(mean)
            for r0, r1 in stripes:
                p = self.context.finish(acc[:, r0:r1], rows).add_(h[rows, r0:r1])  # h + ctx, as before
                part_mean, index[:, r0:r1] = mean_and_index(p.clamp_(-ACT_LIMIT_FX, ACT_LIMIT_FX))
                del p
                where = coded[r0:r1]
                mean[:, r0:r1][:, where] = part_mean[:, where]
            if predicted is not None:
                at = coded & predicted[0]
                mean[:, at] = predicted[1][group][:, at]
                index[:, at] = (index[:, at] - predicted[2]).clamp_(0, NUM_SCALES - 1)
            if k == len(groups) - 1:
                del acc
            y_sym[group, coded] = next_symbols(group, coded, mean, index)
            del index

    @staticmethod
    def _values(symbols: torch.Tensor, mean_fx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decoded latents in fixed point (the context network's input) at mask positions, 0 elsewhere."""
        return ((symbols << ACT_FRAC_BITS) + mean_fx).clamp(-ACT_LIMIT_FX, ACT_LIMIT_FX).double() * mask

    @torch.no_grad()
    def decode_latents(self, payload: bytes, height: int, width: int, walk_args=None):
        """Entropy-decode a FRAME payload: (rate_fx, z symbols, y symbols, y means fixed-point,
        decoder adaptation or None).

        walk_args: None, or a function of the ANS decoder, called after the table offsets and before
        z, that decodes what it needs and returns walk_latents' keyword arguments `known` and
        `predicted` as a dict (codec/video_hp's copied and inter blocks; empty for none).
        Everything here is exact integer work; cross-configuration tests compare its output.
        """
        rate_fx, adaptation_head, offsets_row, pos = read_head(payload, len(self.adapted_shapes))
        if rate_fx > self.max_rate_fx:
            raise CorruptDataError(f"rate position {rate_fx} is beyond the model's range")
        zh, zw = -(-height // DOWNSAMPLING), -(-width // DOWNSAMPLING)
        if 8 * (len(payload) - pos) + 64 < 0.5 * self._z_min_bits * zh * zw:
            raise CorruptDataError(f"payload of {len(payload)} bytes is too short for a "
                                   f"{width}x{height} image")
        dec = new_decoder(payload[pos:])
        adaptation = None if adaptation_head is None else \
            Adaptation.decode(self.coder, dec, adaptation_head, self.adapted_shapes)
        offsets = None if offsets_row is None else \
            TableOffsets.decode(self.coder, dec, offsets_row, self.cfg.latent_channels)
        prior = {} if walk_args is None else walk_args(dec)
        z_sym = self.coder.decode(dec, self.z_indices((self.cfg.hyper_channels, zh, zw)))

        def decode_symbols(channels: slice, mask: torch.Tensor, mean_fx: torch.Tensor, index: torch.Tensor):
            rows = index[:, mask]
            return self.coder.decode(dec, rows if offsets is None else offsets.shifted(channels, rows))

        y_sym, mean_fx = self.walk_latents(self.hyper_output(z_sym, rate_fx), decode_symbols, **prior)
        return rate_fx, z_sym, y_sym, mean_fx, adaptation

    @torch.no_grad()
    def decode(self, payload: bytes, height: int, width: int, device: str = "cpu") -> torch.Tensor:
        """FRAME payload -> (3, height, width) uint8 image."""
        rate_fx, _, y_sym, mean_fx, adaptation = self.decode_latents(payload, height, width)
        v = self.synthesis_input(rate_fx, y_sym, mean_fx)
        del y_sym, mean_fx   # the synthesis needs only v: free the symbols before its tiles
        return self.pixels(v, adaptation, height, width, device)

    @torch.no_grad()
    def pixels(self, v: torch.Tensor, adaptation, height: int, width: int, device: str = "cpu") -> torch.Tensor:
        """The decoded picture, (3, height, width) uint8, from a synthesis input (synthesis_input) and
        the frame's decoder adaptation or None: the adapted g_s run by synthesis.run, in tiles."""
        g_s = self.net(device).g_s
        g_s = g_s if adaptation is None else adaptation.apply(g_s)
        pixels = self.synthesize_input(lambda t: _to_pixels(synthesis.run(g_s, t)), v, height, width, device)
        return pixels[0].cpu()
