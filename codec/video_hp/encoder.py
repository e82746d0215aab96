"""Encoding a video-hp stream (decoder.py reads it): every `gop`-th frame a key frame coded by the
image-hp encoder unchanged, the others P frames.

A P frame's block modes (skip, inter, intra per latent position, 16x16 pixels) are chosen by
rate-distortion with the lambda of the rate position (refine.encoder_lambda, the cost bits +
lambda * 255^2 * MSE * pixels the image encoder minimizes): each block takes the mode of least
squared error plus bits, where skip costs the reference's decoded pixels' error, intra the error
of the frame coded as an intra frame plus the exact code lengths of its symbols under the intra
walk's tables, inter the error of the latents coded about the reference's values plus their code
lengths under those tables lowered by the inter shift, and every mode its own code length. The
inter shift is the one of least total. A second walk then codes the frame with the skipped blocks
known and the inter blocks predicted. Distortion is measured on pixels: the encoder keeps the
reference's decoded pixels (the synthesis of its exact latents, as a decoder computes them).
"""

import math

import numpy as np
import torch

from ..constants import ACT_FRAC_BITS, NUM_SCALES, RATE_FRAC_BITS, SYMBOL_MAX
from ..entropy import StreamEncoder
from ..image_hp import payload as image_payload
from ..image_hp.encoder import ImageHPEncoder, choose_offsets
from ..image_hp.model import DOWNSAMPLING, interpolate_levels
from ..image_hp.payload import TABLE_OFFSETS_FLAG, flag_bits
from ..image_hp.refine import encoder_lambda, refine_hyper_latents
from ..rate_control import code_frame
from .decoder import BLOCK_LATENTS, VideoHPDecoder, expand_blocks, mode_model, reference_values
from .payload import FRAME_I, FRAME_P, MODE_INTER, MODE_INTRA, MODE_SKIP, PROB_ONE, write

BLOCK = BLOCK_LATENTS                           # latents per side of a P frame's blocks (1)
BLOCK_PIXELS = BLOCK * DOWNSAMPLING // 4         # pixels per side of a block (16)
# A P frame's hyper-latents are refined (refine.refine_hyper_latents) from this effort on: at
# effort 0 that refinement would be two thirds of a P frame's encoding time.
REFINE_Z_EFFORT = 1
# The mode decision's lambda, relative to the rate position's (vtest, docs/RECORD.md: 2 beats 0.5, 1, 3 and 4).
LAMBDA_SCALE = 2.0
SHIFT_SEARCH = 12        # inter shifts tried, 0..SHIFT_SEARCH (the format allows 0..63; vtest picks 1-3)


class VideoHPEncoder:
    """Codes frames for a video-hp decoder: key frames with the image-hp encoder of the same
    networks, P frames through a `VideoStreamEncoder`. As a family.FrameEncoder it codes key
    frames (rate_control's per-frame coding and rate search work unchanged)."""

    def __init__(self, decoder: VideoHPDecoder):
        self.decoder = decoder
        self.image = ImageHPEncoder(decoder.image)
        self.model_id, self.digest, self.max_rate_fx = decoder.model_id, decoder.digest, decoder.max_rate_fx

    def rate_fx_from_quality(self, quality: float) -> int:
        return self.image.rate_fx_from_quality(quality)

    def analyse(self, x: torch.Tensor, device: str = "cpu") -> torch.Tensor:
        return self.image.analyse(x, device)

    def code_latents(self, y0: torch.Tensor, rate_fx: int, effort: int = 0,
                     pixels: torch.Tensor | None = None) -> tuple[bytes, dict]:
        """A key frame's payload (the image-hp payload behind its frame type)."""
        data, stats = self.image.code_latents(y0, rate_fx, effort, pixels)
        return write(FRAME_I, data), stats

    def stream(self, gop: int, quality: float | None, effort: int = 0, device: str = "cpu") -> "VideoStreamEncoder":
        return VideoStreamEncoder(self, gop, quality, effort, device)


