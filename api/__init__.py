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
import dataclasses
from importlib.metadata import PackageNotFoundError, version
import io
import itertools
import os
import warnings

import numpy as np
from PIL import Image

from neco.formats import (ChunkType, ContainerReader, ContainerWriter, CorruptDataError, InvalidArgumentError,
                          Kind, ModelError, NecoError, PixelFormat, UnsupportedError, read_container,
                          write_container)

try:
    __version__ = version("neco")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["encode", "decode", "decode_array", "info", "encode_frames", "open", "NecoError", "CorruptDataError",
           "UnsupportedError", "ModelError", "InvalidArgumentError", "__version__"]


def _to_rgb_array(image, *, single_frame: bool = True, said: set | None = None) -> tuple[np.ndarray, PixelFormat, dict]:
    """RGB uint8 pixels, the pixel format to record, and metadata (ICC, EXIF) of the input.

    What each kind of PIL image becomes, so the decoded file looks like the input did:

    - greyscale (1, L, 16-bit I;16, I, F) is coded as RGB and recorded as GRAY8, so decoding
      gives greyscale back; wider samples are rounded to 8 bits (v * 255 / peak), with a
      warning when that loses information;
    - 16-bit RGB(A), which Pillow delivers as 8-bit (it keeps the high byte): a warning;
    - CMYK is converted to sRGB through its ICC profile when it has a usable one (as
      colour-managed viewers show it), else with Pillow's formula; the CMYK profile is not
      carried, since it does not describe the RGB pixels;
    - palette, YCbCr, LAB and HSV images are converted to RGB;
    - alpha (LA, RGBA, PA, a transparency key) is dropped: neco codes no alpha yet; a warning
      says how many pixels were not opaque (none: no warning);
    - an EXIF orientation is applied to the pixels (`PIL.ImageOps.exif_transpose`) and removed
      from the EXIF that is carried, so the image is upright and viewers do not rotate it again;
    - of a multi-frame image (animated GIF / PNG / WebP, multi-page TIFF) only the current
      frame is coded, with a warning (`encode_frames` codes them all) unless `single_frame`
      is False.

    `said`: the kinds of warning already given; a sequence shares one set, so each warning is
    given once for all its frames rather than once per frame.

    Size is checked before any pixel is loaded, so a decompression bomb costs no memory. A
    file Pillow cannot read to the end (truncated, damaged) raises CorruptDataError.
    """
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8 and image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2), PixelFormat.GRAY8, {}
        return image, PixelFormat.RGB8, {}
    if not isinstance(image, Image.Image):
        raise InvalidArgumentError(f"image must be a PIL image or a numpy array, not {type(image).__name__}")
    from neco.codec.api import MAX_PIXELS
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InvalidArgumentError(f"image of {width}x{height} pixels exceeds the limit of {MAX_PIXELS:,} pixels")
    said = set() if said is None else said
    if single_frame and getattr(image, "is_animated", False):
        _warn_once(said, "frames", f"image has {image.n_frames} frames; coded frame {image.tell()} only "
                                   f"(neco.encode_frames codes them all)")
    if _high_bit_depth_truncated(image):
        _warn_once(said, "16-bit", _HIGH_BIT_DEPTH_WARNING)
    try:
        image.load()
    except (OSError, SyntaxError, EOFError) as exc:  # how Pillow reports a truncated or damaged file
        raise CorruptDataError(f"cannot read the image: {' '.join(str(exc).split()) or type(exc).__name__}") from exc
    image = _upright(image)
    meta = {"icc_profile": image.info.get("icc_profile"), "exif": image.info.get("exif")}
    if isinstance(meta["exif"], Image.Exif):
        meta["exif"] = meta["exif"].tobytes()
    image = _without_alpha(image, said)
    mode = image.mode
    if mode in _WIDE_GREY_MODES:
        return _grey_to_rgb(_reduce_to_8_bits(image, said)), PixelFormat.GRAY8, meta
    if mode in ("1", "L"):
        return _grey_to_rgb(np.asarray(image.convert("L"))), PixelFormat.GRAY8, meta
    if mode == "CMYK":
        rgb = _cmyk_to_rgb(image, meta["icc_profile"], said)
        return np.asarray(rgb), PixelFormat.RGB8, {**meta, "icc_profile": None}
    if mode in ("RGB", "RGBX", "P", "YCbCr", "LAB", "HSV"):
        return np.asarray(image.convert("RGB")), PixelFormat.RGB8, meta
    raise UnsupportedError(f"images of mode {mode} cannot be coded (neco takes RGB, greyscale, "
                           f"palette, CMYK, YCbCr, LAB and HSV images, with or without alpha)")


