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
import itertools
import os
import warnings

import numpy as np
from PIL import Image

from neco.formats import (ChunkType, CorruptDataError, InvalidArgumentError, ModelError, NecoError,
                          PixelFormat, UnsupportedError, read_container)

try:
    __version__ = version("neco")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["encode", "decode", "decode_array", "info", "encode_frames", "open", "NecoError", "CorruptDataError",
           "UnsupportedError", "ModelError", "InvalidArgumentError", "__version__"]


def _to_rgb_array(image) -> tuple[np.ndarray, PixelFormat, dict]:
    """RGB uint8 pixels, the pixel format to record, and metadata (ICC, EXIF) of the input.

    Greyscale is coded as RGB and recorded as GRAY8, so decoding gives greyscale back. Alpha
    is dropped (neco codes no alpha yet), with a warning. High-bit-depth greyscale is reduced
    to 8 bits.
    """
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8 and image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2), PixelFormat.GRAY8, {}
        return image, PixelFormat.RGB8, {}
    if not isinstance(image, Image.Image):
        raise InvalidArgumentError(f"image must be a PIL image or a numpy array, not {type(image).__name__}")
    meta = {"icc_profile": image.info.get("icc_profile"), "exif": image.info.get("exif")}
    if isinstance(meta["exif"], Image.Exif):
        meta["exif"] = meta["exif"].tobytes()
    if "A" in image.mode or (image.mode == "P" and "transparency" in image.info):
        warnings.warn("alpha channel dropped: neco codes colour only", stacklevel=3)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        wide = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or wide.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(wide / peak * 255), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2), PixelFormat.GRAY8, meta
    if image.mode in ("1", "L", "LA"):
        grey = np.asarray(image.convert("L"))
        return np.repeat(grey[:, :, None], 3, axis=2), PixelFormat.GRAY8, meta
    return np.asarray(image.convert("RGB")), PixelFormat.RGB8, meta


def encode(image, quality: float | None = None, bpp: float | None = None, *, device: str = "cpu",
           model: str | None = None) -> bytes:
    """Compress a PIL image or HxWx3 uint8 array to `.neco` bytes.

    quality: 0-100 (default 75, a visually good rate); bpp: a target rate in bits per pixel,
    reached by search (an unreachable target gives the nearest achievable rate and a warning).
    ICC profile and EXIF in `image.info` are carried into the file.
    """
    from neco.codec.api import encode_array
    pixels, pixel_format, meta = _to_rgb_array(image)
    return encode_array(pixels, quality, bpp, pixel_format=pixel_format, device=device, model=model,
                        icc_profile=meta.get("icc_profile"), exif=meta.get("exif")).data


def decode_array(data: bytes, *, device: str = "cpu") -> np.ndarray:
    """Decode `.neco` bytes to an HxWx3 uint8 array."""
    from neco.codec.api import decode_array as _decode
    return _decode(_as_bytes(data), device=device).pixels


def decode(data: bytes, *, device: str = "cpu") -> Image.Image:
    """Decode `.neco` bytes to a PIL image (RGB, or L when the file was greyscale)."""
    from neco.codec.api import decode_array as _decode
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
        "chunks": [{"type": names.get(c.type, str(c.type)), "length": len(c.payload)} for c in container.chunks],
        "skipped_chunks": [{"type": c.type, "offset": c.offset, "length": c.length}
                           for c in container.skipped],
    }


def encode_frames(frames, output, quality: float | None = None, bpp: float | None = None, *,
                  frame_rate=None, num_frames: int | None = None, device: str = "cpu",
                  model: str | None = None):
    """Code a sequence of frames (PIL images or HxWx3 uint8 arrays, any iterable) into a
    video `.neco` at `output` (a path or a binary stream), writing each frame as it is coded.

    Frames are independent intra frames for now (docs/FORMAT.md section 10); frame_rate is
    a Fraction or int (None: unknown); num_frames defaults to len(frames) when known. Returns
    a `neco.codec.api.FramesResult` (frames, bytes_written, bpp, seconds).
    """
    from neco.codec.api import encode_frames as _encode_frames
    if num_frames is None and hasattr(frames, "__len__"):
        num_frames = len(frames)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise InvalidArgumentError("no frames to encode")
    pixels, pixel_format, _ = _to_rgb_array(first)  # greyscale first frame: a GRAY8 stream
    arrays = itertools.chain([pixels], (_to_rgb_array(frame)[0] for frame in iterator))
    stream = builtins.open(output, "wb") if isinstance(output, (str, os.PathLike)) else output
    try:
        return _encode_frames(arrays, stream, quality, bpp, frame_rate=frame_rate, num_frames=num_frames,
                              pixel_format=pixel_format, device=device, model=model)
    finally:
        if stream is not output:
            stream.close()


def open(source, *, device: str = "cpu"):  # noqa: A001 (like PIL.Image.open)
    """A `neco.codec.api.FrameReader` over a `.neco` file (path) or binary stream (a pipe works).

    Iterate it for HxWx3 uint8 frames, decoded one at a time; `reader.frame_count()` and
    `reader.frame(i)` on files. Use it as a context manager to close a file it opened.
    """
    from neco.codec.api import FrameReader
    if isinstance(source, (str, os.PathLike)):
        stream = builtins.open(source, "rb")
        try:
            return FrameReader(stream, device=device, close_stream=True)
        except BaseException:
            stream.close()
            raise
    if isinstance(source, (bytes, bytearray, memoryview)):
        import io
        return FrameReader(io.BytesIO(bytes(source)), device=device)
    return FrameReader(source, device=device)


def _as_bytes(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgumentError(f"expected bytes, not {type(data).__name__}")


from neco.plugins.pillow_plugin import register as _register_pillow_plugin  # noqa: E402

_register_pillow_plugin()