class VideoStreamEncoder:
    """The encoding state of one stream: the frame count (for the key-frame interval) and the
    reference (the previous frame's decoded latents, exactly the decoder's, and its decoded pixels)."""

    def __init__(self, coder: VideoHPEncoder, gop: int, quality: float | None, effort: int, device: str):
        self.coder, self.gop, self.quality, self.effort, self.device = coder, gop, quality, effort, device
        self.rate_fx = coder.rate_fx_from_quality(75.0 if quality is None else quality)
        self.frames = 0
        self.reference = None       # (y symbols, means, decoded pixels (3, H, W) uint8)

    def code(self, pixels: np.ndarray) -> tuple[bytes, bool, dict]:
        """One (H, W, 3) uint8 frame -> (its FRAME payload, whether it is a key frame, stats)."""
        height, width = pixels.shape[:2]
        key = self.frames % self.gop == 0 or self.reference is None
        if key:
            data, stats = code_frame(self.coder, pixels, self.quality, None, self.device, self.effort)
            rate_fx, _, y_sym, mean_fx, adaptation = self.coder.decoder.frame_latents(data, height, width, None)
        else:
            data, stats, y_sym, mean_fx = self._code_p(pixels)
            rate_fx, adaptation = self.rate_fx, None
        decoded = self.coder.decoder.pixels(rate_fx, y_sym, mean_fx, adaptation, height, width, self.device)
        self.reference = (y_sym, mean_fx, decoded)
        self.frames += 1
        return data, key, stats

    @torch.no_grad()
    def _code_p(self, pixels: np.ndarray):
        """A P frame: (payload, stats, its y symbols, its means)."""
        coder, image, rate_fx, device = self.coder, self.coder.decoder.image, self.rate_fx, self.device
        height, width = pixels.shape[:2]
        net = image.net(device)
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
        y = coder.analyse(x, device) * interpolate_levels(net.log_gain, rate_fx).to(device)[None, :, None, None]
        z = net.h_a(y) * interpolate_levels(net.log_hyper_gain, rate_fx).to(device)[None, :, None, None]
        if self.effort >= REFINE_Z_EFFORT:
            z = refine_hyper_latents(net, y, z, rate_fx)
        z_sym = torch.round(z[0]).clamp(-SYMBOL_MAX, SYMBOL_MAX).to(torch.int64).cpu()
        y = y[0].double().cpu()
        h = image.hyper_output(z_sym, rate_fx)
        table_bits = torch.from_numpy(image.coder.code_lengths)
        rows_index = torch.zeros(y.shape, dtype=torch.int64)     # the intra walk's table rows

        def quantize(channels: slice, mask: torch.Tensor, mean_fx: torch.Tensor) -> torch.Tensor:
            sym = torch.round(y[channels] - mean_fx.double() / 2 ** ACT_FRAC_BITS).clamp(-SYMBOL_MAX, SYMBOL_MAX)
            return sym.to(torch.int64)[:, mask]

        def probe(channels, mask, mean_fx, index):
            rows_index[channels, mask] = index[:, mask]
            return quantize(channels, mask, mean_fx)

        intra_sym, intra_mean = image.walk_latents(h, probe)
        ref_sym, ref_mean, ref_pixels = self.reference
        ref_values = reference_values(ref_sym, ref_mean)
        inter_sym = torch.round(y - ref_values.double() / 2 ** ACT_FRAC_BITS).clamp(-SYMBOL_MAX, SYMBOL_MAX)
        inter_sym = inter_sym.to(torch.int64)
        lam = LAMBDA_SCALE * encoder_lambda(image.cfg.lambdas, rate_fx, RATE_FRAC_BITS) / 3   # per squared level
        intra_bits = _blocks(table_bits[rows_index, intra_sym + SYMBOL_MAX].sum(0))
        grid = intra_bits.shape
        decoded = [ref_pixels, coder.decoder.pixels(rate_fx, intra_sym, intra_mean, None, height, width, device)]
        decoded.append(coder.decoder.pixels(rate_fx, inter_sym, ref_values, None, height, width, device))
        distortion = [lam * _block_sse(x, d, grid) for d in decoded]     # skip, intra, inter
        hidden = _hidden_blocks(grid, height, width)
        distortion[0], distortion[2] = distortion[0] + hidden, distortion[2] + hidden
        costs = {MODE_SKIP: distortion[0], MODE_INTRA: distortion[1] + intra_bits}
        shift, modes, probs = _choose_modes(costs)
        for move in range(SHIFT_SEARCH + 1):
            rows = (rows_index - move).clamp_(0, NUM_SCALES - 1)
            costs[MODE_INTER] = distortion[2] + _blocks(table_bits[rows, inter_sym + SYMBOL_MAX].sum(0))
            trial = _choose_modes(costs, move)
            if trial[0][0] < shift[0]:
                shift, modes, probs = trial
        shift = shift[1]
        skip, inter = modes == MODE_SKIP, modes == MODE_INTER
        coded = []   # (channel range, symbols, table rows) of each step, in coding order

        def code(channels, mask, mean_fx, index):
            symbols = quantize(channels, mask, mean_fx)
            coded.append((channels, symbols, index[:, mask]))
            return symbols

        known = (expand_blocks(skip, BLOCK), ref_sym, ref_mean) if skip.any() else None
        predicted = (expand_blocks(inter, BLOCK), ref_values, shift) if inter.any() else None
        y_sym, mean_fx = image.walk_latents(h, code, known, predicted)
        offsets = choose_offsets(image.coder, coded, image.cfg.latent_channels,
                                 flag_bits(rate_fx, TABLE_OFFSETS_FLAG))
        enc = StreamEncoder()
        for symbols, indices in ([] if offsets is None else offsets.coded()):
            image.coder.encode(enc, symbols, indices)
        model, present = mode_model(probs)
        if model is not None:
            codes = np.searchsorted(present, modes.reshape(-1).numpy()).astype(np.int32)
            enc.groups.append((codes, model))
        image.coder.encode(enc, z_sym, image.z_indices(z_sym.shape))
        for channels, symbols, indices in coded:
            image.coder.encode(enc, symbols, indices if offsets is None else offsets.shifted(channels, indices))
        words = enc.finish()
        data = write(FRAME_P, image_payload.write(rate_fx, None, None if offsets is None else offsets.row, words),
                     probs[MODE_SKIP], probs[MODE_INTER], shift if inter.any() else 0)
        stats = {"skipped_blocks": int(skip.sum()), "inter_blocks": int(inter.sum()), "blocks": modes.numel(),
                 "inter_shift": shift, "coded_bits": 8 * len(words)}
        return data, stats, y_sym, mean_fx