# Said when Pillow has already reduced 16-bit RGB(A) samples to 8 bits (the CLI says it too).
_HIGH_BIT_DEPTH_WARNING = "16-bit samples reduced to 8 bits (Pillow keeps the high byte of each)"
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _high_bit_depth_truncated(image: Image.Image) -> bool:
    """True when `image`, not loaded yet, will be delivered at 8 bits from wider samples.

    Pillow has no 16-bit RGB mode: it decodes 16-bit RGB(A) PNG and TIFF samples to 8 bits,
    and only the pending decoder's raw mode ("RGB;16B", ...) says so, before `load()`.
    """
    if image.mode in _WIDE_GREY_MODES:
        return False  # kept wide; _reduce_to_8_bits rounds and warns only on loss
    for tile in getattr(image, "tile", None) or ():
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        if any(isinstance(arg, str) and ";16" in arg for arg in args[:1]):
            return True
    return False


def _warn_once(said: set, kind: str, message: str, stacklevel: int = 4) -> None:
    """Warn about `kind` unless `said` has it already. The default stacklevel points at the
    caller of `neco.encode` when called from `_to_rgb_array`; its helpers pass 5."""
    if kind not in said:
        said.add(kind)
        warnings.warn(message, stacklevel=stacklevel)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def _reduce_to_8_bits(image: Image.Image, said: set) -> np.ndarray:
    """Greyscale samples of a wide mode, rounded to 8 bits; a warning when that loses anything.

    16-bit modes span 0-65535; I and F are taken as 0-255 unless they exceed 255 (0-65535).
    """
    wide = np.asarray(image, dtype=np.float64)
    peak = 65535.0 if image.mode.startswith("I;16") or wide.max(initial=0) > 255 else 255.0
    grey = np.clip(np.round(wide / peak * 255), 0, 255).astype(np.uint8)
    if np.any(grey * (peak / 255) != wide):
        _warn_once(said, "wide", f"{image.mode} samples reduced to 8 bits (0-{peak:.0f} -> 0-255): "
                                 f"their finer steps are lost", stacklevel=5)
    return grey


