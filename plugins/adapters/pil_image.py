"""PIL images <-> the pixel arrays neco codes, shared by the `neco` facade and the Pillow plugin.

Input: what a PIL image of any mode becomes, so the decoded file looks the way a viewer showed
the input (`to_rgb_array`), and the warnings that say what was lost. Output: decoded pixels as
the PIL image a greyscale or colour file stands for (`to_pil_image`). `encode_image` and
`decode_image` put these around `neco.codec.session` (no `neco` facade import here, so the
facade can register the Pillow plugin without a cycle).
"""

from collections.abc import Iterable, Iterator
import io
import itertools
import warnings

import numpy as np
from PIL import Image

from neco.formats import CorruptDataError, InvalidArgumentError, PixelFormat, UnsupportedError


def encode_image(image, quality: float | None = None, bpp: float | None = None, *, device: str = "cpu",
                 model: str | None = None, effort: int = 0) -> bytes:
    """`.neco` bytes of a PIL image or HxWx3 uint8 array, its ICC profile and EXIF carried (`neco.encode`)."""
    from neco.codec.session import encode_array  # torch loads only when a model runs
    pixels, pixel_format, meta = to_rgb_array(image)
    return encode_array(pixels, quality, bpp, pixel_format=pixel_format, device=device, model=model,
                        effort=effort, icc_profile=meta.get("icc_profile"), exif=meta.get("exif")).data


def decode_image(data: bytes, *, device: str = "cpu") -> Image.Image:
    """The PIL image of `.neco` bytes: RGB, or L for a greyscale file; ICC / EXIF in `info` (`neco.decode`)."""
    from neco.codec.session import decode_array
    result = decode_array(data, device=device)
    return to_pil_image(result.pixels, result.header.pixel_format, icc_profile=result.icc_profile,
                        exif=result.exif)


def to_pil_image(pixels: np.ndarray, pixel_format: PixelFormat, *, icc_profile: bytes | None = None,
                 exif: bytes | None = None) -> Image.Image:
    """Decoded (H, W, 3) uint8 pixels as a PIL image: mode L (the channels' rounded mean) for a
    GRAY8 file, else RGB; an ICC profile and EXIF, when given, go into `image.info`."""
    if pixel_format == PixelFormat.GRAY8:
        image = Image.fromarray(np.round(pixels.mean(axis=2)).astype(np.uint8), "L")
    else:
        image = Image.fromarray(pixels, "RGB")
    if icc_profile:
        image.info["icc_profile"] = icc_profile
    if exif:
        image.info["exif"] = exif
    return image


def to_rgb_frames(frames: Iterable) -> tuple[Iterator[np.ndarray], PixelFormat]:
    """The frames of a sequence (PIL images or arrays) as RGB arrays, converted one at a time, and
    the pixel format to record (a greyscale first frame: GRAY8). Each conversion warning is
    given once for the whole sequence; no frame at all is an InvalidArgumentError."""
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise InvalidArgumentError("no frames to encode")
    said: set[str] = set()
    pixels, pixel_format, _ = to_rgb_array(first, single_frame=False, said=said)
    rest = (to_rgb_array(frame, single_frame=False, said=said)[0] for frame in iterator)
    return itertools.chain([pixels], rest), pixel_format


def to_rgb_array(image, *, single_frame: bool = True, said: set | None = None) -> tuple[np.ndarray, PixelFormat, dict]:
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
    from neco.codec.session import MAX_PIXELS
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InvalidArgumentError(f"image of {width}x{height} pixels exceeds the limit of {MAX_PIXELS:,} pixels")
    said = set() if said is None else said
    if single_frame and getattr(image, "is_animated", False):
        _warn_once(said, "frames", f"image has {image.n_frames} frames; coded frame {image.tell()} only "
                                   f"(neco.encode_frames codes them all)")
    if high_bit_depth_truncated(image):
        _warn_once(said, "16-bit", HIGH_BIT_DEPTH_WARNING)
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
HIGH_BIT_DEPTH_WARNING = "16-bit samples reduced to 8 bits (Pillow keeps the high byte of each)"
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def high_bit_depth_truncated(image: Image.Image) -> bool:
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


def _warn_once(said: set, kind: str, message: str, stacklevel: int = 5) -> None:
    """Warn about `kind` unless `said` has it already. The default stacklevel points at the
    caller of `neco.encode` when called from `to_rgb_array`; its helpers pass 6."""
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
                                 f"their finer steps are lost", stacklevel=6)
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
                   stacklevel=6)
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
                             f"colour management", stacklevel=6)
    return image.convert("RGB")
