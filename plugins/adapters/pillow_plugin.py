"""Pillow format plugin for ``.neco`` images: ``Image.open`` and ``Image.save`` speak neco.

Follows the conventions of Pillow's own plugins (``QoiImagePlugin``, ``WebPImagePlugin``):

- `_accept` looks at the magic only;
- `NecoImageFile._open` parses the container header (size, mode) with `neco.formats` -- no model
  runs, so ``Image.open`` is cheap -- and raises `SyntaxError` for anything that is not neco;
- `NecoImageFile.load` decodes as `neco.decode` does (`pil_image.decode_image`) and translates
  `NecoError` into the `OSError` Pillow users expect from a codec that failed;
- `_save` reads ``quality``, ``bpp`` and ``device`` from ``im.encoderinfo`` and writes what
  `neco.encode` writes (`pil_image.encode_image`); ``icc_profile`` / ``exif`` given to ``save``
  override those of the image.
- Video files are multi-frame images: ``n_frames``, ``is_animated``, ``seek()`` / ``tell()``, and
  ``info["duration"]`` (ms per frame) when the frame rate is known. `load` decodes only the
  current frame, read at its offset (`neco.codec.session.FrameReader.frame`): a predicted frame
  (video profile) from the last key frame at or before it, the frames between only as far as
  their latents, or on from the frame loaded before when that is on the way (so reading frames
  in order decodes each once); ``n_frames`` of a stream that did not declare its count costs one
  pass over the container (no frame is decoded). Seeking outside the frames raises `EOFError`.
  ``save(..., save_all=True, append_images=[...], duration=40)`` writes a video.

Registration is explicit, via `register` (``import neco`` calls it), as pillow-heif does. The
plugin codes through `neco.codec.session` and `pil_image`, never through the `neco` facade,
which imports it.

    from PIL import Image
    import neco  # registers the plugin
    image.save("out.neco", quality=60)
    Image.open("out.neco").convert("RGB")
"""

from __future__ import annotations

from fractions import Fraction
from io import BytesIO
import itertools
from typing import IO

from PIL import Image, ImageFile, ImageSequence

from neco.formats import MAGIC, ContainerReader, Kind, NecoError, PixelFormat

from .pil_image import decode_image, encode_image, to_pil_image, to_rgb_frames

FORMAT = "NECO"
EXTENSION = ".neco"
MIME = "image/x-neco"


def _accept(prefix: bytes) -> bool:
    return prefix.startswith(MAGIC)


