"""Video sources of `neco eval`: a clip cut from a video file, measured frame by frame.

    neco eval ../shared/data/video/vtest.avi -c x264 -c x265 -c svtav1 -c vp9 -o results/video

A video file as DATASET switches the bench to video mode: the first ``frames`` frames (default
96), scaled to ``size`` (default 640x360) by FFmpeg's swscale (bilinear), as 8-bit RGB -- the
source every codec is measured against. The video codecs of `bench.codecs` (`PyAvCodec`) code
the whole clip at one CRF; the rate is that of the elementary stream, every packet plus any
out-of-band headers (what a raw .264 / .hevc file holds; no container):

- ``bpp``: bits / (width * height * frames), bits per pixel of one frame;
- ``kbps``: bits / (frames / frame rate) / 1000, at the source's frame rate;
- ``psnr-rgb``, ``psnr-y``, ``ms-ssim-rgb``: means over frames of the per-frame values of
  `bench.metrics` (so RGB <-> 4:2:0 conversion losses count, as for every codec alike);
- bits per frame, overall and per picture type as the decoder reports it (I, P, B; FFmpeg
  reports AV1 and VP9 inter frames as P), and the number of frames of each type;
- per frame: picture type, bits of its packet, PSNR-RGB, PSNR-Y and MS-SSIM;
- with ``--metric``, the perceptual metrics of `bench.perceptual` (VMAF, SSIMULACRA2, FLIP): per
  frame and their mean over frames (VMAF's usual pooling), on the same RGB frames.

Timings are for the whole clip (encode: RGB to 4:2:0 and encoding; decode: decoding and back
to RGB).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from neco.plugins.bench.codecs import Bitstream, DecodedVideo, Frames
from neco.plugins.bench.metrics import measure
from neco.plugins.bench.perceptual import measure_frames

DEFAULT_FRAMES = 96
DEFAULT_SIZE = (640, 360)
# Files that put `neco eval` in video mode (FFmpeg reads them; Pillow claims .mpg for stills).
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".y4m", ".mpg", ".mpeg",
                              ".ts", ".m2ts", ".mts", ".nut", ".flv", ".ogv", ".wmv", ".3gp", ".264",
                              ".h264", ".265", ".hevc", ".ivf", ".obu"})
FRAME_METRICS = ("psnr-rgb", "psnr-y", "ms-ssim-rgb")
FRAME_CSV_COLUMNS = ("video", "quality", "target_bpp", "frame", "type", "bits", *FRAME_METRICS)


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoClip:
    """The frames of a video file that the bench measures; a source for `bench.run`."""

    path: Path
    name: str
    file_sha256: str
    frames: int
    width: int
    height: int
    frame_rate: Fraction

    @property
    def sha256(self) -> str:
        """The content key of the cache: the file's bytes, how many frames and at what size."""
        what = f"{self.file_sha256}/frames={self.frames}/size={self.width}x{self.height}/swscale-bilinear"
        return hashlib.sha256(what.encode()).hexdigest()

    def load(self) -> Frames:
        return load_frames(self.path, self.file_sha256, self.frames, self.width, self.height)

    def measure(self, original: Frames, data: Bitstream, decoded: DecodedVideo,
                metrics: tuple[str, ...] = ()) -> dict:
        """The row of one coded clip: rates, mean metrics, bits per type and per-frame values.

        metrics: perceptual metrics to add, per frame and as means over frames.
        """
        n = self.frames
        if decoded.pts != tuple(range(n)) or decoded.pixels.shape != original.pixels.shape:
            raise ValueError(f"decoded {len(decoded.pts)} frames of shape {decoded.pixels.shape[1:]}, "
                             f"expected {n} of {original.pixels.shape[1:]}")
        per_frame = [measure(a, b) for a, b in zip(original.pixels, decoded.pixels)]
        perceptual = measure_frames(original.pixels, decoded.pixels, metrics)
        packet_bits = data.frame_bits()
        bits = [packet_bits.get(i, 0) for i in range(n)]
        total = 8 * len(data)
        row = {"width": self.width, "height": self.height, "frames": n, "frame_rate": float(self.frame_rate),
               "bytes": len(data), "bpp": total / (n * self.width * self.height),
               "kbps": float(total * self.frame_rate / n / 1000), "bits-per-frame": total / n}
        for metric in FRAME_METRICS:
            values = [f[metric] for f in per_frame]
            row[metric] = None if None in values else float(np.mean(values))
        for metric, values in perceptual.items():
            row[metric] = None if None in values else float(np.mean(values))
        row.update(type_stats(decoded.types, bits))
        row["per_frame"] = {"type": list(decoded.types), "bits": bits,
                            **{m: [f[m] for f in per_frame] for m in FRAME_METRICS}, **perceptual}
        return row


