"""``neco eval``: the rate-distortion bench, neco and classical codecs side by side.

    neco eval ../shared/data/kodak --codec neco --codec avif --codec jpeg -o results/kodak
    neco eval ../shared/data/kodak -c jpeg -c webp --bpp-grid 0.25,0.5,1 -o results/matched
    neco eval ../shared/data/video/vtest.avi -c x264 -c x265 -c svtav1 -o results/video
    neco eval --compare results/kodak/neco.json avif-measured --anchor vtm -o results/cmp
    neco eval --list-codecs

A run measures every codec at every rate point on every image of DATASET (`bench.run`),
committing each measurement to ``DIR/cache.sqlite`` as it finishes, so Ctrl-C and the same
command again continue where it stopped. It then writes, per codec, ``DIR/<codec>.json``
(CompressAI style, means over images) and ``DIR/<codec>.csv`` (per image), prints a BD-rate /
BD-PSNR table against each anchor (default ``vtm`` when the Kodak reference curves are found)
into ``DIR/bd-rate.txt`` and ``.json``, and draws RD plots (``DIR/rd-<metric>.png`` and
``.svg``; needs matplotlib). ``--compare`` does the tables and plots from saved results only.

Rate points are each codec's quality grid, ``--quality``, or target bpps (``--bpp-grid``: per
image, the quality whose real encoded size lands nearest each target, `Codec.find_quality`),
so codecs compare at matched rates. A video file as DATASET is video mode (`bench.video`): the
video codecs code its first ``--frames`` frames at ``--size``; the anchor is the first codec,
and ``DIR/<codec>.csv`` holds one row per frame.

``--metric`` names the metric of the BD tables (psnr-rgb, psnr-y or ms-ssim-rgb, always
measured) and asks for perceptual metrics, measured only when named (`bench.perceptual`, from
``pip install neco[metrics]``): ``ssimulacra2`` and ``flip`` on images and video frames,
``vmaf`` on video. One whose package is missing, or that does not apply to DATASET, is
skipped with a warning. They go into the JSON, the CSV and RD plots, not the BD tables.

Anchors and compared curves are result files, named by path or by name in DIR or in the
reference folder (``--references``, else ``$NECO_REFERENCES``, else
``../shared/reference/kodak``). Progress and warnings go to stderr, tables to stdout.

A curve whose images differ from its anchor's (in count or names) is warned about and marked
``*`` in the BD table, with a footnote (`bench.report.image_mismatch`): the reference curves
are means over the 24 Kodak images, so a run with ``--limit`` or on other images is not
comparable with them as it stands. ``--matching-images`` compares such a pair on the images
both measured, which needs per-image results on both sides: the ``<codec>.csv`` that a run
writes beside ``<codec>.json`` (so a saved run can be an anchor, ``--anchor
results/kodak/jpeg.json``). The reference curves hold means only and stay marked.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click

from neco.formats import NecoError
from neco.plugins.atomic import write_atomic
from neco.plugins.bench import report
from neco.plugins.bench.codecs import CODECS, VIDEO_VARIANTS, Codec, make_codec
from neco.plugins.bench.perceptual import PERCEPTUAL
from neco.plugins.bench.video import DEFAULT_FRAMES, DEFAULT_SIZE, find_video, is_video

from .errors import EXIT_INTERRUPTED, CliError, warn
from .options import quiet_option

DEFAULT_CODECS = ("neco",)
DEFAULT_VIDEO_CODECS = ("x264", "x265", "svtav1", "vp9")
DEFAULT_ANCHOR = "vtm"
DEFAULT_BD_METRIC = "psnr-rgb"
PLOT_METRICS = ("psnr-rgb", "ms-ssim-rgb")


def _reference_folders(option: str | None) -> list[Path]:
    if option is not None:
        return [Path(option)]
    candidates = [os.environ.get("NECO_REFERENCES"), "../shared/reference/kodak",
                  Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "kodak"]
    found: list[Path] = []
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if path.is_dir() and all(path.resolve() != f.resolve() for f in found):
            found.append(path)
    return found


def _numbers(values: tuple[str, ...], option: str) -> list[float] | None:
    if not values:
        return None
    try:
        parsed = [float(v) for text in values for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError as exc:
        raise click.BadParameter(f"not a number list: {' '.join(values)!r}", param_hint=f"'{option}'") from exc
    return sorted(set(parsed))


def _size(text: str | None) -> tuple[int, int] | None:
    """--size: (width, height); None for the source's size."""
    if text is None:
        return DEFAULT_SIZE
    if text.strip().lower() == "source":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or not all(int(v) > 0 and int(v) % 2 == 0 for v in match.groups()):
        raise click.BadParameter(f"{text!r} is not WxH with even sides (video is coded 4:2:0) or 'source'",
                                 param_hint="'--size'")
    return int(match[1]), int(match[2])