def _upright(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation says, the orientation removed from its EXIF."""
    from PIL import ExifTags, ImageOps
    if image.getexif().get(ExifTags.Base.Orientation) in range(2, 9):
        return ImageOps.exif_transpose(image)
    return image


def _without_alpha(image: Image.Image, said: set) -> Image.Image:
    """`image` without its alpha channel or transparency key; a warning when a pixel was not opaque."""
    mode = image.mode
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        target = "LA" if mode.startswith("L") else "RGBA"
    elif mode in ("1", "L", "P", "RGB") and "transparency" in image.info:
        target = "LA" if mode in ("1", "L") else "RGBA"
    else:
        return image
    with_alpha = image.convert(target)
    alpha = np.asarray(with_alpha.getchannel("A"))
    transparent = int(np.count_nonzero(alpha < 255))
    if transparent:
        _warn_once(said, "alpha", f"alpha channel dropped: neco codes colour only ({transparent:,} of "
                                  f"{alpha.size:,} pixels are not opaque; they keep their stored colour)",
                   stacklevel=5)
    return with_alpha.convert(target[:-1])


def _cmyk_to_rgb(image: Image.Image, icc_profile: bytes | None, said: set) -> Image.Image:
    """A CMYK image in sRGB: through its ICC profile when it has a usable CMYK one (what
    colour-managed viewers show), else with Pillow's formula (what the others show)."""
    if not icc_profile:
        return image.convert("RGB")
    try:
        from PIL import ImageCms
    except ImportError:  # a Pillow built without littlecms
        reason = "Pillow has no colour management"
    else:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            space = source.profile.xcolor_space.strip()
            if space == "CMYK":
                return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            reason = f"it describes {space}, not CMYK"
        except (OSError, ImageCms.PyCMSError) as exc:  # an unreadable profile, or one littlecms refuses
            reason = str(exc)
    _warn_once(said, "cmyk", f"CMYK image: its ICC profile is unusable ({reason}); converted to RGB without "
                             f"colour management", stacklevel=5)
    return image.convert("RGB")


def encode(image, quality: float | None = None, bpp: float | None = None, *, device: str = "cpu",
           model: str | None = None, effort: int = 0) -> bytes:
    """Compress a PIL image or HxWx3 uint8 array to `.neco` bytes.

    quality: 0-100 (default 75, a visually good rate); bpp: a target rate in bits per pixel,
    reached by search (an unreachable target gives the nearest achievable rate and a warning).
    effort: 0 (one forward pass, the default) to 3; higher levels spend encoder time refining
    the latents for this image (smaller files at the same quality; any decoder reads them).
    ICC profile and EXIF in `image.info` are carried into the file.
    """
    from neco.codec.api import encode_array
    pixels, pixel_format, meta = _to_rgb_array(image)
    return encode_array(pixels, quality, bpp, pixel_format=pixel_format, device=device, model=model,
                        effort=effort, icc_profile=meta.get("icc_profile"), exif=meta.get("exif")).data


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
                  model: str | None = None, effort: int = 0):
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
    said: set[str] = set()  # each conversion warning once for the whole sequence
    pixels, pixel_format, _ = _to_rgb_array(first, single_frame=False, said=said)  # greyscale first frame: GRAY8
    arrays = itertools.chain([pixels], (_to_rgb_array(frame, single_frame=False, said=said)[0] for frame in iterator))
    stream = builtins.open(output, "wb") if isinstance(output, (str, os.PathLike)) else output
    try:
        return _encode_frames(arrays, stream, quality, bpp, frame_rate=frame_rate, num_frames=num_frames,
                              pixel_format=pixel_format, device=device, model=model, effort=effort)
    finally:
        if stream is not output:
            stream.close()


def open(source, *, device: str = "cpu", strict: bool = True):  # noqa: A001 (like PIL.Image.open)
    """A `neco.codec.api.FrameReader` over a `.neco` file (path), bytes or binary stream (a pipe works).

    Iterate it for HxWx3 uint8 frames, decoded one at a time; `reader.frame_count()` and
    `reader.frame(i)` on files. Use it as a context manager to close a file it opened.

    strict=False: a lenient reader (iteration only) that decodes what it can of a damaged
    stream: a chunk that fails its check is skipped, and each loss is reported with a warning
    and listed in `reader.lost` (see `_LenientReader`).
    """
    from neco.codec.api import FrameReader
    kind = FrameReader if strict else _LenientReader
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


class _Prefixed:
    """A read-only stream: `head`, then whatever `stream` reads from its current position."""

    def __init__(self, head: bytes, stream) -> None:
        self._head, self._stream = head, stream

    def read(self, n: int) -> bytes:
        if self._head:
            piece, self._head = self._head[:n], self._head[n:]
            return piece
        return self._stream.read(n)


