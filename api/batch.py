"""Batch transcoding: a folder (recursively) or a list of files into `.neco` files, or back.

    import neco.batch
    summary = neco.batch.transcode("photos/", "coded/", quality=50)             # a local process pool
    summary = neco.batch.transcode("coded/", "decoded/", decode=True)           # .neco -> PNG / Y4M
    summary = neco.batch.transcode("photos/", "coded/", engine="ray")           # Ray actors (neco[ray])
    summary = neco.batch.transcode(files, "coded/", engine="ray", address="auto", gpus_per_worker=1)

Inputs are what ``neco encode`` reads: images Pillow opens (an animated GIF / PNG / WebP or a
multi-page TIFF is a clip of its frames), Y4M clips, and video files through PyAV. Each output
mirrors its source's relative path in DST with the suffix replaced: ``a/b.png`` -> ``a/b.neco``
(``a/b.png.neco`` when ``a/b.jpg`` is there too); decoding writes stills as PNG (or
`image_format`) and clips as Y4M (or `video_format`: mp4, mkv, ... through PyAV). A folder is
walked in sorted order; hidden files and folders, and DST when it lies inside SRC, are left
out; decoding a folder takes its ``*.neco`` files.

Engines (the choice never changes a byte of the outputs, nor of the index below):

- ``engine="local"`` (default, nothing extra installed): `workers` processes
  (`concurrent.futures.ProcessPoolExecutor`, spawned; default: one per core), each loading the
  model once, with one torch thread each when there are several; ``workers=1`` runs in this
  process.
- ``engine="ray"`` (``pip install 'neco[ray]'``): a pool of actors that load the model once each,
  on a local Ray instance started for the batch or on an existing cluster (`address`, e.g.
  ``"auto"`` or ``"ray://head:10001"``; every node needs neco installed). Inputs travel to the
  actors and outputs back through Ray's object store, so the nodes need no shared file system.
  `gpus_per_worker` > 0 makes GPU actors (device ``cuda`` unless `device` says otherwise; files
  coded on a GPU decode anywhere, but may differ bitwise from those coded on a CPU).

Only this process writes: each output atomically (`neco.plugins.atomic`), then its record.

Two files in DST, decided so that the engine and the worker count cannot be told apart:

- ``neco-batch.jsonl``, the journal: one JSON line per file converted or failed, appended (one
  write each, synced) once its output is in place: ``source``, ``output`` (relative to DST),
  ``status`` (``done`` / ``failed``), ``error`` (one line), ``sha256``, ``bytes_in``,
  ``bytes_out``, ``kind``, ``width``, ``height``, ``frames``, ``bpp``, ``warnings``,
  ``options``, and under ``run`` what depends on the run: ``seconds`` (the conversion's),
  ``engine``, ``worker``, ``host``, ``device``, ``finished`` (UTC). A re-run reads it: a file
  whose last record is ``done`` with the same options, and whose output still has the recorded
  SHA-256, is skipped; anything else (failed, missing, changed, interrupted) is converted again.
  A torn last line (a crash while writing it) is ignored.
- ``neco-batch.json``, the index, rewritten atomically at the end of every run (an interrupted
  one too): the options and every file's latest record without its ``run`` part, sorted by
  source, and totals. Two runs over the same inputs with the same options give the same bytes,
  whatever the engine, the worker count, the order of completion or the interruptions between.

A bad input (corrupt, not an image, unreadable) is a ``failed`` record with its one-line error;
the batch goes on. Ctrl-C (KeyboardInterrupt) stops it: workers are terminated, no output is
half written, the journal holds a record for exactly the outputs in place; the exception
propagates after the index is written. Re-run to finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
import contextlib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from fractions import Fraction
import hashlib
import io
import json
import multiprocessing
import os
from pathlib import Path
import re
import signal
import socket
import tempfile
import threading
import time
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

import neco
from neco.codec import registry
from neco.formats import UnsupportedError
from neco.plugins.adapters import av_io, y4m
from neco.plugins.atomic import atomic_file, write_atomic

__all__ = ["transcode", "Summary", "JOURNAL", "INDEX", "ENGINES"]

JOURNAL = "neco-batch.jsonl"
INDEX = "neco-batch.json"
ENGINES = ("local", "ray")
_TEMPORARY = re.compile(r"^\.(.+)\.[0-9a-f]{8}\.tmp$")  # neco.plugins.atomic's temporary names


@dataclass(frozen=True)
class Options:
    """What decides the outputs' bytes (recorded with every file; a change redoes the file)."""
    decode: bool = False
    quality: float | None = None
    bpp: float | None = None
    effort: int = 0
    model: str | None = None
    image_format: str = "png"
    video_format: str = "y4m"


