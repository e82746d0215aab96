"""What the CLI reads: files or binary stdin (``-``), and input images opened with Pillow so
that every failure of the file surfaces as one line naming it."""

from __future__ import annotations

import errno
import io
import os
import warnings
from typing import Any

import click
from PIL import Image, UnidentifiedImageError

from neco.plugins.adapters import pil_image

from .errors import STDIO, CliError, describe, display


def stdin() -> Any:
    """Binary stdin, refused when it is a terminal."""
    stream = click.open_file(STDIO, "rb")
    if stream.isatty():
        raise CliError("refusing to read binary data from a terminal; pipe a file into stdin")
    return stream


def read_input(path: str) -> bytes:
    """All bytes of a file, or of stdin for ``-``."""
    if path == STDIO:
        return stdin().read()
    with open(path, "rb") as f:
        return f.read()


def check_input(path: str) -> None:
    """One-line errors for an input that is a directory or an empty file (a missing one fails on open)."""
    if path == STDIO:
        return
    if os.path.isdir(path):
        raise CliError(f"{click.format_filename(path)}: {os.strerror(errno.EISDIR)}")  # the OS's wording
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise CliError(f"{click.format_filename(path)}: empty file")


def open_image(path: str, data: bytes) -> Image.Image:
    """Decode an input image held in memory (stdin) with Pillow, fully, so every failure surfaces here."""
    name = display(path, "stdin")
    if not data:
        raise CliError(f"{name}: empty input")
    image = _pillow_open(io.BytesIO(data), name)
    if image is None:
        raise CliError(f"{name}: not an image Pillow can read")
    return load_image(image, name)


def probe_image(path: str) -> Image.Image | None:
    """The image file at `path`, opened (header only), or None when Pillow does not know it (Y4M, video)."""
    return _pillow_open(path, click.format_filename(path))


def _pillow_open(source: str | io.BytesIO, name: str) -> Image.Image | None:
    """`Image.open`, with a decompression bomb -- an image over `Image.MAX_IMAGE_PIXELS`, which
    Pillow only warns about up to twice that -- as a one-line error. None: not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source)
    except UnidentifiedImageError:
        return None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CliError(f"{name}: {describe(exc)}") from exc


def load_image(image: Image.Image, name: str) -> Image.Image:
    """Decode the pixels of an opened image, so every failure of the file surfaces here.

    Pillow reports a damaged file as OSError ("image file is truncated") and, from some
    plugins, SyntaxError; both become one line naming the input. 16-bit RGB, which Pillow
    delivers as 8 bits, is only visible before loading: the warning is given here.
    """
    if pil_image.high_bit_depth_truncated(image):
        warnings.warn(pil_image.HIGH_BIT_DEPTH_WARNING, stacklevel=2)
    try:
        image.load()
    except (OSError, SyntaxError) as exc:
        raise CliError(f"{name}: {describe(exc)}") from exc
    return image