def _wrong_kind(codec: Codec, kind: str) -> str:
    names = ", ".join(name for name, c in CODECS.items() if c.kind == kind or name in VIDEO_VARIANTS)
    if kind == "video":
        return f"{codec.name} is an image codec: a video file as DATASET needs a video codec ({names})"
    return f"{codec.name} is a video codec: it needs a video file as DATASET (image codecs: {names})"


def _codecs(specs: tuple[str, ...], points: list[float] | None, kind: str = "image",
            by_bpp: bool = False) -> dict[str, tuple[Codec, list[float]]]:
    """Usable codecs by label, each with its rate points; unavailable ones are warned about.

    points: qualities for every codec (None: each codec's grid), or target bpps with by_bpp.
    """
    chosen: dict[str, tuple[Codec, list[float]]] = {}
    for spec in specs or (DEFAULT_VIDEO_CODECS if kind == "video" else DEFAULT_CODECS):
        try:
            codec = make_codec(spec, kind)
            if codec.kind != kind:
                raise ValueError(_wrong_kind(codec, kind))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'-c' / '--codec'") from exc
        codec_points = points or list(codec.default_qualities)
        try:
            if by_bpp:
                if any(p <= 0 for p in codec_points):
                    raise ValueError("target bpps must be positive")
            else:
                for q in codec_points:
                    codec.check_quality(q)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--bpp-grid'" if by_bpp else "'-q' / '--quality'") from exc
        reason = codec.unavailable()
        if reason:
            warn(f"{codec.label} unavailable: {reason}")
        elif codec.label not in chosen:
            chosen[codec.label] = (codec, codec_points)
    if not chosen:
        raise CliError("none of the codecs asked for is available")
    return chosen