@dataclass(frozen=True)
class Job:
    source: str               # relative to the batch's root, with "/"
    path: str                 # where to read it
    output: str               # relative to DST; decoding: without its extension (known once decoded)
    data: bytes | None = None  # the input's bytes, when they travel (Ray)


@dataclass
class Outcome:
    """What a worker returns for one file: the output's bytes and facts, or an error."""
    data: bytes | None = None
    extension: str = ""
    facts: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    worker: str = ""


@dataclass
class Summary:
    """One run of `transcode`: counts of this run, and where the manifest is.

    files: files in the batch; converted / failed: in this run; skipped: done by an earlier run.
    bytes_in / bytes_out / mean_bpp (the mean of the files' bpp): over this run's converted
    files; files_per_second: (converted + failed) / seconds.
    """
    files: int
    converted: int
    skipped: int
    failed: int
    bytes_in: int
    bytes_out: int
    mean_bpp: float | None
    seconds: float
    journal: Path
    index: Path
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, error) of this run

    @property
    def files_per_second(self) -> float:
        return (self.converted + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        bpp = f", mean {self.mean_bpp:.3f} bpp" if self.mean_bpp is not None else ""
        return (f"{self.files} file(s): {self.converted} converted, {self.skipped} skipped, {self.failed} failed; "
                f"{self.bytes_in:,} bytes in, {self.bytes_out:,} out{bpp}; {self.seconds:.1f} s, "
                f"{self.files_per_second:.2f} files/s")


Progress = Callable[[int, int, dict], None]


def transcode(sources, destination, *, decode: bool = False, quality: float | None = None,
              bpp: float | None = None, effort: int = 0, model: str | None = None, device: str | None = None,
              image_format: str = "png", video_format: str = "y4m", workers: int | None = None,
              engine: str = "local", address: str | None = None, gpus_per_worker: float = 0,
              progress: Progress | None = None) -> Summary:
    """Convert `sources` (a folder, a file, or a list of them) into `destination` (a folder,
    created when missing); see the module's doc. Returns a `Summary`.

    progress: called after each file is recorded as ``progress(done, total, record)``, `done`
    counting the files skipped as already done.
    """
    if engine not in ENGINES:
        raise neco.InvalidArgumentError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if quality is not None and bpp is not None:
        raise neco.InvalidArgumentError("quality and bpp are mutually exclusive")
    if workers is not None and workers < 1:
        raise neco.InvalidArgumentError(f"workers must be at least 1, not {workers}")
    options = Options(decode, None if quality is None else float(quality), None if bpp is None else float(bpp), effort,
                      None if decode else model or registry.DEFAULT_IMAGE_MODEL,
                      _image_format(image_format), _video_format(video_format))
    device = device or ("cuda" if gpus_per_worker else "cpu")
    destination = Path(destination)
    jobs = _plan(sources, destination, options)
    destination.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(destination, jobs)
    journal = _Journal(destination / JOURNAL)
    latest = journal.latest()
    pending = [job for job in jobs if not _finished(latest.get(job.source), options, destination)]
    start = time.perf_counter()
    summary = Summary(len(jobs), 0, len(jobs) - len(pending), 0, 0, 0, None, 0.0, journal.path,
                      destination / INDEX)
    bpps, runner = [], None
    try:
        if pending:
            runner = _runner(engine, options, device, workers, len(pending), address, gpus_per_worker)
        for job, outcome in runner.results(pending) if runner else ():
            with _holding_interrupts():  # an output in place has its record
                record = _record(job, outcome, options, destination, engine, device)
                journal.append(record)
            latest[job.source] = record
            if record["status"] == "done":
                summary.converted += 1
                summary.bytes_in += record["bytes_in"]
                summary.bytes_out += record["bytes_out"]
                bpps.append(record["bpp"])
            else:
                summary.failed += 1
                summary.failures.append((job.source, record["error"]))
            if progress is not None:
                progress(summary.skipped + summary.converted + summary.failed, len(jobs), record)
    except BaseException:
        if runner:
            runner.abort()
        raise
    else:
        if runner:
            runner.close()
    finally:
        journal.close()
        summary.seconds = time.perf_counter() - start
        summary.mean_bpp = sum(bpps) / len(bpps) if bpps else None
        _write_index(summary.index, jobs, latest, options)
    return summary


# ---- planning and the manifest ----

def _plan(sources, destination: Path, options: Options) -> list[Job]:
    """The files of the batch, sorted by source, with their outputs."""
    given = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not given:
        raise neco.InvalidArgumentError("no sources given")
    paths = [Path(p).absolute() for p in given]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(2, os.strerror(2), str(path))
    root = paths[0] if len(paths) == 1 and paths[0].is_dir() else \
        Path(os.path.commonpath([p.parent for p in paths]))
    dst = destination.absolute()
    files: dict[str, str] = {}
    for path in paths:
        for found in (_walk(path, dst, options.decode) if path.is_dir() else [path]):
            files.setdefault(found.relative_to(root).as_posix(), str(found))
    if options.decode:
        outputs = {rel: rel[:-len(".neco")] if rel.lower().endswith(".neco") else rel for rel in files}
    else:
        stems: dict[str, int] = {}
        for rel in files:
            stems[_stem(rel)] = stems.get(_stem(rel), 0) + 1
        outputs = {rel: (_stem(rel) if stems[_stem(rel)] == 1 else rel) + ".neco" for rel in files}
    return [Job(rel, files[rel], outputs[rel]) for rel in sorted(files)]


def _stem(rel: str) -> str:
    head, _, name = rel.rpartition("/")
    base = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{head}/{base}" if head else base


def _walk(folder: Path, destination: Path, decode: bool) -> Iterator[Path]:
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(top, d) != destination)
        for name in sorted(names):
            path = Path(top, name)
            if name.startswith(".") or not path.is_file() or (decode and not name.lower().endswith(".neco")):
                continue
            if path.parent == destination and name in (JOURNAL, INDEX):
                continue
            yield path


