"""Decoding a video-hp stream: I frames are image-hp payloads (image_hp/decoder.py, unchanged); a
P frame gives each block (one latent position, 16x16 pixels) a mode: skip
copies the previous frame's decoded latents (walk_latents' `known`), inter codes each latent
about the previous frame's decoded value with the network's table row lowered by the frame's
shift (walk_latents' `predicted`), intra codes it as an image would. References are integer latents (symbols and
fixed-point means), so every frame's probabilities are exact and nothing drifts; the synthesis
(float) runs on each frame's latents.

The coded words of a P frame hold, after the image-hp decoder adaptation and table offsets (when
flagged): the block modes (when more than one mode has a probability), one per block in raster
order, each under the frame's mode probabilities out of 256 (the modes of probability 0 left
out of the alphabet); then z and y as in an image.
"""

from functools import lru_cache

import constriction
import numpy as np
import torch

from neco.formats.errors import CorruptDataError

from ..constants import ACT_FRAC_BITS, SYMBOL_MAX
from ..image_hp.decoder import ImageHPDecoder
from ..image_hp.model import DOWNSAMPLING
from .payload import FRAME_I, MODE_INTER, MODE_SKIP, PROB_ONE, read_head

BLOCK_LATENTS = 1        # latents per side of a P frame's blocks (16x16 pixels)
REFERENCE_FRAMES = 1     # the reference buffer's bound: the previous frame's decoded latents


@lru_cache(maxsize=1024)
def mode_model(probs: tuple[int, ...]):
    """(the model of the block modes, the modes its symbols stand for) for mode frequencies out of
    PROB_ONE (intra, skip, inter): a categorical of the exact dyadic probabilities of the modes
    whose frequency is not 0; None when only one mode remains (nothing is coded)."""
    present = [mode for mode, p in enumerate(probs) if p]
    if len(present) < 2:
        return None, np.array(present)
    freqs = np.array([probs[mode] for mode in present], dtype=np.float64) / PROB_ONE
    return constriction.stream.model.Categorical(freqs, perfect=False), np.array(present)


def reference_values(y_sym: torch.Tensor, mean_fx: torch.Tensor) -> torch.Tensor:
    """Decoded latents in fixed point, (y << ACT_FRAC_BITS) + mean, clamped to the range of the
    network's means: the means of an inter block's latents (integers, so exact)."""
    one = 2 ** ACT_FRAC_BITS
    return ((y_sym << ACT_FRAC_BITS) + mean_fx).clamp_(-SYMBOL_MAX * one, SYMBOL_MAX * one)


def latent_shape(height: int, width: int) -> tuple[int, int]:
    """(rows, columns) of y for a frame size."""
    return 4 * -(-height // DOWNSAMPLING), 4 * -(-width // DOWNSAMPLING)


def expand_blocks(flags: torch.Tensor, block: int) -> torch.Tensor:
    """Per-block flags (rows, columns) of blocks of block x block latents -> per-latent positions."""
    return flags.repeat_interleave(block, 0).repeat_interleave(block, 1)


class VideoHPDecoder:
    """A video-hp model: the image-hp decoder of its weights, and what a P frame adds."""

    def __init__(self, image: ImageHPDecoder):
        self.image = image
        self.model_id, self.digest, self.max_rate_fx = image.model_id, image.digest, image.max_rate_fx

    def stream(self) -> "VideoStream":
        """The decoding state of one stream (its reference buffer)."""
        return VideoStream(self)

    @staticmethod
    def is_key(payload: bytes) -> bool:
        return read_head(payload).frame_type == FRAME_I

    def decode(self, payload: bytes, height: int, width: int, device: str = "cpu") -> torch.Tensor:
        """A key frame alone (a P frame needs its stream: `stream()`)."""
        return self.stream().decode(payload, height, width, device)

    @torch.no_grad()
    def frame_latents(self, payload: bytes, height: int, width: int, reference):
        """Entropy-decode a frame given the reference (the previous frame's (y symbols, means), or
        None): image_hp's decode_latents output."""
        head = read_head(payload)
        body = payload[head.image:]
        if head.frame_type == FRAME_I:
            return self.image.decode_latents(body, height, width)
        if reference is None:
            raise CorruptDataError("a P frame needs the frame before it, which is missing or did not decode: "
                                   "decoding resumes at the next key frame")
        ref_sym, ref_mean = reference
        rows, columns = latent_shape(height, width)
        if ref_sym.shape[-2:] != (rows, columns):
            raise CorruptDataError("a P frame's reference has another size")

        def prior(dec):
            model, modes = mode_model(head.mode_probs)
            if model is None:
                return {}
            block = BLOCK_LATENTS
            modes = modes[dec.decode(model, rows * columns // block ** 2)]
            modes = torch.from_numpy(modes).view(rows // block, columns // block)
            out = {}
            if (modes == MODE_SKIP).any():
                out["known"] = expand_blocks(modes == MODE_SKIP, block), ref_sym, ref_mean
            if (modes == MODE_INTER).any():
                out["predicted"] = (expand_blocks(modes == MODE_INTER, block), reference_values(ref_sym, ref_mean),
                                    head.inter_shift)
            return out

        return self.image.decode_latents(body, height, width, prior)

    def pixels(self, rate_fx: int, y_sym: torch.Tensor, mean_fx: torch.Tensor, adaptation, height: int, width: int,
               device="cpu") -> torch.Tensor:
        """The synthesis of decoded latents, (3, height, width) uint8, as an image decodes them."""
        return self.image.pixels(self.image.synthesis_input(rate_fx, y_sym, mean_fx), adaptation, height, width, device)


class VideoStream:
    """The decoding state of one stream: the reference buffer, bounded to REFERENCE_FRAMES (the
    previous frame's decoded latents). A frame that fails to decode empties it, so the P frames
    after a loss are refused until the next key frame instead of decoding against another frame."""

    def __init__(self, model: VideoHPDecoder):
        self.model = model
        self.reference = None

    def reset(self) -> None:
        self.reference = None

    def latents(self, payload: bytes, height: int, width: int):
        """Decode a frame's latents and keep them as the next frame's reference."""
        try:
            out = self.model.frame_latents(payload, height, width, self.reference)
        except BaseException:
            self.reference = None
            raise
        self.reference = (out[2], out[3])
        return out

    def decode(self, payload: bytes, height: int, width: int, device: str = "cpu") -> torch.Tensor:
        """One frame of the stream -> (3, height, width) uint8."""
        rate_fx, _, y_sym, mean_fx, adaptation = self.latents(payload, height, width)
        return self.model.pixels(rate_fx, y_sym, mean_fx, adaptation, height, width, device)
