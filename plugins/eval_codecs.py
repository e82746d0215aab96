"""The codecs `neco eval` compares, behind one small interface.

A codec turns an (H, W, 3) uint8 RGB array into bytes at a quality and back; the bench times
both calls and measures the rate from the byte count. Each codec also tells

- `unavailable()`: why it cannot run here (a library not installed), or None;
- `version()`: the library versions that produce its bytes;
- `settings()`: everything else that does (fixed encoder options, the neco model);

and the last two are part of the bench's cache key, so a new library or another setting is
measured afresh. A codec is named by a spec, ``NAME`` or ``NAME:KEY=VALUE,...`` (for example
``avif:speed=6`` or ``neco:model=image-hp-v1``); `make_codec` parses it.

The classical codecs go through Pillow and its plugins with the settings of
``../shared/reference/kodak/*-measured.json``, so a run reproduces those curves: JPEG
(libjpeg-turbo, Pillow's defaults), WebP (method 6), AVIF (libavif, speed 4, 4:2:0), HEIC
(pillow-heif, libheif + x265) and JPEG XL (pillow-jxl-plugin, effort 7). Their default
quality grids are the ones of those files.
"""

from __future__ import annotations

import io
import re
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as package_version

import numpy as np
from PIL import Image, features

NECO_QUALITIES = (0, 15, 30, 45, 60, 75, 90, 100)


class Codec:
    """One codec at fixed settings; subclasses implement `encode` and `decode`."""

    name: str = ""
    default_qualities: tuple[float, ...] = ()
    options: dict[str, object] = {}  # settings a spec may change, with their defaults

    def __init__(self, **overrides: object) -> None:
        unknown = sorted(set(overrides) - set(self.options))
        if unknown:
            allowed = ", ".join(sorted(self.options)) or "none"
            raise ValueError(f"codec {self.name!r} has no option {unknown[0]!r} (options: {allowed})")
        self.overrides = dict(overrides)
        self.config = {**self.options, **overrides}

    @property
    def label(self) -> str:
        """The name in file names and tables: ``avif``, or ``avif-speed6`` with options."""
        parts = [self.name] + [f"{k}{v}" for k, v in sorted(self.overrides.items())]
        return re.sub(r"[^A-Za-z0-9._=-]", "", "-".join(parts))

    def unavailable(self) -> str | None:
        return None

    def version(self) -> str:
        raise NotImplementedError

    def settings(self) -> dict[str, object]:
        return dict(self.config)

    def describe(self) -> str:
        options = " ".join(f"{k}={v}" for k, v in sorted(self.settings().items()))
        return f"{self.version()}{' ' + options if options else ''}"

    def check_quality(self, quality: float) -> None:
        if not 0 <= quality <= 100:
            raise ValueError(f"codec {self.name!r} takes qualities 0-100, got {quality:g}")

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError


def _installed(distribution: str) -> str:
    try:
        return package_version(distribution)
    except PackageNotFoundError:
        return "?"


class PillowCodec(Codec):
    """A format Pillow saves and opens itself (after importing `plugin`, when one is named)."""

    pil_format = ""
    feature: str | None = None  # Pillow feature that must be built in
    version_feature: str | None = None  # the one whose version to report, if not `feature`
    library = ""
    plugin: str | None = None  # module to import that registers the format with Pillow
    plugin_distribution = ""

    def unavailable(self) -> str | None:
        if self.plugin is not None:
            try:
                import_module(self.plugin)
            except ImportError:
                return f"{self.plugin_distribution} is not installed (pip install {self.plugin_distribution})"
        elif self.feature is not None and not features.check(self.feature):
            return f"this Pillow was built without {self.library}"
        Image.init()
        if self.pil_format not in Image.SAVE:
            return f"Pillow cannot save {self.pil_format}"
        return None

    def version(self) -> str:
        import PIL
        if self.plugin is not None:
            return f"Pillow {PIL.__version__} {self.pil_format}, {self.plugin_distribution} " \
                   f"{_installed(self.plugin_distribution)}"
        lib = features.version(self.version_feature or self.feature) if self.feature else None
        return f"Pillow {PIL.__version__} {self.pil_format} ({self.library} {lib or '?'})"

    def _register(self) -> None:
        if self.plugin is not None:
            import_module(self.plugin)  # registers the format with Pillow on first import

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        self._register()
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, format=self.pil_format, quality=round(quality),
                                            **self.config)
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        self._register()
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))