class _LenientReader:
    """`neco.open(..., strict=False)`: the frames of a damaged stream that can still be decoded.

    The header must be intact (without it nothing can be decoded). Then each chunk is read on
    its own, by a `ContainerReader` over the header followed by that chunk, so one chunk's
    failure does not stop the next:

    - a chunk that fails its CRC (or a FRAME whose payload does not decode) is skipped: its
      length field is trusted to find the next chunk, and the loss is reported;
    - a second failure in a row means that length was damaged too: the rest is reported lost;
    - a stream that ends early (no END) is reported truncated.

    Each loss is a warning as it is found and a line in `lost`. Iteration only (no seeking),
    so pipes work; the stream-level checks of the strict reader (frame count, INDEX) are not
    made. Frames decode through `decode_array`, so the model and its weights are checked as
    in strict mode.
    """

    def __init__(self, stream, *, device: str = "cpu", close_stream: bool = False) -> None:
        self._stream, self._device, self._close_stream = stream, device, close_stream
        reader = ContainerReader(stream)
        self.header = reader.header
        self._start = reader.offset  # file offset of the first chunk
        fresh = io.BytesIO()
        ContainerWriter(fresh, dataclasses.replace(self.header, num_frames=0))  # writes the header only
        self._head = fresh.getvalue()  # the header again, declaring no frame count: END closes a one-chunk read
        self._still = dataclasses.replace(self.header, kind=Kind.IMAGE, frame_rate=None, num_frames=1)
        self.icc_profile: bytes | None = None
        self.exif: bytes | None = None
        self.lost: list[str] = []
        self._started = False

    def __iter__(self):
        if self._started:
            raise InvalidArgumentError("a lenient reader can be iterated only once")
        self._started = True
        return self._frames()

    def _frames(self):
        offset, position, failed, pending = self._start, 0, False, b""
        while True:
            first = pending or self._stream.read(1)
            if not first:
                self._lose(f"stream truncated at offset {offset}, after {position} frame(s) (no END): "
                           f"any later frame is lost")
                return
            reader = ContainerReader(_Prefixed(self._head + first, self._stream))
            try:
                chunk = next(reader, None)
            except CorruptDataError:  # CRC mismatch, truncation or a bad field in this chunk
                length = reader.offset - len(self._head)
                pending = self._stream.read(1)
                if not pending:
                    self._lose(f"stream truncated inside the chunk at offset {offset}, after {position} frame(s): "
                               f"any later frame is lost")
                    return
                if failed:
                    self._lose(f"unreadable from offset {offset} on (a damaged chunk length?): the rest of "
                               f"the stream is lost")
                    return
                if first[0] == ChunkType.FRAME:  # the type byte, unless it is the damaged one
                    self._lose(f"frame {position} lost: its chunk at offset {offset} ({length} bytes) fails its check")
                    position += 1
                else:
                    self._lose(f"chunk at offset {offset} ({length} bytes) skipped: it fails its check")
                offset, failed = offset + length, True
                continue
            if chunk is None:  # END
                return
            start, offset = offset, offset + reader.offset - len(self._head)
            failed, pending = False, b""
            if chunk.type == ChunkType.ICC:
                self.icc_profile = chunk.payload
            elif chunk.type == ChunkType.EXIF:
                self.exif = chunk.payload
            elif chunk.type == ChunkType.FRAME:
                position += 1
                try:
                    pixels = self._decode(chunk.payload)
                except CorruptDataError as exc:  # intact chunk, payload the coder refuses
                    self._lose(f"frame {position - 1} lost: its payload at offset {start} does not decode ({exc})")
                    continue
                yield pixels

    def _decode(self, payload: bytes) -> np.ndarray:
        from neco.codec.api import decode_array as _decode_array
        return _decode_array(write_container(self._still, [(ChunkType.FRAME, payload)]), device=self._device).pixels

    def _lose(self, what: str) -> None:
        self.lost.append(what)
        warnings.warn(f"lenient decode: {what}", stacklevel=3)

    def close(self) -> None:
        if self._close_stream:
            self._stream.close()

    def __enter__(self) -> "_LenientReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _as_bytes(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgumentError(f"expected bytes, not {type(data).__name__}")


from neco.plugins.pillow_plugin import register as _register_pillow_plugin  # noqa: E402

_register_pillow_plugin()
