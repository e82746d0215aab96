"""neco: a neural image codec with bit-exact learned entropy coding.

    import neco
    data = neco.encode(image, quality=75)      # PIL image or HxWx3 uint8 array -> .neco bytes
    image = neco.decode(data)                  # -> PIL image (RGB, or L for greyscale files)
    pixels = neco.decode_array(data)           # -> HxWx3 uint8 numpy array
    neco.info(data)                            # header facts, no model run

    with open("clip.neco", "wb") as f:         # frames stream out as they are coded
        neco.encode_frames(frames, f, quality=50, frame_rate=Fraction(30000, 1001))
    for pixels in neco.open("clip.neco"):      # decoded one frame at a time
        ...

Importing neco registers the `.neco` Pillow plugin; torch and the models load on first use.
"""

import builtins
from importlib.metadata import PackageNotFoundError, version
import io
import os

import numpy as np
from PIL import Image

from neco.codec import registry
from neco.formats import (ChunkType, CorruptDataError, InvalidArgumentError, ModelError, NecoError,
                          UnsupportedError, read_container)
from neco.plugins.adapters.pil_image import decode_image, encode_image, to_rgb_frames

try:
    __version__ = version("neco")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["encode", "decode", "decode_array", "info", "encode_frames", "open", "NecoError", "CorruptDataError",
           "UnsupportedError", "ModelError", "InvalidArgumentError", "__version__"]


def encode(image, quality: float | None = None, bpp: float | None = None, *, device: str = "cpu",
           model: str | None = None, effort: int = 0) -> bytes:
    """Compress a PIL image or HxWx3 uint8 array to `.neco` bytes.

    quality: 0-100 (default 75, a visually good rate); bpp: a target rate in bits per pixel,
    reached by search (an unreachable target gives the nearest achievable rate and a warning).
    effort: 0 (the default: one analysis pass, and a closed-form decoder adaptation) to 3;
    higher levels spend encoder time refining the latents for this image (smaller files at the
    same quality; any decoder reads them).
    ICC profile and EXIF in `image.info` are carried into the file.
    """
    return encode_image(image, quality, bpp, device=device, model=model, effort=effort)


def decode_array(data: bytes, *, device: str = "cpu") -> np.ndarray:
    """Decode `.neco` bytes to an HxWx3 uint8 array."""
    from neco.codec.session import decode_array as _decode
    return _decode(_as_bytes(data), device=device).pixels


def decode(data: bytes, *, device: str = "cpu") -> Image.Image:
    """Decode `.neco` bytes to a PIL image (RGB, or L when the file was greyscale)."""
    return decode_image(_as_bytes(data), device=device)


def info(data: bytes) -> dict:
    """Facts about a `.neco` file from its container alone (no model runs).

    A video adds ``frames``, the FRAME chunks actually in the file, ``declared_frames``,
    the count its header declares (None when the header leaves it open: a stream written
    before its length was known, e.g. from a pipe), and ``key_frames``, the frames its INDEX
    flags as key frames (all of them without flags). Each FRAME chunk shows what its model's
    family reads of its fields (the video profile: its frame type, I or P).
    """
    container = read_container(_as_bytes(data))
    h = container.header
    names = {int(t): t.name for t in ChunkType}
    frames = max(1, sum(c.type == ChunkType.FRAME for c in container.chunks))
    try:
        family = registry.family_of(h.model_id)   # None: a plugin's or an unknown model, its payloads opaque
    except ModelError:                            # a family this build does not know: opaque too
        family = None
    video = {}
    if h.kind.name == "VIDEO":
        video = {"frame_rate": str(h.frame_rate) if h.frame_rate else "unknown", "frames": frames,
                 "declared_frames": h.num_frames or None,
                 "key_frames": sum(container.is_key(i) for i in range(len(container.frames)))}
    return {
        "kind": h.kind.name.lower(),
        "width": h.width,
        "height": h.height,
        "pixel_format": h.pixel_format.name,
        "profile": str(h.profile),
        "model_id": h.model_id,
        "weights_digest": h.weights_digest.hex(),
        "size_bytes": len(data),
        "bpp": 8 * len(data) / (h.width * h.height * frames),  # per frame
        **video,
        "version": container.version,
        "chunks": [{"type": names.get(c.type, str(c.type)), "length": len(c.payload),
                    **(_payload_fields(family, c.payload) if c.type == ChunkType.FRAME and family else {})}
                   for c in container.chunks],
        "skipped_chunks": [{"type": c.type, "offset": c.offset, "length": c.length}
                           for c in container.skipped],
    }


