"""The image hyperprior family ("image-hp"): a learned transform with a hyperprior and a
checkerboard / channel-group context model over integer latents, with an exact integer
probability path (docs/FORMAT.md section 10).

Modules: model.py (the networks and their weights), payload.py (the one reader and writer of a
FRAME payload's fields), decoder.py with adaptation.py and offsets.py (what a decoder needs),
encoder.py with refine.py and fit.py (the encoder's side, never imported by a decoder).
Importing this package loads no torch: `neco info` reads payloads through it.
"""

import json

from neco.formats import Profile

from . import payload


class ImageHP:
    """The image-hp family (codec/family.py's ModelFamily)."""
    name = "image-hp"
    profile = Profile.IMAGE

    def decoder(self, model_id: str, config: str, tensors: dict, digest: bytes):
        from .decoder import ImageHPDecoder
        from .model import ImageModelConfig
        return ImageHPDecoder(model_id, ImageModelConfig.from_json(config), tensors, digest)

    def encoder(self, decoder):
        from .encoder import ImageHPEncoder
        return ImageHPEncoder(decoder)

    def describe_payload(self, data: bytes) -> dict:
        return payload.describe(data)

    def describe_rates(self, config: str) -> str:
        lambdas = json.loads(config)["lambdas"]
        return f"quality 0-100 ({len(lambdas)} trained levels, lambda {min(lambdas):g}-{max(lambdas):g})"


FAMILY = ImageHP()
