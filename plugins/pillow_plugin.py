"""Pillow format plugin for ``.neco`` images: ``Image.open`` and ``Image.save`` speak neco.

Follows the conventions of Pillow's own plugins (``QoiImagePlugin``, ``WebPImagePlugin``):

- `_accept` looks at the magic only;
- `NecoImageFile._open` parses the container header (size, mode) with `neco.formats` -- no model
  runs, so ``Image.open`` is cheap -- and raises `SyntaxError` for anything that is not neco;
- `NecoImageFile.load` decodes through `neco.decode` and translates `NecoError` into the
  `OSError` Pillow users expect from a codec that failed;
- `_save` reads ``quality``, ``bpp`` and ``device`` from ``im.encoderinfo`` and writes
  `neco.encode` bytes; ``icc_profile`` / ``exif`` given to ``save`` override those of the image.

Registration is explicit, via `register` (``import neco`` calls it), as pillow-heif does.

    from PIL import Image
    import neco  # registers the plugin
    image.save("out.neco", quality=60)
    Image.open("out.neco").convert("RGB")
"""

from __future__ import annotations

from io import BytesIO
from typing import IO

from PIL import Image, ImageFile

import neco
from neco.formats import MAGIC, ContainerReader, NecoError, PixelFormat

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
        # stream this build cannot decode (video, say) still opens; load() raises OSError.
        self._size = (header.width, header.height)
        self._mode = "L" if header.pixel_format == PixelFormat.GRAY8 else "RGB"
        self._neco_offset = start
        self.info["neco_model_id"] = header.model_id
        self.tile = [ImageFile._Tile("neco", (0, 0, *self.size), start)]

    def load(self) -> Image.core.PixelAccess | None:
        if self.tile and self.tile[0].codec_name == "neco":
            assert self.fp is not None
            self.fp.seek(self._neco_offset)
            data = self.fp.read()
            try:
                decoded = neco.decode(data)
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
        data = neco.encode(
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


def register() -> None:
    """Register ``.neco`` with Pillow (open, save, extension, MIME); safe to call twice."""
    Image.register_open(FORMAT, NecoImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
