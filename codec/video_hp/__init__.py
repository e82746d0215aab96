"""The video family ("video-hp"): key frames coded by the image-hp coder unchanged, predicted
frames whose blocks copy the previous frame's decoded latents (skip), code them about the
previous frame's decoded values (inter) or code them with the image-hp latent walk (intra)
(docs/FORMAT.md section 12).

A training-free first step (issue 38): the networks are image-hp's (video-hp-v0 shares
image-hp-v1's weights file); a conditional prior trained on references slots in later as a
new frame type or model. Modules: payload.py (the frame fields, torch-free), decoder.py (the
stream decoder and its reference buffer), encoder.py (the block-mode decision; never imported by a
decoder). Importing this package loads no torch.
"""

from neco.formats import Profile

from ..image_hp import FAMILY as IMAGE_HP
from . import payload


class VideoHP:
    """The video-hp family (codec/family.py's ModelFamily)."""
    name = "video-hp"
    profile = Profile.VIDEO

    def decoder(self, model_id: str, config: str, tensors: dict, digest: bytes):
        from .decoder import VideoHPDecoder
        return VideoHPDecoder(IMAGE_HP.decoder(model_id, config, tensors, digest))

    def encoder(self, decoder):
        from .encoder import VideoHPEncoder
        return VideoHPEncoder(decoder)

    def describe_payload(self, data: bytes) -> dict:
        return payload.describe(data)

    def describe_rates(self, config: str) -> str:
        return IMAGE_HP.describe_rates(config)


FAMILY = VideoHP()