def _mode_probs(modes: torch.Tensor) -> tuple[int, int, int]:
    """The frequencies out of PROB_ONE (intra, skip, inter) that code these block modes: each mode
    used at least 1, intra at least 1 (it takes the rest)."""
    total = modes.numel()
    probs = [0, 0, 0]
    for mode in (MODE_SKIP, MODE_INTER):
        count = int((modes == mode).sum())
        probs[mode] = 0 if not count else max(1, round(PROB_ONE * count / total))
    while probs[MODE_SKIP] + probs[MODE_INTER] >= PROB_ONE:
        big = MODE_SKIP if probs[MODE_SKIP] >= probs[MODE_INTER] else MODE_INTER
        probs[big] -= 1
    probs[MODE_INTRA] = PROB_ONE - probs[MODE_SKIP] - probs[MODE_INTER]
    return tuple(probs)


def _choose_modes(costs: dict, shift: int = 0, rounds: int = 2):
    """((total cost, shift), modes per block, their frequencies): each block takes its cheapest
    mode, the modes' own code lengths (from the frequencies of the previous round) included."""
    candidates = sorted(costs)
    stacked = torch.stack([costs[m] for m in candidates])
    extra = torch.zeros(len(candidates), 1, 1, dtype=torch.float64)
    for _ in range(rounds):
        total, pick = (stacked + extra).min(0)
        modes = torch.tensor(candidates)[pick]
        probs = _mode_probs(modes)
        extra = torch.tensor([-math.log2(probs[m] / PROB_ONE) if probs[m] else 64.0 for m in candidates],
                             dtype=torch.float64).view(-1, 1, 1)
    total = float((stacked + extra).gather(0, pick[None]).sum()) if len(candidates) > 1 else float(stacked.sum())
    return (total, shift), modes, probs


def _hidden_blocks(grid: tuple[int, int], height: int, width: int) -> torch.Tensor:
    """0 for each block with a pixel in the picture, infinity for the blocks past it: those code as
    intra, as an image codes its padding. Their own error is zero whatever their mode, but their
    latents reach the picture through the synthesis (~4 latents): copied ones turned a 16x12
    change of flat grey 30 -> 130 into 113.5."""
    rows, columns = grid
    past = ((torch.arange(rows)[:, None] * BLOCK_PIXELS >= height)
            | (torch.arange(columns)[None, :] * BLOCK_PIXELS >= width))
    return torch.where(past, math.inf, 0.0).double()


def _block_sse(x: torch.Tensor, decoded: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Squared error (levels^2, over the 3 channels) of each block of a grid, zero past the image."""
    rows, columns = grid
    err = (x.double() - decoded.double()).pow_(2).sum(0)
    pad = (0, columns * BLOCK_PIXELS - err.shape[1], 0, rows * BLOCK_PIXELS - err.shape[0])
    err = torch.nn.functional.pad(err, pad)
    return err.view(rows, BLOCK_PIXELS, columns, BLOCK_PIXELS).sum((1, 3))


def _blocks(values: torch.Tensor) -> torch.Tensor:
    """Per-latent values (rows, columns) summed over each block."""
    rows, columns = values.shape
    return values.view(rows // BLOCK, BLOCK, columns // BLOCK, BLOCK).sum((1, 3))
