"""The codecs `neco eval` compares, behind one small interface.

A codec turns an (H, W, 3) uint8 RGB array into bytes at a quality and back; the bench times
both calls and measures the rate from the byte count. Each codec also tells

- `unavailable()`: why it cannot run here (a library not installed), or None;
- `version()`: the library versions that produce its bytes;
- `settings()`: everything else that does (fixed encoder options, the neco model);

and the last two are part of the bench's cache key, so a new library or another setting is
measured afresh. A codec is named by a spec, ``NAME`` or ``NAME:KEY=VALUE,...`` (for example
``avif:speed=6`` or ``neco:model=image-hp-v1``); `make_codec` parses it. `find_quality` finds
the rate point that lands nearest a target bpp (``neco eval --bpp-grid``).

The classical codecs go through Pillow and its plugins with the settings of
``../shared/reference/kodak/*-measured.json``, so a run reproduces those curves: JPEG
(libjpeg-turbo, Pillow's defaults), WebP (method 6), AVIF (libavif, speed 4, 4:2:0), HEIC
(pillow-heif, libheif + x265) and JPEG XL (pillow-jxl-plugin, effort 7). Their default
quality grids are the ones of those files.

Video codecs (``kind = "video"``) take a whole clip, `Frames`, and give a `Bitstream` of
packets: x264, x265, SVT-AV1 and VP9, FFmpeg's encoders through PyAV (`PyAvCodec`), at a
constant-quality CRF (their rate point; lower is more bits), 4:2:0, one key frame every ``gop``
frames, decoded by FFmpeg's decoders (dav1d for AV1).

Other packages add codecs through the ``neco.codecs`` entry point group (`codecs`): an entry
point named by the codec, pointing to a subclass of `Codec`. A built-in name always wins over
a plugin of the same name.

    [project.entry-points."neco.codecs"]
    mycodec = "my_package.bench:MyCodec"
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from importlib import import_module, metadata
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path

import numpy as np
from PIL import Image, features

# Quality maps linearly onto the shipped model's 11 trained rate levels: every 10 is one of them.
# The grid takes each trained level, plus the midpoints (interpolated gains) from 15 to 65, the
# range RD comparisons focus on (docs/RECORD.md, "The CLI, the adapters and the bench").
NECO_QUALITIES = tuple(sorted({*range(0, 101, 10), *range(15, 70, 10)}))
# neco's video grid: five qualities a clip is coded at (each a whole-clip encode, ~0.3 fps at 640x360 on
# a 2-core CPU), spread to cover the PSNR range of x264's default CRF grid.
NECO_VIDEO_QUALITIES = (20, 35, 50, 65, 80)


class Codec:
    """One codec at fixed settings; subclasses implement `encode` and `decode`."""

    name: str = ""
    kind = "image"  # "image": encode takes an (H, W, 3) uint8 RGB array; "video": `Frames`
    default_qualities: tuple[float, ...] = ()
    options: dict[str, object] = {}  # settings a spec may change, with their defaults
    quality_name = "quality"  # what a rate point is: a quality, or a CRF for video codecs
    quality_range: tuple[float, float] = (0, 100)
    rate_rises_with_quality = True  # False where a higher value means fewer bits (CRF, QP)

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
        lo, hi = self.quality_range
        if not lo <= quality <= hi:
            raise ValueError(f"codec {self.name!r} takes {self.quality_name} {lo:g}-{hi:g}, got {quality:g}")

    def pixel_count(self, original) -> int:
        """Pixels per frame times frames: what a byte count is divided by for bits per pixel."""
        return original.shape[0] * original.shape[1]

    def find_quality(self, original, target_bpp: float) -> float:
        """The integer rate point whose encoding lands nearest `target_bpp` (in log-rate).

        Bisection over `quality_range` on real encoded sizes, assuming the rate moves one way
        with the rate point: about log2(range) + 2 encodes. A target beyond the range gives
        the nearest end.
        """
        lo, hi = (int(math.ceil(self.quality_range[0])), int(math.floor(self.quality_range[1])))
        # Position p = 0..n walks from the fewest bits to the most, whichever way the scale runs.
        n = hi - lo
        at = (lambda p: lo + p) if self.rate_rises_with_quality else (lambda p: hi - p)
        pixels = self.pixel_count(original)
        rates: dict[int, float] = {}

        def rate(p: int) -> float:
            if at(p) not in rates:
                rates[at(p)] = 8 * len(self.encode(original, at(p))) / pixels
            return rates[at(p)]

        low, high = 0, n
        if rate(low) < target_bpp < rate(high):
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if rate(mid) < target_bpp else (low, mid)
        return float(min(rates, key=lambda q: (abs(math.log(rates[q] / target_bpp)), q)))

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
    """neco itself, through the public API; the quality passes straight to `neco.encode`
    (``neco:effort=2`` measures an encoder effort level)."""

    name = "neco"
    default_qualities = NECO_QUALITIES
    options = {"model": None, "device": "cpu", "effort": 0}  # model None: the default image model

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
        return f"neco {neco.__version__} (code {neco_code_digest()}) {self._model()} " \
               f"(weights {registry.digest(self._model()).hex()[:16]})"

    def settings(self) -> dict[str, object]:
        return {"model": self._model(), "device": self.config["device"], "effort": self.config["effort"]}

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        import neco
        return neco.encode(pixels, quality=quality, model=self._model(), device=self.config["device"],
                           effort=self.config["effort"])

    def find_quality(self, original: np.ndarray, target_bpp: float) -> float:
        """neco's own rate search (``neco.encode(bpp=...)``: one analysis, many codings), read
        back as a quality from the FRAME's rate level (`neco.info`)."""
        import warnings

        import neco
        from neco.codec import registry
        from neco.codec.constants import RATE_FRAC_BITS
        with warnings.catch_warnings():  # an unreachable target: the row's bpp shows how far
            warnings.simplefilter("ignore")
            data = neco.encode(original, bpp=target_bpp, model=self._model(), device=self.config["device"],
                               effort=self.config["effort"])
        rate_level = next(chunk["rate_level"] for chunk in neco.info(data)["chunks"] if chunk["type"] == "FRAME")
        return 100 * rate_level * (1 << RATE_FRAC_BITS) / registry.get_decoder(self._model()).max_rate_fx

    def decode(self, data: bytes) -> np.ndarray:
        import neco
        return neco.decode_array(data, device=self.config["device"])


