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
import itertools
import os

import numpy as np
from PIL import Image

from neco.formats import (ChunkType, CorruptDataError, InvalidArgumentError, ModelError, NecoError,
                          PixelFormat, UnsupportedError, read_container)

from neco.codec import frame_fields

from .image_input import to_rgb_array
from .lenient import LenientReader

try:
    __version__ = version("neco")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

# Model ids whose FRAME payloads open with the image profile's rate field (docs/FORMAT.md, section 10).
IMAGE_PAYLOAD_MODELS = "image-hp-"

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
    from neco.codec.session import encode_array
    pixels, pixel_format, meta = to_rgb_array(image)
    return encode_array(pixels, quality, bpp, pixel_format=pixel_format, device=device, model=model,
                        effort=effort, icc_profile=meta.get("icc_profile"), exif=meta.get("exif")).data


def decode_array(data: bytes, *, device: str = "cpu") -> np.ndarray:
    """Decode `.neco` bytes to an HxWx3 uint8 array."""
    from neco.codec.session import decode_array as _decode
    return _decode(_as_bytes(data), device=device).pixels


def decode(data: bytes, *, device: str = "cpu") -> Image.Image:
    """Decode `.neco` bytes to a PIL image (RGB, or L when the file was greyscale)."""
    from neco.codec.session import decode_array as _decode
    result = _decode(_as_bytes(data), device=device)
    if result.header.pixel_format == PixelFormat.GRAY8:
        grey = np.round(result.pixels.astype(np.float32).mean(axis=2)).astype(np.uint8)
        image = Image.fromarray(grey, "L")
    else:
        image = Image.fromarray(result.pixels, "RGB")
    if result.icc_profile:
        image.info["icc_profile"] = result.icc_profile
    if result.exif:
        image.info["exif"] = result.exif
    return image


def info(data: bytes) -> dict:
    """Facts about a `.neco` file from its container alone (no model runs)."""
    container = read_container(_as_bytes(data))
    h = container.header
    names = {int(t): t.name for t in ChunkType}
    frames = max(1, sum(c.type == ChunkType.FRAME for c in container.chunks))
    image_payloads = h.model_id.startswith(IMAGE_PAYLOAD_MODELS)  # FORMAT.md section 10
    video = {}
    if h.kind.name == "VIDEO":
        video = {"frame_rate": str(h.frame_rate) if h.frame_rate else "unknown", "frames": frames}
    return {
        "kind": h.kind.name.lower(),
        "width": h.width,
        "height": h.height,
        "pixel_format": h.pixel_format.name,
        "profile": str(h.profile),
        "model_id": h.model_id,
        "weights_digest": h.weights_digest.hex(),
        "num_frames": h.num_frames,
        "size_bytes": len(data),
        "bpp": 8 * len(data) / (h.width * h.height * frames),  # per frame
        **video,
        "version": container.version,
        "chunks": [{"type": names.get(c.type, str(c.type)), "length": len(c.payload),
                    **(_frame_fields(c.payload) if c.type == ChunkType.FRAME and image_payloads else {})}
                   for c in container.chunks],
        "skipped_chunks": [{"type": c.type, "offset": c.offset, "length": c.length}
                           for c in container.skipped],
    }


def _frame_fields(payload: bytes) -> dict:
    """A FRAME's rate level and adaptation flag (neco.codec.frame_fields), or nothing when its
    first field does not read (decode reports why)."""
    try:
        return frame_fields.describe(payload)
    except NecoError:
        return {}


def encode_frames(frames, output, quality: float | None = None, bpp: float | None = None, *,
                  frame_rate=None, num_frames: int | None = None, device: str = "cpu",
                  model: str | None = None, effort: int = 0):
    """Code a sequence of frames (PIL images or HxWx3 uint8 arrays, any iterable) into a
    video `.neco` at `output` (a path or a binary stream), writing each frame as it is coded.

    Frames are independent intra frames for now (docs/FORMAT.md section 10); frame_rate is
    a Fraction or int (None: unknown); num_frames defaults to len(frames) when known. Returns
    a `neco.codec.session.FramesResult` (frames, bytes_written, bpp, seconds).
    """
    from neco.codec.session import encode_frames as _encode_frames
    if num_frames is None and hasattr(frames, "__len__"):
        num_frames = len(frames)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise InvalidArgumentError("no frames to encode")
    said: set[str] = set()  # each conversion warning once for the whole sequence
    pixels, pixel_format, _ = to_rgb_array(first, single_frame=False, said=said)  # greyscale first frame: GRAY8
    arrays = itertools.chain([pixels], (to_rgb_array(frame, single_frame=False, said=said)[0] for frame in iterator))
    stream = builtins.open(output, "wb") if isinstance(output, (str, os.PathLike)) else output
    try:
        return _encode_frames(arrays, stream, quality, bpp, frame_rate=frame_rate, num_frames=num_frames,
                              pixel_format=pixel_format, device=device, model=model, effort=effort)
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


from neco.plugins.pillow_plugin import register as _register_pillow_plugin  # noqa: E402

_register_pillow_plugin()
