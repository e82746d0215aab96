"""Running the bench: find the images, measure each (codec, rate point, image), in parallel or not.

One measurement encodes an image at one quality, decodes the bytes and compares the result
with the original (`metrics.measure`); the rate is ``8 * len(bytes) / pixels``, so every
header and container byte counts. Images are compared as 8-bit RGB: Pillow's
``convert("RGB")`` of whatever the file holds (alpha dropped, greyscale replicated). With a
target bpp as the rate point (``--bpp-grid``), the codec first finds the quality that lands
nearest it (`Codec.find_quality`, untimed); the measurement is then that of this quality.

A source is anything with ``name``, ``sha256`` (its content key), ``load()`` (what the codec
encodes) and ``measure(original, data, decoded, metrics)`` (the row's rate and quality columns,
`metrics` the perceptual ones asked for): an `ImageFile` here, a `video.VideoClip` for
video codecs.

Perceptual metrics (`bench.perceptual`) are measured only when a task asks for them. A row
records the version of each it holds (``metric-versions``), and a cached row is used only when
it holds every metric the task asks for at the current version: otherwise the task runs again
(encode included; decoded pixels are not kept), and the metrics of the old row that the new
one lacks are carried over when both are the same encoding (same byte count and PSNR), so
runs asking for different metrics do not undo each other. Rows yielded hold exactly the
perceptual metrics asked for.

`run` yields measurements as they finish, from the cache first, then from the codecs:
in this process for one job, else in a pool of worker processes (spawned, not forked, so a
loaded model or thread pool is never copied mid-state; each worker ignores Ctrl-C, which the
parent handles by cancelling what has not started and keeping what finishes).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from neco.plugins.bench.cache import ResultCache, cache_key
from neco.plugins.bench.codecs import Codec, make_codec
from neco.plugins.bench.metrics import measure
from neco.plugins.bench.perceptual import measure_image
from neco.plugins.bench.perceptual import version as metric_version

# Images held decoded in each process, so a codec sweeping qualities does not re-read them.
PIXEL_CACHE_IMAGES = 32


@dataclass(frozen=True)
class ImageFile:
    path: Path
    name: str  # relative to the data set folder
    sha256: str
    width: int
    height: int

    def load(self) -> np.ndarray:
        return load_pixels(self.path, self.sha256)

    def measure(self, original: np.ndarray, data: bytes, decoded: np.ndarray,
                metrics: tuple[str, ...] = ()) -> dict:
        """The row's rate and quality columns; `metrics`: the perceptual metrics to add."""
        if decoded.shape != original.shape or decoded.dtype != np.uint8:
            raise ValueError(f"decoded to {decoded.shape} {decoded.dtype}, expected {original.shape} uint8")
        height, width = original.shape[:2]
        return {"width": width, "height": height, "bytes": len(data), "bpp": 8 * len(data) / (width * height),
                **measure(original, decoded), **measure_image(original, decoded, metrics)}


@dataclass(frozen=True)
class Task:
    spec: str  # codec spec, rebuilt in worker processes
    codec_label: str
    key: str
    source: ImageFile  # or an video.VideoClip
    point: float  # a quality (or CRF), or a target bpp when by_bpp
    by_bpp: bool = False
    point_name: str = "q"
    metrics: tuple[str, ...] = ()  # perceptual metrics (`perceptual.PERCEPTUAL`) to measure
    kind: str = "image"  # the codec's kind: "video" rebuilds a name's video variant (`make_codec`)

    @property
    def label(self) -> str:
        """``q=50``, ``crf=28`` or ``bpp=0.25``, for progress lines."""
        return f"{self.point_name}={self.point:g}"


def find_images(dataset: Path, limit: int | None = None) -> tuple[list[ImageFile], list[tuple[str, str]]]:
    """The images of a folder (not recursive, sorted by name) or a single image file.

    Returns the images and, for every file Pillow cannot fully decode, (name, reason): a
    corrupt or truncated image is reported and skipped, never fatal. Files whose extension
    is not an image format Pillow knows are ignored, as are hidden files.
    """
    Image.init()
    extensions = Image.registered_extensions()
    if dataset.is_file():
        candidates = [dataset]
        root = dataset.parent
    else:
        candidates = sorted(p for p in dataset.iterdir()
                            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions)
        root = dataset
    images, skipped = [], []
    for path in candidates:
        if limit is not None and len(images) >= limit:
            break
        name = path.relative_to(root).as_posix()
        try:
            data = path.read_bytes()
            with Image.open(path) as image:
                image.load()
                width, height = image.size
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            skipped.append((name, " ".join(str(exc).split()) or type(exc).__name__))
            continue
        images.append(ImageFile(path, name, hashlib.sha256(data).hexdigest(), width, height))
    return images, skipped