def _remove_leftovers(destination: Path, jobs: list[Job]) -> None:
    """Temporary files of outputs that a killed run left behind (a crash: Ctrl-C leaves none)."""
    stems = {_stem(job.output) for job in jobs} | {_stem(INDEX)}
    for top, _dirs, names in os.walk(destination):
        for name in names:
            match = _TEMPORARY.match(name)
            rel = Path(top, match[1]).relative_to(destination).as_posix() if match else None
            if rel is not None and (_stem(rel) in stems or rel in stems):
                Path(top, name).unlink(missing_ok=True)


def _finished(record: dict | None, options: Options, destination: Path) -> bool:
    """Whether a file's last record says done, with these options, and its output is intact."""
    if not record or record.get("status") != "done" or record.get("options") != asdict(options):
        return False
    try:
        return _sha256_file(destination / record["output"]) == record["sha256"]
    except OSError:
        return False


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_FACTS = ("kind", "width", "height", "frames", "bpp")


def _record(job: Job, outcome: Outcome, options: Options, destination: Path, engine: str, device: str) -> dict:
    """Write a converted file's output (atomically) and return its journal record."""
    record = {"source": job.source, "output": None, "status": "failed", "error": outcome.error, "sha256": None,
              "bytes_in": os.path.getsize(job.path) if os.path.exists(job.path) else None, "bytes_out": None,
              **dict.fromkeys(_FACTS), "warnings": outcome.warnings, "options": asdict(options)}
    if outcome.error is None:
        output = job.output + outcome.extension if options.decode else job.output
        target = destination / output
        try:
            if target.exists() and os.path.samefile(target, job.path):
                raise neco.InvalidArgumentError(f"the output {output} is the input itself")
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(target) as f:
                f.write(outcome.data)
        except (OSError, neco.NecoError) as exc:
            record["error"] = _one_line(exc)
        else:
            record.update(output=output, status="done", sha256=hashlib.sha256(outcome.data).hexdigest(),
                          bytes_out=len(outcome.data), **{key: outcome.facts[key] for key in _FACTS})
    record["run"] = {"seconds": round(outcome.seconds, 4), "engine": engine, "worker": outcome.worker,
                     "host": socket.gethostname(), "device": device,
                     "finished": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
    return record


class _Journal:
    """The append-only JSON-lines journal: one write per record, synced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        size = os.fstat(self._fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a torn last line: end it, so the next record stands alone
                    os.write(self._fd, b"\n")

    def latest(self) -> dict[str, dict]:
        """Each source's last complete record."""
        found = {}
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("source"), str):
                    found[record["source"]] = record
        return found

    def append(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


@contextlib.contextmanager
def _holding_interrupts() -> Iterator[None]:
    """Ctrl-C (SIGINT) during the block is raised at its end; elsewhere than the main thread, as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _write_index(path: Path, jobs: list[Job], latest: dict[str, dict], options: Options) -> None:
    files = []
    for job in jobs:
        record = latest.get(job.source)
        if record is not None and record.get("options") == asdict(options):
            files.append({key: value for key, value in record.items() if key not in ("run", "options")})
    done = [f for f in files if f["status"] == "done"]
    totals = {"files": len(jobs), "done": len(done), "failed": len(files) - len(done),
              "pending": len(jobs) - len(files), "bytes_in": sum(f["bytes_in"] for f in done),
              "bytes_out": sum(f["bytes_out"] for f in done),
              "mean_bpp": sum(f["bpp"] for f in done) / len(done) if done else None}
    write_atomic(path, json.dumps({"neco_batch": 1, "options": asdict(options), "totals": totals, "files": files},
                                  indent=1) + "\n")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if exc.filename is None else f"{os.path.basename(os.fsdecode(exc.filename))}: " \
                                                           f"{exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


# ---- one file: what every worker runs ----

def convert(job: Job, options: Options, device: str = "cpu") -> Outcome:
    """Convert one file (its bytes: `job.data`, else read from `job.path`); never raises for a
    bad input: the outcome then carries its one-line error."""
    start = time.perf_counter()
    try:
        data = job.data if job.data is not None else Path(job.path).read_bytes()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = (_decode if options.decode else _encode)(data, options, device)
        outcome.warnings = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    except Exception as exc:  # noqa: BLE001 (a bad input is recorded, never stops the batch)
        outcome = Outcome(error=_one_line(exc))
    outcome.seconds = time.perf_counter() - start
    return outcome


def _encode(data: bytes, options: Options, device: str) -> Outcome:
    coding = {"quality": options.quality, "bpp": options.bpp, "effort": options.effort, "model": options.model,
              "device": device}
    if data.startswith(y4m.MAGIC):
        reader = y4m.Y4MReader(io.BytesIO(data))
        return _encoded_frames(reader, reader.frame_rate, 0, coding)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        image = None
    if image is not None:
        if getattr(image, "is_animated", False):
            return _encoded_frames(_image_frames(image), _image_rate(image), image.n_frames, coding)
        return _outcome(neco.encode(image, **coding), ".neco")
    try:
        reader = av_io.AvReader(io.BytesIO(data))
    except (neco.UnsupportedError, neco.CorruptDataError) as exc:
        raise UnsupportedError(f"not an image Pillow can read, nor a video FFmpeg can open ({exc})") from None
    return _encoded_frames(reader, reader.frame_rate, 0, coding)


def _encoded_frames(frames: Iterable, rate: Fraction | None, count: int, coding: dict) -> Outcome:
    """A clip as `neco encode` codes it (the same bytes)."""
    buffer = io.BytesIO()
    neco.encode_frames(frames, buffer, frame_rate=rate, num_frames=count, **coding)
    return _outcome(buffer.getvalue(), ".neco")


def _image_frames(image: Image.Image) -> Iterator[Image.Image]:
    for index in range(image.n_frames):
        image.seek(index)
        image.load()
        yield image


def _image_rate(image: Image.Image) -> Fraction | None:
    """An animation's rate from its mean frame duration (ms); None when a duration is missing."""
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        durations.append(image.info.get("duration") or 0)
    image.seek(0)
    if not all(d > 0 for d in durations):
        return None
    return Fraction(1000) / Fraction(sum(Fraction(d).limit_denominator(1000) for d in durations),
                                     len(durations)).limit_denominator(1000)


def _decode(data: bytes, options: Options, device: str) -> Outcome:
    facts = neco.info(data)
    if facts["kind"] == "video":
        return _outcome(_decoded_clip(data, facts, options.video_format, device), f".{options.video_format}",
                        facts)
    image = neco.decode(data, device=device)
    extras = {key: image.info[key] for key in ("icc_profile", "exif") if image.info.get(key)}
    buffer = io.BytesIO()
    image.save(buffer, format=Image.registered_extensions()[f".{options.image_format}"], **extras)
    return _outcome(buffer.getvalue(), f".{options.image_format}", facts)


def _decoded_clip(data: bytes, facts: dict, video_format: str, device: str) -> bytes:
    """A clip's frames as Y4M or, through PyAV, a video file (as `neco decode` writes them)."""
    width, height = facts["width"], facts["height"]
    chroma = "444" if width % 2 or height % 2 else "420"
    with neco.open(data, device=device) as reader:
        if video_format == "y4m":
            buffer = io.BytesIO()
            writer = y4m.Y4MWriter(buffer, width, height, reader.header.frame_rate, chroma)
            for pixels in reader:
                writer.write(pixels)
            return buffer.getvalue()
        with tempfile.TemporaryDirectory(prefix="neco-batch-") as folder:
            path = os.path.join(folder, f"clip.{video_format}")
            av_io.AvWriter(path, width, height, reader.header.frame_rate, pix_fmt=f"yuv{chroma}p",
                           container=av_io.CONTAINERS[f".{video_format}"]).write_all(reader)
            return Path(path).read_bytes()


def _outcome(data: bytes, extension: str, facts: dict | None = None) -> Outcome:
    facts = facts or neco.info(data)
    return Outcome(data, extension, {"kind": facts["kind"], "width": facts["width"], "height": facts["height"],
                                     "frames": facts.get("frames", 1), "bpp": facts["bpp"]})


def _image_format(name: str) -> str:
    key = name.lower().lstrip(".")
    Image.init()
    if Image.registered_extensions().get(f".{key}") not in Image.SAVE:
        raise neco.InvalidArgumentError(f"unknown image format {name!r} (png, jpg, webp, tiff, ...)")
    return key


def _video_format(name: str) -> str:
    key = name.lower().lstrip(".")
    if key != "y4m" and f".{key}" not in av_io.CONTAINERS:
        raise neco.InvalidArgumentError(f"unknown video format {name!r} (y4m, {', '.join(c[1:] for c in av_io.CONTAINERS)})")
    return key


# ---- engines: where `convert` runs ----

def _warm(options: Options, device: str) -> None:
    """Load the model now, once per worker (a failure shows again, per file, when files run)."""
    try:
        if options.decode:
            registry.get_decoder(registry.DEFAULT_IMAGE_MODEL)
        else:
            neco.encode(np.zeros((16, 16, 3), np.uint8), quality=50, model=options.model, device=device)
    except Exception:  # noqa: BLE001
        pass


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch
        torch.set_num_threads(threads)


_worker_state: tuple[Options, str] | None = None


def _start_worker(options: Options, device: str, threads: int | None) -> None:
    """A pool process's start: Ctrl-C is the parent's to handle; one model load."""
    global _worker_state
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_threads(threads)
    _worker_state = options, device
    _warm(options, device)


def _run_in_worker(job: Job) -> Outcome:
    outcome = convert(job, *_worker_state)
    outcome.worker = f"pid {os.getpid()}"
    return outcome


class _InProcess:
    def __init__(self, options: Options, device: str) -> None:
        self.options, self.device = options, device

    def results(self, jobs: list[Job]) -> Iterator[tuple[Job, Outcome]]:
        for job in jobs:
            outcome = convert(job, self.options, self.device)
            outcome.worker = f"pid {os.getpid()}"
            yield job, outcome

    def close(self) -> None:
        pass

    abort = close


class _LocalPool:
    """`workers` spawned processes, two files in flight per process."""

    def __init__(self, options: Options, device: str, workers: int) -> None:
        self.workers = workers
        self._start = lambda: ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_start_worker, initargs=(options, device, 1))
        self.executor = self._start()

    def results(self, jobs: list[Job]) -> Iterator[tuple[Job, Outcome]]:
        queue, running = iter(jobs), {}
        while True:
            while len(running) < 2 * self.workers and (job := next(queue, None)) is not None:
                running[self.executor.submit(_run_in_worker, job)] = job
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:  # a worker died (killed, out of memory): its files fail, the rest go on
                    outcome = Outcome(error="the worker process died while converting this file (or a neighbour)")
                    for other in running:
                        other.cancel()
                    self.executor.shutdown(wait=False)
                    self.executor = self._start()
                    queue = iter([*running.values(), *queue])
                    running = {}
                yield job, outcome

    def close(self) -> None:
        self.executor.shutdown()

    def abort(self) -> None:
        """Cancel what has not started and terminate the processes (they write nothing)."""
        processes = list(getattr(self.executor, "_processes", {}).values())
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(10)


