"""``neco batch``: a folder or a list of files into `.neco` files (or back), on a local process
pool or on Ray (`neco.batch`)."""

from __future__ import annotations

import click

import neco.batch

from . import progress
from .errors import CliError
from .options import quiet_option

SHOWN_FAILURES = 10  # failures listed after the summary; the manifest has them all


@click.command()
@click.argument("sources", metavar="SRC...", nargs=-1, required=True, type=click.Path(exists=True))
@click.argument("destination", metavar="DST", type=click.Path(file_okay=False))
@click.option("-d", "--decode", is_flag=True, help="Decode .neco files (a folder: its *.neco files) instead.")
@click.option("-q", "--quality", type=click.FloatRange(0, 100), default=None,
              help="Quality 0-100, higher is better and larger  [default: 75].")
@click.option("-b", "--bpp", type=click.FloatRange(0, min_open=True), default=None,
              help="Target rate in bits per pixel (searched per file); excludes --quality.")
@click.option("-e", "--effort", type=click.IntRange(0, 3), default=0, show_default=True,
              help="Encoder effort (see neco encode --help).")
@click.option("--model", metavar="NAME", default=None,
              help="Model id (see `neco list`)  [default: the shipped image model].")
@click.option("-f", "--format", "image_format", metavar="FORMAT", default=None,
              help="With --decode: the format of decoded stills (png, webp, tiff, jpg, ...)  [default: png].")
@click.option("--video-format", metavar="FORMAT", default=None,
              help="With --decode: the format of decoded clips (y4m, or mp4, mkv, ... through PyAV)  "
                   "[default: y4m].")
@click.option("-j", "--workers", type=click.IntRange(1), default=None,
              help="Worker processes (local) or actors (ray)  [default: one per core; ray: the cluster's CPUs, "
                   "or GPUs / --gpus-per-worker].")
@click.option("--engine", type=click.Choice(neco.batch.ENGINES), default="local", show_default=True,
              help="local: a process pool on this machine; ray: Ray actors (pip install 'neco[ray]').")
@click.option("--address", metavar="ADDR", default=None,
              help="With --engine ray: an existing cluster (auto, ray://head:10001); default: a local Ray "
                   "started for the batch.")
@click.option("--gpus-per-worker", type=click.FloatRange(0), default=0, show_default=True,
              help="With --engine ray: GPUs per actor (GPU actors code on cuda).")
@click.option("--device", metavar="DEVICE", default=None,
              help="Where the model runs  [default: cpu; cuda with --gpus-per-worker].")
@quiet_option()
def batch(sources: tuple[str, ...], destination: str, decode: bool, quality: float | None, bpp: float | None,
          effort: int, model: str | None, image_format: str | None, video_format: str | None, workers: int | None, engine: str,
          address: str | None, gpus_per_worker: float, device: str | None) -> None:
    """Convert the images and clips in SRC (folders, walked recursively, or files) into .neco files
    in the folder DST, mirroring their paths (or, with --decode, .neco files back into images and clips).

    Resumable: DST/neco-batch.jsonl records every file (output SHA-256, size, bpp, time, or its
    error); a re-run skips the files done with the same options and converts the rest. A bad
    input is recorded and listed, never stops the batch (the exit status is then 1). Ctrl-C
    stops cleanly; run again to finish. DST/neco-batch.json indexes the outputs (the same bytes
    whatever the engine or worker count).
    """
    if quality is not None and bpp is not None:
        raise click.UsageError("--quality and --bpp are mutually exclusive")
    if not decode and (image_format or video_format):
        raise click.UsageError("--format and --video-format apply to --decode")
    if engine != "ray" and (address is not None or gpus_per_worker):
        raise click.UsageError("--address and --gpus-per-worker apply to --engine ray")
    with progress.frames("decode" if decode else "encode", unit="file") as report:
        summary = neco.batch.transcode(
            list(sources), destination, decode=decode, quality=quality, bpp=bpp, effort=effort, model=model,
            device=device, image_format=image_format or "png", video_format=video_format or "y4m", workers=workers, engine=engine,
            address=address, gpus_per_worker=gpus_per_worker, progress=lambda done, total, _record: report(done, total))
    progress.echo(f"{click.format_filename(destination)}: {summary.line()}")
    for source, error in summary.failures[:SHOWN_FAILURES]:
        progress.write(f"neco: failed: {source}: {error}")
    if summary.failures:
        more = len(summary.failures) - SHOWN_FAILURES
        raise CliError(f"{len(summary.failures)} file(s) failed" + (f" ({more} more than listed)" if more > 0 else "")
                       + f"; see {click.format_filename(str(summary.journal))}")