@lru_cache(maxsize=PIXEL_CACHE_IMAGES)
def load_pixels(path: Path, sha256: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image (cached by path and content hash)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    pixels.setflags(write=False)
    return pixels


@lru_cache(maxsize=None)
def _codec(spec: str, kind: str = "image") -> Codec:
    return make_codec(spec, kind)


def measure_one(codec: Codec, source: ImageFile, point: float, by_bpp: bool = False,
                metrics: tuple[str, ...] = ()) -> dict:
    """Encode, decode and measure one source at one rate point: one row of the per-image CSV.

    by_bpp: `point` is a target bpp; the row has the quality found (``quality``) and the
    target (``target_bpp``). The times are those of the one encode and decode measured.
    metrics: perceptual metrics to measure too; the row records their versions.
    """
    original = source.load()
    quality = codec.find_quality(original, point) if by_bpp else point
    start = time.perf_counter()
    data = codec.encode(original, quality)
    encoded = time.perf_counter()
    decoded = codec.decode(data)
    done = time.perf_counter()
    row = {"image": source.name, "quality": quality, **({"target_bpp": point} if by_bpp else {})}
    row = {**row, **source.measure(original, data, decoded, metrics), "encoding_time": encoded - start,
           "decoding_time": done - encoded}
    if metrics:
        row["metric-versions"] = {name: metric_version(name) for name in metrics}
    return row


def has_metrics(row: dict, metrics: tuple[str, ...]) -> bool:
    """Whether a (cached) row holds every perceptual metric of `metrics` at its current version."""
    versions = row.get("metric-versions", {})
    return all(versions.get(name) == metric_version(name) for name in metrics)


def select_metrics(row: dict, metrics: tuple[str, ...]) -> dict:
    """The row with only the perceptual metrics of `metrics` (a cached row may hold more)."""
    held = row.get("metric-versions", {})
    drop = set(held) - set(metrics)
    if not drop:
        return row
    row = {k: v for k, v in row.items() if k not in drop}
    row["metric-versions"] = {k: v for k, v in held.items() if k in metrics}
    if not row["metric-versions"]:
        del row["metric-versions"]
    if "per_frame" in row:
        row["per_frame"] = {k: v for k, v in row["per_frame"].items() if k not in drop}
    return row


def carry_metrics(old: dict, new: dict) -> dict:
    """`new` plus the perceptual metrics only `old` holds, when both are the same encoding."""
    held = old.get("metric-versions", {})
    versions = new.get("metric-versions", {})
    extra = [name for name in held if name not in versions]
    if not extra or old.get("bytes") != new.get("bytes") or old.get("psnr-rgb") != new.get("psnr-rgb"):
        return new
    merged = {**new, **{name: old.get(name) for name in extra},
              "metric-versions": {**versions, **{name: held[name] for name in extra}}}
    if "per_frame" in new and "per_frame" in old:
        merged["per_frame"] = {**new["per_frame"],
                               **{name: old["per_frame"][name] for name in extra if name in old["per_frame"]}}
    return merged


def _work(spec: str, source: ImageFile, point: float, by_bpp: bool = False, metrics: tuple[str, ...] = (),
          kind: str = "image") -> dict:
    """One task, in whichever process runs it; a codec failure becomes an ``error`` row."""
    try:
        return measure_one(_codec(spec, kind), source, point, by_bpp, metrics)
    except Exception as exc:  # noqa: BLE001 - one codec failing on one image must not end the run
        return {"image": source.name, ("target_bpp" if by_bpp else "quality"): point,
                "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}


def _init_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:  # pragma: no cover - spawned workers have not imported it yet
        sys.modules["torch"].set_num_threads(threads)


def make_tasks(codecs: dict[str, tuple[Codec, list[float]]], sources: list[ImageFile],
               by_bpp: bool = False, metrics: tuple[str, ...] = ()) -> list[Task]:
    """Tasks in codec, rate point, source order, so a codec's results complete one after another.

    by_bpp: the rate points are target bpps (`Codec.find_quality` finds each source's quality).
    metrics: perceptual metrics to measure as well (available ones: the caller checks).
    """
    tasks = []
    for label, (codec, points) in codecs.items():
        version, settings = codec.version(), codec.settings()
        spec = codec.name + ":" + ",".join(f"{k}={v}" for k, v in codec.overrides.items())
        point_name = "bpp" if by_bpp else "q" if codec.quality_name == "quality" else codec.quality_name
        for point in points:
            for source in sources:
                key = cache_key(codec.name, version, settings, point, source.sha256, by_bpp)
                tasks.append(Task(spec, label, key, source, point, by_bpp, point_name, tuple(metrics), codec.kind))
    return tasks


def run(tasks: list[Task], cache: ResultCache, jobs: int = 1,
        on_interrupt: Callable[[int], None] | None = None) -> Iterator[tuple[Task, dict, bool]]:
    """Yield (task, row, cached) for every task; new rows (not errors) go into the cache.

    On Ctrl-C with worker processes, `on_interrupt` hears how many measurements are still
    running: they are waited for and cached before the KeyboardInterrupt goes on.
    """
    pending = []
    for task in tasks:
        row = cache.get(task.key)
        if row is None or not has_metrics(row, task.metrics):
            pending.append(task)
        else:
            yield task, select_metrics(row, task.metrics), True
    if jobs <= 1:
        for task in pending:
            row = _work(task.spec, task.source, task.point, task.by_bpp, task.metrics, task.kind)
            _store(cache, task, row)
            yield task, row, False
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                               initargs=(threads,))
    futures = {}
    try:
        futures = {pool.submit(_work, t.spec, t.source, t.point, t.by_bpp, t.metrics, t.kind): t for t in pending}
        order = {future: i for i, future in enumerate(futures)}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=order.__getitem__):
                row = future.result()
                _store(cache, futures[future], row)
                yield futures[future], row, False
    except BaseException:
        # Ctrl-C (or the consumer stopping): start nothing new, keep what the workers finish.
        running = sum(f.running() for f in futures)
        if on_interrupt is not None and running:
            on_interrupt(running)
        pool.shutdown(wait=True, cancel_futures=True)
        for future, task in futures.items():
            if future.done() and not future.cancelled() and future.exception() is None:
                _store(cache, task, future.result())
        raise
    finally:
        pool.shutdown(wait=True)


def _store(cache: ResultCache, task: Task, row: dict) -> None:
    if "error" not in row:
        old = cache.get(task.key)
        cache.put(task.key, row if old is None else carry_metrics(old, row))
