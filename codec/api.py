"""The public coding API over pixel arrays (the `neco` facade adds PIL images on top).

encode: array -> header + FRAME (+ ICC / EXIF) chunks -> bytes; decode: the reverse. Every
check on the input happens here, before any model runs, and raises a NecoError subclass.
"""

from dataclasses import dataclass, field
import io
import time
import warnings

import numpy as np
import torch

from neco.formats import (ChunkType, ContainerReader, ContainerWriter, CorruptDataError, Header,
                          InvalidArgumentError, Kind, ModelError, PixelFormat, Profile, UnsupportedError,
                          read_container)

from . import registry

# Largest image accepted, in pixels: Pillow's decompression-bomb warning limit.
MAX_PIXELS = 89_478_485
# Rate search: stop when the achieved rate is this close to the target (relative).
BPP_TOLERANCE = 0.01


@dataclass
class EncodeResult:
    """What encode produced, with the numbers people ask for."""
    data: bytes
    bpp: float
    model_id: str
    seconds: float
    stats: dict = field(default_factory=dict)


@dataclass
class DecodeResult:
    pixels: np.ndarray  # (H, W, 3) uint8
    header: Header
    icc_profile: bytes | None
    exif: bytes | None
    seconds: float


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise InvalidArgumentError("image must be a uint8 numpy array or a PIL image")
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InvalidArgumentError(f"image array must be HxWx3, got shape {pixels.shape}")
    h, w = pixels.shape[:2]
    if h < 1 or w < 1:
        raise InvalidArgumentError(f"image is empty ({w}x{h})")
    if h * w > MAX_PIXELS:
        raise InvalidArgumentError(f"image of {w}x{h} pixels exceeds the limit of {MAX_PIXELS:,} pixels")


def encode_array(pixels: np.ndarray, quality: float | None = None, bpp: float | None = None, *,
                 pixel_format: PixelFormat = PixelFormat.RGB8, icc_profile: bytes | None = None,
                 exif: bytes | None = None, device: str = "cpu", model: str | None = None) -> EncodeResult:
    """Encode an (H, W, 3) uint8 array; `quality` (0-100, default 75) or a target `bpp`."""
    start = time.perf_counter()
    _check_pixels(pixels)
    if quality is not None and bpp is not None:
        raise InvalidArgumentError("give quality or bpp, not both")
    if bpp is not None and not (bpp > 0 and np.isfinite(bpp)):
        raise InvalidArgumentError(f"bpp must be a positive number, got {bpp}")
    coder = registry.get_model(model or registry.DEFAULT_IMAGE_MODEL)
    h, w = pixels.shape[:2]
    y0 = coder.analyse(torch.from_numpy(pixels.copy()).permute(2, 0, 1), device)
    if bpp is None:
        payload, stats = coder.code_latents(y0, coder.rate_fx_from_quality(75.0 if quality is None else quality))
    else:
        payload, stats = _search_rate(coder, y0, bpp * h * w / 8)
    header = Header(kind=Kind.IMAGE, width=w, height=h, pixel_format=pixel_format, frame_rate=None,
                    num_frames=1, profile=Profile.IMAGE, model_id=coder.model_id,
                    weights_digest=coder.digest)
    chunks = [(ChunkType.ICC, icc_profile)] if icc_profile else []
    chunks += [(ChunkType.EXIF, exif)] if exif else []
    chunks += [(ChunkType.FRAME, payload)]
    out = io.BytesIO()
    with ContainerWriter(out, header) as writer:
        for kind, data in chunks:
            writer.write_chunk(kind, data)
    data = out.getvalue()
    return EncodeResult(data, 8 * len(data) / (h * w), coder.model_id, time.perf_counter() - start, stats)


def _search_rate(coder, y0: torch.Tensor, target_bytes: float) -> tuple[bytes, dict]:
    """Bisect the rate position for the payload closest to target_bytes (size grows with it).

    A target beyond the model's range gives the nearest end of the range and a warning.
    """
    ends = [coder.code_latents(y0, r) for r in (0, coder.max_rate_fx)]
    if not len(ends[0][0]) <= target_bytes <= len(ends[1][0]):
        nearest = ends[0] if target_bytes < len(ends[0][0]) else ends[1]
        warnings.warn(f"target rate not reachable; coded at the nearest achievable rate "
                      f"({len(nearest[0]) / target_bytes:.2f}x the target)", stacklevel=3)
        return nearest
    lo, hi = 0, coder.max_rate_fx
    best = min(ends, key=lambda c: abs(len(c[0]) - target_bytes))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        coded = coder.code_latents(y0, mid)
        best = min(best, coded, key=lambda c: abs(len(c[0]) - target_bytes))
        if abs(len(coded[0]) - target_bytes) <= BPP_TOLERANCE * target_bytes:
            break
        lo, hi = (mid, hi) if len(coded[0]) < target_bytes else (lo, mid)
    return best


def decode_array(data: bytes, *, device: str = "cpu") -> DecodeResult:
    """Decode `.neco` bytes to pixels; checks the model and container before any model runs."""
    start = time.perf_counter()
    container = read_container(data)
    header = container.header
    if header.kind != Kind.IMAGE or header.profile != Profile.IMAGE:
        raise UnsupportedError(f"this build decodes still images only (file kind {header.kind.name}, "
                               f"profile {header.profile!r})")
    frames = [c for c in container.chunks if c.type == ChunkType.FRAME]
    if len(frames) != 1:
        raise CorruptDataError(f"an image file holds exactly one FRAME chunk, found {len(frames)}")
    if header.width * header.height > MAX_PIXELS:
        raise UnsupportedError(f"image of {header.width}x{header.height} exceeds the limit of {MAX_PIXELS:,} pixels")
    coder = registry.get_model(header.model_id)
    if coder.digest != header.weights_digest:
        raise ModelError(f"file was encoded with other weights of model {header.model_id!r} "
                         f"(digest {header.weights_digest.hex()}, installed {coder.digest.hex()})")
    pixels = coder.decode(frames[0].payload, header.height, header.width, device)
    meta = {c.type: c.payload for c in container.chunks if c.type in (ChunkType.ICC, ChunkType.EXIF)}
    return DecodeResult(pixels.permute(1, 2, 0).numpy(), header, meta.get(ChunkType.ICC),
                        meta.get(ChunkType.EXIF), time.perf_counter() - start)
