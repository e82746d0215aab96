"""The checkerboard context: the decoder rebuilds the encoder's two passes exactly.

The shipped context network may be close to zero early in training, which would hide an
ordering mistake between anchors and non-anchors, so these tests give it random weights: the
probabilities then depend strongly on the decoded anchors, and any mismatch between the
encoder's and the decoder's passes decodes garbage.
"""

import numpy as np
import torch

from neco.codec import registry
from neco.codec.image_codec import FrozenImageModel
from neco.codec.image_model import checkerboard
from conftest import photo_crop, psnr


def _model(context_scale: int) -> FrozenImageModel:
    cfg, tensors = registry.load_tensors(registry.DEFAULT_IMAGE_MODEL)
    g = torch.Generator().manual_seed(5)
    for key in [k for k in tensors if k.startswith("context_int.")]:
        if context_scale:
            tensors[key] = torch.randint(-context_scale, context_scale + 1, tensors[key].shape,
                                         generator=g).to(tensors[key].dtype)
        else:
            tensors[key] = torch.zeros_like(tensors[key])
    return FrozenImageModel("test", cfg, tensors, b"test")


def _round_trip(model: FrozenImageModel, pixels: np.ndarray, rate_fx: int) -> tuple[bytes, np.ndarray]:
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    payload, _ = model.code_latents(model.analyse(x), rate_fx)
    h, w = pixels.shape[:2]
    return payload, model.decode(payload, h, w).permute(1, 2, 0).numpy()


def test_checkerboard_alternates():
    mask = checkerboard(3, 4)
    assert mask.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]


def test_random_context_round_trips():
    pixels = photo_crop(96, 80, index=2)
    plain_payload, plain = _round_trip(_model(0), pixels, 512)
    ctx_payload, ctx = _round_trip(_model(40), pixels, 512)
    assert ctx_payload != plain_payload  # the context changed the probabilities...
    assert psnr(pixels, ctx) > psnr(pixels, plain) - 1.0  # ...and the decoder followed it