def type_stats(types: tuple[str, ...] | list[str], bits: list[int]) -> dict[str, float]:
    """``frames-T`` (count) and ``bits-per-frame-T`` (mean packet bits) per picture type T."""
    stats = {}
    for kind in sorted(set(types)):
        sizes = [b for t, b in zip(types, bits) if t == kind]
        stats[f"frames-{kind}"] = len(sizes)
        stats[f"bits-per-frame-{kind}"] = sum(sizes) / len(sizes)
    return stats


def find_video(path: Path, frames: int = DEFAULT_FRAMES, size: tuple[int, int] | None = DEFAULT_SIZE,
               ) -> VideoClip:
    """The clip of the first `frames` frames of `path` at `size` (None: the source's size).

    Fewer frames when the file has fewer. Raises NecoError subclasses for a file FFmpeg cannot
    open or decode (`av_io`), ValueError for an empty one.
    """
    from neco.plugins.adapters.av_io import DEFAULT_RATE, AvReader
    file_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    probe = AvReader(str(path), (0, 0), size)
    probe.close()
    width, height, rate = probe.width, probe.height, probe.frame_rate or DEFAULT_RATE
    count = len(load_frames(path, file_sha256, frames, width, height).pixels)
    if count == 0:
        raise ValueError(f"{path.name}: no video frames")
    return VideoClip(path, path.name, file_sha256, count, width, height, Fraction(rate))


@lru_cache(maxsize=2)
def load_frames(path: Path, file_sha256: str, frames: int, width: int, height: int) -> Frames:
    """Up to `frames` RGB frames of `path` at width x height (cached by content and cut)."""
    from neco.plugins.adapters.av_io import DEFAULT_RATE, AvReader
    reader = AvReader(str(path), (0, frames), (width, height))
    rate = reader.frame_rate or DEFAULT_RATE
    pixels = np.stack(list(reader)) if frames else np.empty((0, height, width, 3), np.uint8)
    pixels.setflags(write=False)
    return Frames(pixels, Fraction(rate))


def result_extras(rows: list[dict], points: list[float], by_bpp: bool) -> tuple[tuple[str, ...], list[dict]]:
    """For a codec's JSON: the row values to average (`report.summarize`'s mean_keys) and
    its per-frame section, one entry per rate point, in the order of `points`."""
    types = sorted({key for row in rows for key in row if key.startswith("frames-")})
    mean_keys = ("kbps", "bits-per-frame", *(f"bits-per-frame-{t[7:]}" for t in types), *types)
    point_key = "target_bpp" if by_bpp else "quality"
    by_point = {row[point_key]: row for row in rows}
    per_frame = []
    for point in points:
        row = by_point.get(point)
        if row is None:
            continue
        entry = {"quality": row["quality"], **({"target_bpp": point} if by_bpp else {})}
        per_frame.append({**entry, **{k: _finite_list(v) for k, v in row["per_frame"].items()}})
    return mean_keys, per_frame


def _finite_list(values: list) -> list:
    return [None if isinstance(v, float) and not np.isfinite(v) else v for v in values]


def frame_rows(rows: list[dict], metrics: tuple[str, ...] = ()) -> list[dict]:
    """One row per frame of every rate point, for ``<codec>-frames.csv``; `metrics`: perceptual ones too."""
    out = []
    for row in rows:
        frames = row["per_frame"]
        for i, kind in enumerate(frames["type"]):
            out.append({"video": row["image"], "quality": row["quality"], "target_bpp": row.get("target_bpp"),
                        "frame": i, "type": kind, "bits": frames["bits"][i],
                        **{m: frames[m][i] for m in (*FRAME_METRICS, *metrics)}})
    return out