class NecoVideoCodec(NecoCodec):
    """neco on a clip (``neco eval VIDEO -c neco``): the whole clip coded by `neco.encode_frames`
    with the video profile (a key frame every ``gop`` frames, default the coder's, and P frames
    between; ``neco:model=image-hp-v1`` codes intra frames), decoded by `neco.open`. The rate is
    the `.neco` file's bytes: header, every chunk, INDEX and END (`NecoStream`)."""

    kind = "video"
    default_qualities = NECO_VIDEO_QUALITIES
    options = {"model": None, "device": "cpu", "effort": 0, "gop": None}  # gop None: the coder's default
    find_quality = Codec.find_quality  # bisection over whole-clip encodes (the video profile has no bpp search)

    def _model(self) -> str:
        from neco.codec import registry
        return self.config["model"] or registry.DEFAULT_VIDEO_MODEL

    def settings(self) -> dict[str, object]:
        from neco.codec.session import check_gop
        return {**super().settings(), "gop": check_gop(self.config["gop"])}

    def pixel_count(self, original: Frames) -> int:
        n, height, width = original.pixels.shape[:3]
        return n * height * width

    def encode(self, original: Frames, quality: float) -> NecoStream:
        import neco
        out = io.BytesIO()
        neco.encode_frames(original.pixels, out, quality, frame_rate=original.frame_rate, model=self._model(),
                           device=self.config["device"], effort=self.config["effort"], gop=self.config["gop"])
        return NecoStream.of(out.getvalue())

    def decode(self, data: NecoStream) -> DecodedVideo:
        import neco
        with neco.open(data.data, device=self.config["device"]) as reader:
            pixels = np.stack(list(reader))
        return DecodedVideo(pixels, tuple(range(len(pixels))), data.types)


def source_digest(folders: list[Path]) -> str:
    """The first 12 hex digits of a SHA-256 over the Python files under `folders` (their paths
    relative to their folder, and their bytes)."""
    h = hashlib.sha256()
    for folder in folders:
        for f in sorted(folder.rglob("*.py")):
            h.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


@functools.cache
def neco_code_digest() -> str:
    """source_digest of neco's codec and container code: part of NecoCodec.version(), so an
    edit to the encoder or decoder, which changes neither the package version nor the weights
    digest, misses the eval cache instead of returning the old code's rows."""
    import neco.codec
    import neco.formats
    return source_digest([Path(neco.codec.__file__).parent, Path(neco.formats.__file__).parent])


@dataclass(frozen=True)
class Frames:
    """A clip as the video codecs take it: (N, H, W, 3) uint8 RGB frames and their rate."""

    pixels: np.ndarray
    frame_rate: Fraction