class JpegCodec(PillowCodec):
    name = "jpeg"
    default_qualities = (30, 50, 70, 85, 95)
    options = {}  # Pillow's defaults: 4:2:0, baseline, standard tables
    pil_format, feature, library = "JPEG", "jpg", "libjpeg-turbo"
    version_feature = "libjpeg_turbo"


class WebpCodec(PillowCodec):
    name = "webp"
    default_qualities = (30, 50, 70, 85, 95)
    options = {"method": 6}
    pil_format, feature, library = "WEBP", "webp", "libwebp"


class AvifCodec(PillowCodec):
    name = "avif"
    default_qualities = (30, 50, 65, 80, 90)
    options = {"speed": 4, "subsampling": "4:2:0"}
    pil_format, feature, library = "AVIF", "avif", "libavif"


class JxlCodec(PillowCodec):
    name = "jxl"
    default_qualities = (30, 50, 70, 85, 95)
    options = {"effort": 7}
    pil_format = "JXL"
    plugin, plugin_distribution = "pillow_jxl", "pillow-jxl-plugin"


class HeicCodec(Codec):
    """HEIC through pillow-heif's own API (no global Pillow registration); libheif + x265."""

    name = "heic"
    default_qualities = (5, 15, 25, 35, 45, 55)
    options = {}  # pillow-heif's defaults: x265, 4:2:0

    def unavailable(self) -> str | None:
        try:
            import pillow_heif
        except ImportError:
            return "pillow-heif is not installed (pip install pillow-heif)"
        if not pillow_heif.libheif_info().get("HEIF"):
            return "this libheif has no HEVC encoder"
        return None

    def version(self) -> str:
        import pillow_heif
        info = pillow_heif.libheif_info()
        return f"pillow-heif {pillow_heif.__version__} (libheif {info.get('libheif')}, {info.get('HEIF')})"

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        import pillow_heif
        buffer = io.BytesIO()
        pillow_heif.from_pillow(Image.fromarray(pixels, "RGB")).save(buffer, quality=round(quality),
                                                                     **self.config)
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_heif
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        return np.asarray(heif.to_pillow().convert("RGB"))


class NecoCodec(Codec):
    """neco itself, through the public API; the quality passes straight to `neco.encode`."""

    name = "neco"
    default_qualities = NECO_QUALITIES
    options = {"model": None, "device": "cpu"}  # model None: the default image model

    def _model(self) -> str:
        from neco.codec import registry
        return self.config["model"] or registry.DEFAULT_IMAGE_MODEL

    def unavailable(self) -> str | None:
        from neco.codec import registry
        if self._model() not in registry.available():
            return f"no model {self._model()!r} (installed: {', '.join(registry.available())})"
        return None

    def version(self) -> str:
        import neco
        from neco.codec import registry
        return f"neco {neco.__version__} {self._model()} (weights {registry.digest(self._model()).hex()[:16]})"

    def settings(self) -> dict[str, object]:
        return {"model": self._model(), "device": self.config["device"]}

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        import neco
        return neco.encode(pixels, quality=quality, model=self._model(), device=self.config["device"])

    def decode(self, data: bytes) -> np.ndarray:
        import neco
        return neco.decode_array(data, device=self.config["device"])


CODECS: dict[str, type[Codec]] = {c.name: c for c in (NecoCodec, JpegCodec, WebpCodec, AvifCodec, JxlCodec,
                                                      HeicCodec)}


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def make_codec(spec: str) -> Codec:
    """A codec from ``NAME`` or ``NAME:KEY=VALUE,...``; ValueError names what is wrong."""
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if name in CODECS:
        known = CODECS
    else:  # third-party codecs, from the `neco.codecs` entry point group
        from .registry import codecs
        known = codecs()
    if name not in known:
        raise ValueError(f"unknown codec {name!r} (known: {', '.join(known)})")
    overrides = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"codec option {item!r} is not KEY=VALUE")
        overrides[key.strip()] = _value(value.strip())
    return known[name](**overrides)
