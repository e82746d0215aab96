"""The contract of a model family: what the registry builds from a model's weights, and what the
session layer (session.py) and `neco info` / `neco list` call.

A family is one kind of codec (e.g. "image-hp": the image hyperprior in `image_hp/`); a model is
one trained set of weights of a family, under an id (`image-hp-v1`). The weights' MANIFEST.json
names each model's family. A decoder never imports encoder code: `ModelFamily.decoder` gives the
decoding side alone, `ModelFamily.encoder` adds the encoding side to it.

A third-party model (entry point group ``neco.models``, see registry.py) is one object with both
sides: a `FrameEncoder` that also decodes.
"""

from typing import Any, Protocol

from neco.formats import Profile


class FrameDecoder(Protocol):
    """Decodes FRAME payloads of one model."""
    model_id: str
    digest: bytes       # registry.DIGEST_BYTES of the SHA-256 of its weights, as each file's header stores it
    max_rate_fx: int    # the highest rate position its payloads may carry

    def decode(self, payload: bytes, height: int, width: int, device: str = "cpu") -> Any:
        """FRAME payload -> (3, height, width) uint8 torch tensor. A bad payload raises a NecoError
        (CorruptDataError; UnsupportedError for fields this build does not know), never another
        exception."""


class FrameEncoder(Protocol):
    """Codes frames for one model: analysis once, then coding at any rate position (the rate
    search of session.py codes a frame several times)."""
    model_id: str
    digest: bytes
    max_rate_fx: int

    def rate_fx_from_quality(self, quality: float) -> int:
        """Quality 0..100 -> rate position 0..max_rate_fx."""

    def analyse(self, x: Any, device: str = "cpu") -> Any:
        """(3, H, W) uint8 tensor -> whatever `code_latents` takes (e.g. latents before gains)."""

    def code_latents(self, y0: Any, rate_fx: int, effort: int = 0, pixels: Any = None) -> tuple[bytes, dict]:
        """The FRAME payload at a rate position, and stats. pixels is the frame ((3, H, W) uint8)
        for a full coding, None for a rate search's probe (which must be fast and fit nothing);
        a family without encoder effort may code every effort as 0."""


class ModelFamily(Protocol):
    """One kind of model: builds its coders from weights and reads its payloads' fields."""
    name: str            # the "family" of its models in MANIFEST.json
    profile: Profile     # the profile its files declare in the container header

    def decoder(self, model_id: str, config: str, tensors: dict, digest: bytes) -> FrameDecoder:
        """The decoder of a model from its weights (config: the JSON in the weights file)."""

    def encoder(self, decoder: FrameDecoder) -> FrameEncoder:
        """The encoder that writes what `decoder` reads (it may share the decoder's parts)."""

    def describe_payload(self, payload: bytes) -> dict:
        """What `neco info` shows of a FRAME payload, without torch or the weights."""

    def describe_rates(self, config: str) -> str:
        """What `neco list` shows of a model's rates."""