@dataclass(frozen=True)
class Bitstream:
    """A video encoder's output: packets (pts = frame number, dts, payload) and any headers
    sent out of band (extradata). Its length is every byte, as a raw stream file holds them."""

    packets: tuple[tuple[int, int | None, bytes], ...]
    extradata: bytes = b""

    def __len__(self) -> int:
        return len(self.extradata) + sum(len(payload) for *_, payload in self.packets)

    def frame_bits(self) -> dict[int, int]:
        """Bits of the packet of each frame, by frame number (extradata apart)."""
        return {pts: 8 * len(payload) for pts, _dts, payload in self.packets}


@dataclass(frozen=True)
class NecoStream(Bitstream):
    """A `.neco` clip as the bench sees a video stream: its FRAME payloads as the packets (bits
    per frame) and its picture types (I, P), but the length of the whole file (`data`)."""

    data: bytes = b""
    types: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.data)

    @classmethod
    def of(cls, data: bytes) -> "NecoStream":
        import neco
        from neco.formats import read_container
        frames = [chunk for chunk in neco.info(data)["chunks"] if chunk["type"] == "FRAME"]
        return cls(tuple((i, i, p) for i, p in enumerate(read_container(data).frames)), data=data,
                   types=tuple(chunk.get("frame_type", "I") for chunk in frames))


@dataclass(frozen=True)
class DecodedVideo:
    """Decoded frames in display order, their frame numbers and picture types (I, P, B, ...)."""

    pixels: np.ndarray
    pts: tuple[int, ...]
    types: tuple[str, ...]


VIDEO_PIX_FMT = "yuv420p"


def _picture_type(value: object) -> str:
    """PyAV gives a PictureType, its int value or a letter depending on the version."""
    if isinstance(value, str):
        return value
    from av.video.frame import PictureType
    return PictureType(int(value)).name


class PyAvCodec(Codec):
    """An FFmpeg video encoder through PyAV at a constant-quality CRF, decoded by FFmpeg.

    Frames go in as RGB, are converted to 4:2:0 by swscale (BT.601, limited range: FFmpeg's
    default, also used on the way back) and carry pts = frame number, so each packet and each
    decoded frame is matched to its source frame. Encode and decode times include these
    conversions. Frame-level threads are fixed by the ``threads`` option, as encoders' choices
    (and sizes) can depend on them.
    """

    kind = "video"
    quality_name = "crf"
    rate_rises_with_quality = False
    encoder = ""
    decoders: tuple[str, ...] = ()  # the first one this FFmpeg has decodes

    def unavailable(self) -> str | None:
        try:
            import av  # noqa: F401
        except ImportError:
            return "PyAV is not installed (pip install 'neco[video]')"
        if not _av_has(self.encoder, "w"):
            return f"this PyAV's FFmpeg has no {self.encoder} encoder"
        if self._decoder() is None:
            return f"this PyAV's FFmpeg has no decoder for it ({', '.join(self.decoders)})"
        return None

    def _decoder(self) -> str | None:
        return next((name for name in self.decoders if _av_has(name, "r")), None)

    def version(self) -> str:
        import av
        lavc = ".".join(map(str, av.library_versions["libavcodec"]))
        return f"PyAV {av.__version__} {self.encoder} (libavcodec {lavc}), decoder {self._decoder()}"

    def pixel_count(self, original: Frames) -> int:
        n, height, width = original.pixels.shape[:3]
        return n * height * width

    def encoder_options(self, quality: float) -> dict[str, object]:
        """The encoder's private options (FFmpeg names) at a CRF."""
        raise NotImplementedError

    def encode(self, original: Frames, quality: float) -> Bitstream:
        import av
        height, width = original.pixels.shape[1:3]
        context = av.CodecContext.create(self.encoder, "w")
        context.width, context.height, context.pix_fmt = width, height, VIDEO_PIX_FMT
        context.framerate = original.frame_rate
        context.time_base = 1 / original.frame_rate
        context.gop_size = int(self.config["gop"])
        context.thread_count = int(self.config["threads"])
        context.bit_rate = 0  # constant quality: no bitrate target
        context.options = {key: str(value) for key, value in self.encoder_options(quality).items()}
        packets = []
        for index, rgb in enumerate(original.pixels):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format=VIDEO_PIX_FMT)
            frame.pts = index
            packets += context.encode(frame)
        packets += context.encode(None)
        return Bitstream(tuple((p.pts, p.dts, bytes(p)) for p in packets), bytes(context.extradata or b""))

    def decode(self, data: Bitstream) -> DecodedVideo:
        import av
        context = av.CodecContext.create(self._decoder(), "r")
        context.thread_count = int(self.config["threads"])
        if data.extradata:
            context.extradata = data.extradata
        frames = []
        for pts, dts, payload in data.packets:
            packet = av.Packet(payload)
            packet.pts, packet.dts = pts, dts
            frames += context.decode(packet)
        frames += context.decode(None)
        frames.sort(key=lambda f: f.pts)
        pixels = np.stack([f.to_ndarray(format="rgb24") for f in frames]) if frames else np.empty((0, 0, 0, 3))
        types = tuple(_picture_type(f.pict_type) for f in frames)
        return DecodedVideo(pixels, tuple(f.pts for f in frames), types)