def _split_metrics(names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """--metric values: (the BD tables' metric, the perceptual metrics asked for, in PERCEPTUAL order)."""
    bd = sorted({m for m in names if m in report.METRICS}, key=names.index)
    if len(bd) > 1:
        raise click.BadParameter(f"BD tables take one of {', '.join(report.METRICS)}, got {', '.join(bd)}",
                                 param_hint="'--metric'")
    return (bd[0] if bd else DEFAULT_BD_METRIC), tuple(m for m in PERCEPTUAL if m in names)


def _usable_metrics(metrics: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """The perceptual metrics that apply to this kind of DATASET and are installed; others warned about."""
    from neco.plugins.bench.perceptual import unavailable
    usable = []
    for name in metrics:
        metric = PERCEPTUAL[name]
        if kind not in metric.kinds:
            warn(f"{name} is a {' / '.join(metric.kinds)} metric: skipped for {kind}s")
            continue
        reason = unavailable(name)
        if reason:
            warn(f"metric {name} unavailable: {reason}: skipped")
            continue
        usable.append(name)
    return tuple(usable)


def _list_codecs() -> None:
    for name, kind in CODECS.items():
        codec = kind()
        reason = codec.unavailable()
        status = f"unavailable: {reason}" if reason else codec.describe()
        grid = " ".join(f"{q:g}" for q in codec.default_qualities)
        click.echo(f"{name:<6} {status}\n       {codec.kind} codec; default {codec.quality_name} grid: {grid}")
        if name in VIDEO_VARIANTS:
            video = VIDEO_VARIANTS[name]()
            grid = " ".join(f"{q:g}" for q in video.default_qualities)
            click.echo(f"       on a video: {video.describe()}; default {video.quality_name} grid: {grid}")


def _bd_report(curves: list[report.Curve], anchors: list[report.Curve], metric: str,
               out_dir: Path | None, matching: bool = False) -> None:
    """Print one BD table per anchor; save them in DIR when there is one. Curves whose images
    differ from the anchor's are warned about (and marked in the table)."""
    texts, tables = [], {}
    for anchor in anchors:
        rows = report.bd_table(anchor, [c for c in curves if c is not anchor], metric, matching)
        texts.append(report.format_bd_table(anchor.name, metric, rows))
        tables[anchor.name] = {r["name"]: {"bd-rate": r["bd-rate"], "bd-quality": r["bd-quality"],
                                           "note": r["note"], "images-differ": r["images"] or None,
                                           "matched-images": r["matched"]} for r in rows}
        for r in rows:
            if r["images"]:
                hint = "" if matching else " (--matching-images compares on the images both measured, " \
                                           "where both have per-image results)"
                warn(f"BD of {r['name']} vs {anchor.name}: {r['images']}{hint}")
    if not texts:
        return
    text = "\n\n".join(texts)
    click.echo(text)
    if out_dir is not None:
        write_atomic(out_dir / "bd-rate.txt", text + "\n")
        method = "Bjøntegaard delta, pchip interpolation over the overlapping range; " \
                 "bd-rate in % at equal quality, bd-quality in dB at equal rate (MS-SSIM in dB)"
        saved = {"metric": metric, "method": method, "anchors": tables}
        write_atomic(out_dir / "bd-rate.json", json.dumps(saved, indent=2) + "\n")


def _plots(curves: list[report.Curve], anchors: list[report.Curve], out_dir: Path, title: str) -> None:
    """RD plots of PSNR and MS-SSIM, and of each perceptual metric some curve holds."""
    from neco.plugins.bench.plot import plot_rd
    for metric in (*PLOT_METRICS, *PERCEPTUAL):
        written = plot_rd(curves, anchors, metric, out_dir / f"rd-{metric}", title)
        if written is None:
            warn("matplotlib is not installed (pip install matplotlib): no RD plots")
            return
        if written:
            click.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)


def _group_line(label: str, rows: list[dict]) -> str:
    """One rate point of one codec, all sources done: `label` is ``jpeg q=50`` or alike."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return f"{label}: every image failed"
    mean = lambda key: sum(r[key] for r in ok) / len(ok)  # noqa: E731
    msssim = [r["ms-ssim-rgb"] for r in ok]
    parts = [f"{mean('bpp'):.4f} bpp"]
    if "kbps" in ok[0]:
        parts.append(f"{mean('kbps'):.1f} kbps")
    parts.append(f"{mean('psnr-rgb'):.2f} dB")
    if None not in msssim:
        parts.append(f"MS-SSIM {sum(msssim) / len(msssim):.4f}")
    for name, metric in PERCEPTUAL.items():
        values = [r.get(name) for r in ok]
        if name in ok[0] and None not in values:
            parts.append(f"{metric.title} {sum(values) / len(values):.{2 if metric.higher_is_better else 4}f}")
    if "target_bpp" in ok[0]:
        parts.append(f"quality {mean('quality'):.1f}")
    parts += [f"encode {mean('encoding_time'):.3f} s", f"decode {mean('decoding_time'):.3f} s"]
    count = f"{ok[0]['frames']} frames" if "frames" in ok[0] else f"{len(ok)} images"
    return f"{label}: {'  '.join(parts)}  ({count})"


def _run(sources: list, codecs: dict[str, tuple[Codec, list[float]]], out_dir: Path, jobs: int,
         verbose: bool, by_bpp: bool, dataset: Path, metrics: tuple[str, ...] = ()) -> list[report.Curve]:
    """Measure everything (from the cache where possible); write JSON and CSV per codec."""
    from neco.plugins.bench.cache import ResultCache
    from neco.plugins.bench.run import make_tasks, run

    from .progress import Progress

    for label, (codec, points) in codecs.items():
        grid = " ".join(f"{q:g}" for q in points)
        click.echo(f"  {label}: {codec.describe()}; {'target bpp' if by_bpp else codec.quality_name} {grid}",
                   err=True)
    if metrics:
        click.echo(f"  perceptual metrics: {', '.join(metrics)}", err=True)
    tasks = make_tasks(codecs, sources, by_bpp, metrics)
    left = {label: len(points) * len(sources) for label, (_codec, points) in codecs.items()}
    groups: dict[tuple[str, float], list[dict]] = {}
    rows: dict[str, list[dict]] = {label: [] for label in codecs}
    curves = []
    progress = Progress(len(tasks))

    def on_interrupt(running: int) -> None:
        plural = "s" if running > 1 else ""
        progress.log(f"interrupted; waiting for the {running} measurement{plural} already handed to workers")

    with ResultCache(out_dir) as cache:
        cached_before = len(cache)
        try:
            for task, row, cached in run(tasks, cache, jobs, on_interrupt):
                what = f"{task.codec_label} {task.label}"
                progress.advance(f"{what} {task.source.name}", cached)
                if "error" in row:
                    progress.log(f"neco: warning: {what} {task.source.name} failed: {row['error']}")
                elif verbose:
                    progress.log(f"{what} {task.source.name}: {row['bpp']:.4f} bpp {row['psnr-rgb']:.2f} dB"
                                 f"{' (cached)' if cached else ''}")
                group = groups.setdefault((task.codec_label, task.point), [])
                group.append(row)
                if len(group) == len(sources):
                    progress.log(_group_line(what, group))
                rows[task.codec_label].append(row)
                left[task.codec_label] -= 1
                if left[task.codec_label] == 0:
                    codec, points = codecs[task.codec_label]
                    curves.append(_write_codec(codec, points, rows[task.codec_label], sources, dataset, jobs,
                                               by_bpp, out_dir, progress, metrics))
        except KeyboardInterrupt:
            progress.close()
            raise CliError(f"interrupted; {len(cache)} measurements are cached in {cache.path} "
                        f"({len(cache) - cached_before} new): run the same command to continue",
                        EXIT_INTERRUPTED) from None
        finally:
            progress.close()
    return curves


def _description(codec: Codec, result: dict, sources: list, dataset: Path, jobs: int, by_bpp: bool,
                 metrics: tuple[str, ...] = ()) -> str:
    machine = f"on this machine ({jobs} job{'s' if jobs > 1 else ''})"
    if codec.kind == "video":
        clip = sources[0]
        fps = f"{float(clip.frame_rate):g} fps"
        coding = ("quality = neco's quality, the clip coded by neco.encode_frames (its profile and key-frame "
                  "interval in the settings); rate of the whole .neco file (header, chunks, INDEX, END)"
                  if codec.name == "neco" else
                  "quality = CRF; rate of the elementary stream (every packet and out-of-band header, no container)")
        text = (f"{codec.describe()}; the first {clip.frames} frames of {clip.name} at "
                f"{clip.width}x{clip.height}, {fps}, as RGB; {coding}: bpp = bits/(width*height*frames), "
                f"kbps at {fps}; means over frames of per-frame RGB PSNR, BT.709 Y PSNR and RGB MS-SSIM; "
                "bits per frame by the decoder's picture type; encoding/decoding seconds for the whole "
                f"clip{'' if codec.name == 'neco' else ', RGB<->4:2:0 included'}, {machine}")
    else:
        text = (f"{codec.describe()}; mean over the {result['images']} images of {dataset.resolve().name} of "
                "per-image bpp (file bytes*8/pixels), RGB PSNR, BT.709 Y PSNR and RGB MS-SSIM; encoding/decoding "
                f"seconds per image {machine}")
    if by_bpp:
        search = "neco's own rate search" if codec.name == "neco" and codec.kind == "image" else \
            f"bisection over the integer {codec.quality_name}s on real encoded sizes"
        text += f"; rate points are target bpps, each reached per source by {search} (nearest in log-rate)"
    if metrics:
        from neco.plugins.bench.perceptual import version
        means = "means over frames of per-frame" if codec.kind == "video" else "means of per-image"
        text += f"; {means} " + ", ".join(f"{PERCEPTUAL[m].title} ({version(m)})" for m in metrics)
    return text


def _write_codec(codec: Codec, points: list[float], rows: list[dict], sources: list, dataset: Path, jobs: int,
                 by_bpp: bool, out_dir: Path, progress, metrics: tuple[str, ...] = ()) -> report.Curve:
    ok = [r for r in rows if "error" not in r]
    extra = {"codec": {"name": codec.name, "version": codec.version(), "settings": codec.settings()},
             "dataset": str(dataset)}
    video = codec.kind == "video"
    point_column = "target_bpp" if by_bpp else "quality"
    if video:
        from neco.plugins.bench.video import FRAME_CSV_COLUMNS, frame_rows, result_extras
        mean_keys, per_frame = result_extras(ok, points, by_bpp)
        extra["video"] = {"frames": sources[0].frames, "width": sources[0].width, "height": sources[0].height,
                          "frame_rate": str(sources[0].frame_rate)}
    else:
        mean_keys, per_frame = (), None
    result, left_out = report.summarize(codec.label, "", points, ok, extra, by_bpp, mean_keys,
                                        "videos" if video else "images", metrics)
    result["description"] = _description(codec, result, sources, dataset, jobs, by_bpp, metrics)
    if per_frame is not None:
        result["per_frame"] = per_frame
    if left_out:
        n_images = len({r["image"] for r in rows})
        progress.log(f"neco: warning: {codec.label}: {len(left_out)} of {n_images} images left out of "
                     f"the means (failed at some rate point): {', '.join(left_out)}")
    json_path, csv_path = out_dir / f"{codec.label}.json", out_dir / f"{codec.label}.csv"
    write_atomic(json_path, report.to_json(result))
    if video:
        columns = tuple(c for c in (*FRAME_CSV_COLUMNS, *metrics) if by_bpp or c != "target_bpp")
        csv_text = report.to_csv(frame_rows(ok, metrics), columns, ("video", point_column, "frame"))
    else:
        columns = report.csv_columns(metrics)
        if by_bpp:
            at = columns.index("quality")
            columns = (*columns[:at], "target_bpp", *columns[at:])
        csv_text = report.to_csv(ok, columns, ("image", point_column))
    write_atomic(csv_path, csv_text)
    progress.log(f"wrote {json_path}, {csv_path}")
    return report.load_curve(json_path)


def _resolve(names: tuple[str, ...] | list[str], folders: list[Path]) -> list[report.Curve]:
    curves = []
    for name in names:
        try:
            path = report.resolve_curve(name, folders)
            curves.append(report.load_curve(path, None if name.endswith(".json") else name))
        except ValueError as exc:
            raise CliError(str(exc)) from exc
    return curves


def _sources(dataset: Path, kind: str, limit: int | None, frames: int | None,
             size_text: str | None) -> tuple[list, str, str]:
    """What DATASET holds for the run: (sources, a summary line, the plot title)."""
    if kind == "image":
        if frames is not None or size_text is not None:
            raise click.UsageError("--frames and --size are for a video file as DATASET")
        from neco.plugins.bench.run import find_images
        images, skipped = find_images(dataset, limit)
        for name, reason in skipped:
            warn(f"skipped {name}: {reason}")
        if not images:
            raise CliError(f"{click.format_filename(str(dataset))}: no readable images")
        summary = f"{len(images)} images from {dataset}{f' ({len(skipped)} skipped)' if skipped else ''}"
        return images, summary, f"{dataset.resolve().name} ({len(images)} image{'s' if len(images) > 1 else ''})"
    if limit is not None:
        raise click.UsageError("--limit counts images; for a video, --frames N")
    frames = DEFAULT_FRAMES if frames is None else frames
    try:
        clip = find_video(dataset, frames, _size(size_text))
    except (NecoError, ValueError) as exc:
        raise CliError(f"{click.format_filename(str(dataset))}: {exc}") from exc
    if clip.width % 2 or clip.height % 2:
        raise CliError(f"{clip.name} is {clip.width}x{clip.height}: video is coded 4:2:0, give an even --size")
    if clip.frames < frames:
        warn(f"{clip.name} has only {clip.frames} frames")
    summary = f"{clip.frames} frames of {dataset} at {clip.width}x{clip.height}, {float(clip.frame_rate):g} fps"
    return [clip], summary, f"{clip.name}: {clip.frames} frames at {clip.width}x{clip.height}"


@click.command("eval")
@click.argument("inputs", nargs=-1, metavar="DATASET | --compare RESULT...")
@click.option("-c", "--codec", "specs", multiple=True, metavar="NAME[:KEY=VALUE,...]",
              help=f"Codec to measure, repeatable: {', '.join(CODECS)}; options e.g. avif:speed=6 "
                   f"[default: {' '.join(DEFAULT_CODECS)}; for a video, {' '.join(DEFAULT_VIDEO_CODECS)}].")
@click.option("-q", "--quality", "qualities", multiple=True, metavar="Q[,Q...]",
              help="Rate points for every codec: quality 0-100 for image codecs, CRF for video codecs; "
                   "default: each codec's grid.")
@click.option("--bpp-grid", "bpp_grid", multiple=True, metavar="B[,B...]",
              help="Rate points as target bits per pixel, instead of qualities: for each image (or "
                   "video) the codec's quality (or CRF) is searched (bisection on real encoded sizes; "
                   "neco uses its own rate search) for the encoding nearest each target in log-rate, "
                   "so codecs compare at matched rates. JSON: results.target-bpp, and results.quality "
                   "= the mean quality found.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for results, cache and plots (required for a run).")
@click.option("-j", "--jobs", type=click.IntRange(1), default=1, show_default=True,
              help="Parallel worker processes.")
@click.option("--anchor", "anchors", multiple=True, metavar="NAME|FILE",
              help="Curve for BD tables, drawn dashed: a result file, a reference name or a codec of "
                   "this run; repeatable [default: vtm when found; for a video, the first codec; with "
                   "--compare, the first RESULT].")
@click.option("--metric", "metric_names", multiple=True, type=click.Choice((*report.METRICS, *PERCEPTUAL)),
              help=f"Repeatable. {', '.join(report.METRICS)}: the quality metric of the BD tables [default: "
                   f"{DEFAULT_BD_METRIC}]. {', '.join(PERCEPTUAL)}: perceptual metrics to measure as well "
                   "(pip install neco[metrics]): SSIMULACRA2 and FLIP on images and video frames, VMAF on "
                   "video; in the JSON, CSV and RD plots.")
@click.option("--references", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of reference curves [default: $NECO_REFERENCES or ../shared/reference/kodak].")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images.")
@click.option("--frames", type=click.IntRange(1), default=None,
              help="Video DATASET: code its first N frames [default: 96].")
@click.option("--size", "size_text", metavar="WxH|source", default=None,
              help="Video DATASET: scale frames to WxH (even sides), or 'source' [default: 640x360].")
@click.option("--compare", is_flag=True, help="BD tables and plots of saved RESULT files; no codec runs.")
@click.option("--matching-images", is_flag=True,
              help="BD tables compare a curve and an anchor that average different images on the images "
                   "both measured, from their per-image results (<codec>.csv beside <codec>.json, as runs "
                   "write them); reference curves hold means only and stay marked.")
@click.option("--no-plot", is_flag=True, help="Write no RD plots.")
@click.option("--list-codecs", is_flag=True, help="List the codecs, their versions and availability.")
@click.option("-v", "--verbose", is_flag=True, help="One progress line per measurement.")
@quiet_option(help="No progress bar on stderr (shown on a terminal; the result lines still print).")
def evaluate(inputs: tuple[str, ...], specs: tuple[str, ...], qualities: tuple[str, ...],
             bpp_grid: tuple[str, ...], out_dir: str | None, jobs: int, anchors: tuple[str, ...],
             metric_names: tuple[str, ...],
             references: str | None, limit: int | None, frames: int | None, size_text: str | None,
             compare: bool, matching_images: bool, no_plot: bool, list_codecs: bool, verbose: bool) -> None:
    """Rate-distortion bench: measure codecs on the images of DATASET (a folder or one image),
    or on the first frames of a video file; or --compare saved results."""
    if list_codecs:
        _list_codecs()
        return
    folders = _reference_folders(references)
    out = Path(out_dir) if out_dir is not None else None
    metric, perceptual = _split_metrics(metric_names)
    if compare:
        if not inputs:
            raise click.UsageError("--compare needs at least one RESULT file")
        if specs or qualities or bpp_grid:
            raise click.UsageError("--compare runs no codec: drop --codec / --quality / --bpp-grid")
        curves = _resolve(inputs, ([out] if out else []) + folders)
        anchor_curves = _resolve(anchors, ([out] if out else []) + folders) if anchors else curves[:1]
        if perceptual:
            warn(f"--metric {' '.join(perceptual)}: measured by runs; --compare plots what the results hold")
        title = "RD curves"
    else:
        if len(inputs) != 1:
            raise click.UsageError("give one DATASET folder or file (or --compare RESULT...)")
        if out is None:
            raise click.UsageError("a run needs -o/--output DIR")
        if qualities and bpp_grid:
            raise click.UsageError("give --quality or --bpp-grid, not both")
        _size(size_text)  # a malformed --size is an error before anything runs
        dataset = Path(inputs[0])
        if not dataset.exists():
            raise CliError(f"{click.format_filename(inputs[0])}: no such file or directory")
        by_bpp = bool(bpp_grid)
        points = _numbers(bpp_grid, "--bpp-grid") if by_bpp else _numbers(qualities, "--quality")
        kind = "video" if is_video(dataset) else "image"
        codecs = _codecs(specs, points, kind, by_bpp)
        perceptual = _usable_metrics(perceptual, kind)
        # Anchors named like a codec of this run are its fresh curve; the others are found now,
        # so a wrong name fails before the run.
        named = [a for a in anchors if a not in codecs]
        found = dict(zip(named, _resolve(named, [out] + folders)))
        sources, summary, title = _sources(dataset, kind, limit, frames, size_text)
        out.mkdir(parents=True, exist_ok=True)
        click.echo(f"neco eval: {summary} -> {out}", err=True)
        curves = _run(sources, codecs, out, jobs, verbose, by_bpp, dataset, perceptual)
        by_name = {c.name: c for c in curves}
        if anchors:
            anchor_curves = [found[a] if a in found else by_name[a] for a in anchors if a in found or a in by_name]
        elif kind == "video":
            anchor_curves = [by_name[label] for label in codecs if label in by_name][:1]
        else:
            try:
                anchor_curves = _resolve([DEFAULT_ANCHOR], folders)
            except click.ClickException:
                anchor_curves = curves[:1] if len(curves) > 1 else []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    _bd_report(curves, anchor_curves, metric, out, matching_images)
    if out is not None and not no_plot:
        _plots([c for c in curves if all(c is not a for a in anchor_curves)], anchor_curves, out, title)