class NecoImageFile(ImageFile.ImageFile):
    """A ``.neco`` still image; pixels are decoded (model run) on `load`, not on open."""

    format = FORMAT
    format_description = "neco neural image"

    def _open(self) -> None:
        assert self.fp is not None
        start = self.fp.tell()
        if not _accept(self.fp.read(len(MAGIC))):
            raise SyntaxError("not a neco file")
        self.fp.seek(start)
        try:
            header = ContainerReader(self.fp).header
        except NecoError as exc:
            raise SyntaxError(f"not a valid neco file: {exc}") from exc
        # What neco.decode returns: greyscale files decode to L, everything else to RGB. A
        # stream this build cannot decode (another profile, say) still opens; load() raises OSError.
        self._size = (header.width, header.height)
        self._mode = "L" if header.pixel_format == PixelFormat.GRAY8 else "RGB"
        self._neco_offset = start
        self.info["neco_model_id"] = header.model_id
        self.tile = [ImageFile._Tile("neco", (0, 0, *self.size), start)]
        self._neco_video = header.kind == Kind.VIDEO
        if self._neco_video:
            self._neco_frame = 0
            self._neco_count = header.num_frames or None  # None: counted on first use
            self._neco_reader = None
            # Keep the file open for later frames; close() closes it (Pillow closes _fp).
            self._fp = self.fp
            self._close_exclusive_fp_after_loading = False
            if header.frame_rate:
                self.info["duration"] = float(1000 / header.frame_rate)

    @property
    def n_frames(self) -> int:
        if not self._neco_video:
            return 1
        if self._neco_count is None:
            self._neco_count = self._frames().frame_count()
        return self._neco_count

    @property
    def is_animated(self) -> bool:
        return self.n_frames > 1

    def seek(self, frame: int) -> None:
        if not self._seek_check(frame):
            return
        self._neco_frame = frame
        self.tile = [ImageFile._Tile("neco", (0, 0, *self.size), frame)]

    def tell(self) -> int:
        return self._neco_frame if self._neco_video else 0

    def _frames(self):
        """The FrameReader over the open file (built once; it checks the model on creation)."""
        if self._neco_reader is None:
            from neco.codec.session import FrameReader  # torch loads only when a frame is decoded
            try:
                self._fp.seek(self._neco_offset)
                self._neco_reader = FrameReader(self._fp)
            except NecoError as exc:
                raise OSError(f"cannot decode neco video: {exc}") from exc
        return self._neco_reader

    def _load_frame(self) -> None:
        try:
            pixels = self._frames().frame(self._neco_frame)
        except NecoError as exc:
            raise OSError(f"cannot decode frame {self._neco_frame} of neco video: {exc}") from exc
        pixel_format = PixelFormat.GRAY8 if self.mode == "L" else PixelFormat.RGB8
        self.fp = BytesIO(to_pil_image(pixels, pixel_format).tobytes())
        self.tile = [ImageFile._Tile("raw", (0, 0, *self.size), 0, self.mode)]

    def load(self) -> Image.core.PixelAccess | None:
        if self._neco_video and self.tile and self.tile[0].codec_name == "neco":
            self._load_frame()
        elif self.tile and self.tile[0].codec_name == "neco":
            assert self.fp is not None
            self.fp.seek(self._neco_offset)
            data = self.fp.read()
            try:
                decoded = decode_image(data)
            except NecoError as exc:
                raise OSError(f"cannot decode neco image: {exc}") from exc
            if decoded.size != self.size or decoded.mode != self.mode:
                raise OSError(
                    f"decoded {decoded.mode} {decoded.size} does not match the header "
                    f"({self.mode} {self.size})"
                )
            self.info.update(
                {key: decoded.info[key] for key in ("icc_profile", "exif") if key in decoded.info}
            )
            if self._exclusive_fp:
                self.fp.close()
            # Hand the pixels to ImageFile.load as one raw tile (as WebPImagePlugin does).
            self.fp = BytesIO(decoded.tobytes())
            self.tile = [ImageFile._Tile("raw", (0, 0, *self.size), 0, self.mode)]
        return super().load()

    def load_seek(self, pos: int) -> None:
        # Present so ImageFile.load never memory-maps the .neco file as if it held raw pixels.
        self.fp.seek(pos)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    options = im.encoderinfo
    source = im
    overrides = {key: options[key] for key in ("icc_profile", "exif") if options.get(key)}
    if overrides:
        source = im.copy()
        source.info.update(overrides)
    try:
        data = encode_image(
            source,
            quality=options.get("quality"),
            bpp=options.get("bpp"),
            device=options.get("device", "cpu"),
        )
    except ValueError:  # InvalidArgumentError is a ValueError already, as Pillow's are
        raise
    except NecoError as exc:
        raise OSError(f"cannot encode neco image: {exc}") from exc
    fp.write(data)


def _save_all(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """``save_all=True``: every frame of `im`, then ``append_images``, as a video `.neco`.

    The frame rate comes from ``duration`` (ms per frame; encoderinfo, else im.info) when given.
    """
    from neco.codec.session import encode_frames  # torch loads only when a model runs
    options = im.encoderinfo
    duration = options.get("duration", im.info.get("duration"))
    rate = None
    if isinstance(duration, (int, float)) and duration > 0:
        rate = Fraction(1000) / Fraction(duration).limit_denominator(1000)
    frames = itertools.chain(ImageSequence.Iterator(im), options.get("append_images", []))
    try:
        arrays, pixel_format = to_rgb_frames(frames)
        encode_frames(arrays, fp, options.get("quality"), options.get("bpp"), frame_rate=rate,
                      pixel_format=pixel_format, device=options.get("device", "cpu"))
    except ValueError:
        raise
    except NecoError as exc:
        raise OSError(f"cannot encode neco video: {exc}") from exc


def register() -> None:
    """Register ``.neco`` with Pillow (open, save, extension, MIME); safe to call twice."""
    Image.register_open(FORMAT, NecoImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_save_all(FORMAT, _save_all)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