class _RayWorker:
    """A Ray actor: loads the model once, then converts the files it is handed."""

    def __init__(self, options: Options, device: str, threads: int | None) -> None:
        _set_threads(threads)
        self.options, self.device = options, device
        self.name = f"{socket.gethostname()} pid {os.getpid()}"
        _warm(options, device)

    def convert(self, job: Job) -> Outcome:
        outcome = convert(job, self.options, self.device)
        outcome.worker = self.name
        return outcome


class _RayPool:
    """Actors on a Ray cluster (started here when none is running and no address is given),
    two files in flight per actor; inputs and outputs travel through the object store."""

    def __init__(self, options: Options, device: str, workers: int | None, address: str | None,
                 gpus_per_worker: float) -> None:
        try:
            import ray
        except ImportError:
            raise UnsupportedError("engine 'ray' needs Ray: pip install 'neco[ray]'") from None
        self.ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        resources = ray.cluster_resources()
        if gpus_per_worker:
            fit = int(resources.get("GPU", 0) // gpus_per_worker)
            if fit < 1:
                self.close()
                raise UnsupportedError(f"the Ray cluster has {resources.get('GPU', 0):g} GPU(s); "
                                       f"{gpus_per_worker:g} per worker asked")
        else:
            fit = max(1, int(resources.get("CPU", 1)))
        count = min(workers or fit, fit)
        actor = ray.remote(num_cpus=0 if gpus_per_worker else 1, num_gpus=gpus_per_worker)(_RayWorker)
        self.actors = [actor.remote(options, device, None if gpus_per_worker else 1) for _ in range(count)]

    def results(self, jobs: list[Job]) -> Iterator[tuple[Job, Outcome]]:
        ray, queue, running = self.ray, iter(jobs), {}
        free = [actor for actor in self.actors for _ in range(2)]
        while True:
            while free and (job := next(queue, None)) is not None:
                try:
                    loaded = replace(job, data=Path(job.path).read_bytes())
                except OSError as exc:
                    yield job, Outcome(error=_one_line(exc))
                    continue
                actor = free.pop()
                running[actor.convert.remote(loaded)] = job, actor
            if not running:
                return
            (ready, *_), _ = ray.wait(list(running), num_returns=1)
            job, actor = running.pop(ready)
            free.append(actor)
            yield job, ray.get(ready)

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            self.ray.kill(actor)
        if self._started:
            self.ray.shutdown()

    abort = close


def _runner(engine: str, options: Options, device: str, workers: int | None, files: int, address: str | None,
            gpus_per_worker: float):
    if engine == "ray":
        return _RayPool(options, device, workers, address, gpus_per_worker)
    count = min(workers or len(os.sched_getaffinity(0)), files)
    return _InProcess(options, device) if count <= 1 else _LocalPool(options, device, count)