def _payload_fields(family, payload: bytes) -> dict:
    """What the model's family reads of a FRAME's fields (e.g. its rate level), or nothing when
    they do not read (decode reports why)."""
    try:
        return family.describe_payload(payload)
    except NecoError:
        return {}


def encode_frames(frames, output, quality: float | None = None, bpp: float | None = None, *,
                  frame_rate=None, num_frames: int | None = None, device: str = "cpu",
                  model: str | None = None, effort: int = 0, progress=None, profile: str | None = None,
                  gop: int | None = None):
    """Code a sequence of frames (PIL images or HxWx3 uint8 arrays, any iterable) into a
    video `.neco` at `output` (a path or a binary stream), writing each frame as it is coded.

    profile "video" (the default for a quality): a key frame every `gop` frames (default 32)
    and predicted frames between them (docs/FORMAT.md section 12); profile "image" (the
    default for a bpp target): independent intra frames (section 10). frame_rate is
    a Fraction or int (None: unknown); num_frames defaults to len(frames) when known.
    progress: an optional callable, called after each frame is written as
    ``progress(done, total)`` (total: num_frames, or None when unknown). Returns
    a `neco.codec.session.FramesResult` (frames, bytes_written, bpp, seconds).
    """
    from neco.codec.session import encode_frames as _encode_frames
    if num_frames is None and hasattr(frames, "__len__"):
        num_frames = len(frames)
    arrays, pixel_format = to_rgb_frames(frames)
    stream = builtins.open(output, "wb") if isinstance(output, (str, os.PathLike)) else output
    try:
        return _encode_frames(arrays, stream, quality, bpp, frame_rate=frame_rate, num_frames=num_frames,
                              pixel_format=pixel_format, device=device, model=model, effort=effort,
                              progress=progress, profile=profile, gop=gop)
    finally:
        if stream is not output:
            stream.close()


def open(source, *, device: str = "cpu", strict: bool = True):  # noqa: A001 (like PIL.Image.open)
    """A `neco.codec.session.FrameReader` over a `.neco` file (path), bytes or binary stream (a pipe works).

    Iterate it for HxWx3 uint8 frames, decoded one at a time; `reader.frame_count()` and
    `reader.frame(i)` on files. Use it as a context manager to close a file it opened.

    strict=False: a lenient reader (iteration only) that decodes what it can of a damaged
    stream: a chunk that fails its check is skipped, and each loss is reported with a warning
    and listed in `reader.lost` (see `LenientReader`).
    """
    from neco.codec.lenient import LenientReader
    from neco.codec.session import FrameReader
    kind = FrameReader if strict else LenientReader
    if isinstance(source, (str, os.PathLike)):
        stream = builtins.open(source, "rb")
        try:
            return kind(stream, device=device, close_stream=True)
        except BaseException:
            stream.close()
            raise
    if isinstance(source, (bytes, bytearray, memoryview)):
        return kind(io.BytesIO(bytes(source)), device=device)
    return kind(source, device=device)


def _as_bytes(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgumentError(f"expected bytes, not {type(data).__name__}")


from neco.plugins.adapters.pillow_plugin import register as _register_pillow_plugin  # noqa: E402

_register_pillow_plugin()
