"""Decoding a video-hp stream: I frames are image-hp payloads (image_hp/decoder.py, unchanged); a
P frame copies the previous frame's decoded latents in the 2x2-latent blocks (32x32 pixels) its
skip flags mark and decodes the other latents by the image-hp latent walk, in which the copied
latents are known (walk_latents' `known`). References are integer latents (symbols and
fixed-point means), so every frame's probabilities are exact and nothing drifts; the synthesis
(float) runs on each frame's latents.

The coded words of a P frame hold, after the image-hp decoder adaptation and table offsets (when
flagged): the skip flags (when the skip probability p > 0), one per block in raster order, each
a binary symbol under the probabilities (256 - p, p) / 256; then z and y as in an image.
"""

from functools import lru_cache

import constriction
import numpy as np
import torch

from neco.formats.errors import CorruptDataError

from ..image_hp import synthesis
from ..image_hp.decoder import ImageHPDecoder
from ..image_hp.model import DOWNSAMPLING
from .payload import FRAME_I, SKIP_PROB_ONE, read_head

SKIP_BLOCK = 2           # latents per side of a skip block (32x32 pixels)
REFERENCE_FRAMES = 1     # the reference buffer's bound: the previous frame's decoded latents


@lru_cache(maxsize=SKIP_PROB_ONE)
def skip_model(skip_prob: int):
    """The binary model of the skip flags at probability skip_prob / 256 (exact dyadic values)."""
    probs = np.array([SKIP_PROB_ONE - skip_prob, skip_prob], dtype=np.float64) / SKIP_PROB_ONE
    return constriction.stream.model.Categorical(probs, perfect=False)


def latent_shape(height: int, width: int) -> tuple[int, int]:
    """(rows, columns) of y for a frame size."""
    return 4 * -(-height // DOWNSAMPLING), 4 * -(-width // DOWNSAMPLING)


def expand_blocks(flags: torch.Tensor) -> torch.Tensor:
    """Per-block flags (rows, columns) -> per-latent positions."""
    return flags.repeat_interleave(SKIP_BLOCK, 0).repeat_interleave(SKIP_BLOCK, 1)


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

        def known(dec):
            if not head.skip_prob:
                return None
            count = rows * columns // SKIP_BLOCK ** 2
            flags = dec.decode(skip_model(head.skip_prob), count).astype(bool)
            fixed = expand_blocks(torch.from_numpy(flags).view(rows // SKIP_BLOCK, columns // SKIP_BLOCK))
            return fixed, ref_sym, ref_mean

        return self.image.decode_latents(body, height, width, known)

    @torch.no_grad()
    def pixels(self, rate_fx: int, y_sym: torch.Tensor, mean_fx: torch.Tensor, adaptation, height: int, width: int,
               device="cpu") -> torch.Tensor:
        """The synthesis of decoded latents, (3, height, width) uint8: the image decoder's tiles of
        the (adapted) g_s, run by its synthesis.run as its decode does."""
        g_s = self.image.net(device).g_s
        g_s = g_s if adaptation is None else adaptation.apply(g_s)
        pixels = self.image.synthesize(lambda t: (synthesis.run(g_s, t).clamp_(0, 1) * 255).round_().to(torch.uint8),
                                       rate_fx, y_sym, mean_fx, height, width, device)
        return pixels[0].cpu()


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