def _av_has(name: str, mode: str) -> bool:
    import av
    try:
        av.codec.Codec(name, mode)
    except ValueError:  # PyAV's UnknownCodecError
        return False
    return True


class X264Codec(PyAvCodec):
    name = "x264"
    default_qualities = (20, 24, 28, 32, 36)
    quality_range = (0, 51)
    options = {"preset": "medium", "gop": 32, "threads": 2}
    encoder, decoders = "libx264", ("h264",)

    def encoder_options(self, quality: float) -> dict[str, object]:
        return {"crf": quality, "preset": self.config["preset"]}


class X265Codec(PyAvCodec):
    name = "x265"
    default_qualities = (20, 24, 28, 32, 36)
    quality_range = (0, 51)
    options = {"preset": "fast", "gop": 32, "threads": 2}
    encoder, decoders = "libx265", ("hevc",)

    def encoder_options(self, quality: float) -> dict[str, object]:
        return {"crf": quality, "preset": self.config["preset"], "x265-params": "log-level=error"}


class SvtAv1Codec(PyAvCodec):
    name = "svtav1"
    default_qualities = (25, 33, 41, 49, 57)
    quality_range = (1, 63)
    options = {"preset": 8, "gop": 32, "threads": 2}
    encoder, decoders = "libsvtav1", ("libdav1d", "av1")

    def encoder_options(self, quality: float) -> dict[str, object]:
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 logs to stderr; 1: errors only
        return {"crf": quality, "preset": self.config["preset"]}


class Vp9Codec(PyAvCodec):
    name = "vp9"
    default_qualities = (24, 32, 40, 48, 56)
    quality_range = (0, 63)
    options = {"deadline": "good", "cpu-used": 4, "gop": 32, "threads": 2}
    encoder, decoders = "libvpx-vp9", ("vp9", "libvpx-vp9")

    def encoder_options(self, quality: float) -> dict[str, object]:
        return {"crf": quality, "deadline": self.config["deadline"], "cpu-used": self.config["cpu-used"],
                "row-mt": 1}


CODECS: dict[str, type[Codec]] = {c.name: c for c in (NecoCodec, JpegCodec, WebpCodec, AvifCodec, JxlCodec,
                                                      HeicCodec, X264Codec, X265Codec, SvtAv1Codec, Vp9Codec)}
# Names whose codec on a clip is another class than on images.
VIDEO_VARIANTS: dict[str, type[Codec]] = {"neco": NecoVideoCodec}
CODECS_GROUP = "neco.codecs"


def plugin_codecs() -> dict[str, metadata.EntryPoint]:
    """Entry points of the ``neco.codecs`` group, by name (built-in names excluded)."""
    return {ep.name: ep for ep in metadata.entry_points(group=CODECS_GROUP) if ep.name not in CODECS}


def codecs() -> dict[str, type]:
    """Every codec class by name: the built-in baselines, then loaded plugins.

    Raises ValueError naming a plugin whose entry point does not give a `Codec`.
    """
    found = dict(CODECS)
    for name, entry in plugin_codecs().items():
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Codec)):
            raise ValueError(f"codec plugin {name!r} ({entry.value}) is not a neco eval Codec class")
        found[name] = cls
    return found


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def make_codec(spec: str, kind: str = "image") -> Codec:
    """A codec from ``NAME`` or ``NAME:KEY=VALUE,...``; ValueError names what is wrong.

    kind ``"video"`` (a clip to code) picks the video variant of a name that has one (`VIDEO_VARIANTS`:
    neco's video profile for ``neco``)."""
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if kind == "video" and name in VIDEO_VARIANTS:
        known = VIDEO_VARIANTS
    elif name in CODECS:
        known = CODECS
    else:  # third-party codecs, from the `neco.codecs` entry point group
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
