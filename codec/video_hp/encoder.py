"""Encoding a video-hp stream (decoder.py reads it): every `gop`-th frame a key frame coded by the
image-hp encoder unchanged, the others P frames.

A P frame's skip decision is rate-distortion, per 2x2-latent block (32x32 pixels), with the
lambda of the rate position (refine.encoder_lambda, the cost bits + lambda * 255^2 * MSE * pixels
the image encoder minimizes): skip when the squared error of the reference's decoded pixels is
below that of the frame coded as an intra frame plus the bits that coding costs, those bits being
the exact code lengths of its symbols under the intra walk's tables. The skipped blocks are then
known in a second walk, which codes the rest. Distortion is measured on pixels: the encoder keeps
the reference's decoded pixels (the synthesis of its exact latents, as a decoder computes them).
"""

import numpy as np
import torch

from ..constants import ACT_FRAC_BITS, RATE_FRAC_BITS, SYMBOL_MAX
from ..entropy import StreamEncoder
from ..image_hp import payload as image_payload
from ..image_hp.encoder import ImageHPEncoder, choose_offsets
from ..image_hp.model import DOWNSAMPLING, interpolate_levels
from ..image_hp.payload import TABLE_OFFSETS_FLAG, flag_bits
from ..image_hp.refine import encoder_lambda, refine_hyper_latents
from ..rate_control import code_frame
from .decoder import SKIP_BLOCK, VideoHPDecoder, expand_blocks, skip_model
from .payload import FRAME_I, FRAME_P, SKIP_PROB_ONE, write

BLOCK_PIXELS = SKIP_BLOCK * DOWNSAMPLING // 4    # pixels per side of a skip block (32)
# A P frame's hyper-latents are refined (refine.refine_hyper_latents) from this effort on: at
# effort 0 that refinement would be two thirds of a P frame's encoding time.
REFINE_Z_EFFORT = 1


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
        rows, columns = h.shape[-2:]
        table_bits = torch.from_numpy(image.coder.code_lengths)
        bits = torch.zeros(rows, columns, dtype=torch.float64)

        def quantize(channels: slice, mask: torch.Tensor, mean_fx: torch.Tensor) -> torch.Tensor:
            sym = torch.round(y[channels] - mean_fx.double() / 2 ** ACT_FRAC_BITS).clamp(-SYMBOL_MAX, SYMBOL_MAX)
            return sym.to(torch.int64)[:, mask]

        def probe(channels, mask, mean_fx, index):   # the intra walk: each position's exact bits
            symbols = quantize(channels, mask, mean_fx)
            bits[mask] += table_bits[index[:, mask], symbols + SYMBOL_MAX].sum(0)
            return symbols

        intra_sym, intra_mean = image.walk_latents(h, probe)
        intra = coder.decoder.pixels(rate_fx, intra_sym, intra_mean, None, height, width, device)
        ref_sym, ref_mean, ref_pixels = self.reference
        lam = encoder_lambda(image.cfg.lambdas, rate_fx, RATE_FRAC_BITS) / 3   # per squared level of a sample
        block_bits = _blocks(bits)
        sse = [_block_sse(x, decoded, block_bits.shape) for decoded in (ref_pixels, intra)]
        skip = lam * sse[0] <= lam * sse[1] + block_bits
        count, total = int(skip.sum()), skip.numel()
        skip_prob = 0 if not count else min(SKIP_PROB_ONE - 1, max(1, round(SKIP_PROB_ONE * count / total)))
        coded = []   # (channel range, symbols, table rows) of each step, in coding order

        def code(channels, mask, mean_fx, index):
            symbols = quantize(channels, mask, mean_fx)
            coded.append((channels, symbols, index[:, mask]))
            return symbols

        known = (expand_blocks(skip), ref_sym, ref_mean) if count else None
        y_sym, mean_fx = image.walk_latents(h, code, known)
        offsets = choose_offsets(image.coder, coded, image.cfg.latent_channels,
                                 flag_bits(rate_fx, TABLE_OFFSETS_FLAG))
        enc = StreamEncoder()
        for symbols, indices in ([] if offsets is None else offsets.coded()):
            image.coder.encode(enc, symbols, indices)
        if count:
            enc.groups.append((skip.reshape(-1).numpy().astype(np.int32), skip_model(skip_prob)))
        image.coder.encode(enc, z_sym, image.z_indices(z_sym.shape))
        for channels, symbols, indices in coded:
            image.coder.encode(enc, symbols, indices if offsets is None else offsets.shifted(channels, indices))
        words = enc.finish()
        data = write(FRAME_P, image_payload.write(rate_fx, None, None if offsets is None else offsets.row, words),
                     skip_prob)
        stats = {"skipped_blocks": count, "blocks": total, "coded_bits": 8 * len(words)}
        return data, stats, y_sym, mean_fx

def _block_sse(x: torch.Tensor, decoded: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Squared error (levels^2, over the 3 channels) of each skip block of a grid, zero past the image."""
    rows, columns = grid
    err = (x.double() - decoded.double()).pow_(2).sum(0)
    pad = (0, columns * BLOCK_PIXELS - err.shape[1], 0, rows * BLOCK_PIXELS - err.shape[0])
    err = torch.nn.functional.pad(err, pad)
    return err.view(rows, BLOCK_PIXELS, columns, BLOCK_PIXELS).sum((1, 3))


def _blocks(values: torch.Tensor) -> torch.Tensor:
    """Per-latent values (rows, columns) summed over each skip block."""
    rows, columns = values.shape
    return values.view(rows // SKIP_BLOCK, SKIP_BLOCK, columns // SKIP_BLOCK, SKIP_BLOCK).sum((1, 3))
