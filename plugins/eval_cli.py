"""``neco eval``: the rate-distortion bench, neco and classical codecs side by side.

    neco eval ../shared/data/kodak --codec neco --codec avif --codec jpeg -o results/kodak
    neco eval --compare results/kodak/neco.json avif-measured --anchor vtm -o results/cmp
    neco eval --list-codecs

A run measures every codec at every rate point on every image of DATASET (`eval_run`),
committing each measurement to ``DIR/cache.sqlite`` as it finishes, so Ctrl-C and the same
command again continue where it stopped. It then writes, per codec, ``DIR/<codec>.json``
(CompressAI style, means over images) and ``DIR/<codec>.csv`` (per image), prints a BD-rate /
BD-PSNR table against each anchor (default ``vtm`` when the Kodak reference curves are found)
into ``DIR/bd-rate.txt`` and ``.json``, and draws RD plots (``DIR/rd-<metric>.png`` and
``.svg``; needs matplotlib). ``--compare`` does the tables and plots from saved results only.

Anchors and compared curves are result files, named by path or by name in DIR or in the
reference folder (``--references``, else ``$NECO_REFERENCES``, else
``../shared/reference/kodak``). Progress and warnings go to stderr, tables to stdout.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click

from neco.plugins import eval_report as report
from neco.plugins.eval_codecs import CODECS, Codec, make_codec

DEFAULT_CODECS = ("neco",)
DEFAULT_ANCHOR = "vtm"
PLOT_METRICS = ("psnr-rgb", "ms-ssim-rgb")
EXIT_INTERRUPTED = 130


def _fail(message: str, exit_code: int = 1) -> click.ClickException:
    from neco.plugins.cli import CliError  # the CLI module imports this one: import late
    return CliError(message, exit_code)


def _warn(message: str) -> None:
    click.echo(f"neco: warning: {message}", err=True)


def _reference_folders(option: str | None) -> list[Path]:
    if option is not None:
        return [Path(option)]
    candidates = [os.environ.get("NECO_REFERENCES"), "../shared/reference/kodak",
                  Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "kodak"]
    found: list[Path] = []
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if path.is_dir() and all(path.resolve() != f.resolve() for f in found):
            found.append(path)
    return found


def _qualities(values: tuple[str, ...]) -> list[float] | None:
    if not values:
        return None
    try:
        parsed = [float(v) for text in values for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError as exc:
        raise click.BadParameter(f"not a number list: {' '.join(values)!r}", param_hint="'--quality'") from exc
    return sorted(set(parsed))


def _codecs(specs: tuple[str, ...], qualities: list[float] | None) -> dict[str, tuple[Codec, list[float]]]:
    """Usable codecs by label, each with its rate points; unavailable ones are warned about."""
    chosen: dict[str, tuple[Codec, list[float]]] = {}
    for spec in specs or DEFAULT_CODECS:
        try:
            codec = make_codec(spec)
            points = qualities or list(codec.default_qualities)
            for q in points:
                codec.check_quality(q)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--codec' / '--quality'") from exc
        reason = codec.unavailable()
        if reason:
            _warn(f"{codec.label} unavailable: {reason}")
        elif codec.label not in chosen:
            chosen[codec.label] = (codec, points)
    if not chosen:
        raise _fail("none of the codecs asked for is available")
    return chosen


def _list_codecs() -> None:
    for name, kind in CODECS.items():
        codec = kind()
        reason = codec.unavailable()
        status = f"unavailable: {reason}" if reason else codec.describe()
        grid = " ".join(f"{q:g}" for q in codec.default_qualities)
        click.echo(f"{name:<6} {status}\n       default qualities: {grid}")


def _bd_report(curves: list[report.Curve], anchors: list[report.Curve], metric: str,
               out_dir: Path | None) -> None:
    """Print one BD table per anchor; save them in DIR when there is one."""
    texts, tables = [], {}
    for anchor in anchors:
        rows = report.bd_table(anchor, [c for c in curves if c is not anchor], metric)
        texts.append(report.format_bd_table(anchor.name, metric, rows))
        tables[anchor.name] = {r["name"]: {"bd-rate": r["bd-rate"], "bd-quality": r["bd-quality"],
                                           "note": r["note"]} for r in rows}
    if not texts:
        return
    text = "\n\n".join(texts)
    click.echo(text)
    if out_dir is not None:
        report.write_atomic(out_dir / "bd-rate.txt", text + "\n")
        method = "Bjøntegaard delta, pchip interpolation over the overlapping range; " \
                 "bd-rate in % at equal quality, bd-quality in dB at equal rate (MS-SSIM in dB)"
        saved = {"metric": metric, "method": method, "anchors": tables}
        report.write_atomic(out_dir / "bd-rate.json", json.dumps(saved, indent=2) + "\n")


def _plots(curves: list[report.Curve], anchors: list[report.Curve], out_dir: Path, title: str) -> None:
    from neco.plugins.eval_plot import plot_rd
    for metric in PLOT_METRICS:
        written = plot_rd(curves, anchors, metric, out_dir / f"rd-{metric}", title)
        if written is None:
            _warn("matplotlib is not installed (pip install matplotlib): no RD plots")
            return
        if written:
            click.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)


def _group_line(label: str, quality: float, rows: list[dict]) -> str:
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return f"{label} q={quality:g}: every image failed"
    mean = lambda key: sum(r[key] for r in ok) / len(ok)  # noqa: E731
    msssim = [r["ms-ssim-rgb"] for r in ok]
    ms = f"  MS-SSIM {sum(msssim) / len(msssim):.4f}" if None not in msssim else ""
    return (f"{label} q={quality:g}: {mean('bpp'):.4f} bpp  {mean('psnr-rgb'):.2f} dB{ms}  "
            f"encode {mean('encoding_time'):.3f} s  decode {mean('decoding_time'):.3f} s  ({len(ok)} images)")


def _run(dataset: Path, codecs: dict[str, tuple[Codec, list[float]]], out_dir: Path, jobs: int,
         limit: int | None, verbose: bool) -> tuple[list[report.Curve], int]:
    """Measure everything (from the cache where possible); write JSON and CSV per codec."""
    from neco.plugins.eval_cache import ResultCache
    from neco.plugins.eval_run import Progress, find_images, make_tasks, run

    images, skipped = find_images(dataset, limit)
    for name, reason in skipped:
        _warn(f"skipped {name}: {reason}")
    if not images:
        raise _fail(f"{click.format_filename(str(dataset))}: no readable images")
    out_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"neco eval: {len(images)} images from {dataset}"
               f"{f' ({len(skipped)} skipped)' if skipped else ''} -> {out_dir}", err=True)
    for label, (codec, points) in codecs.items():
        click.echo(f"  {label}: {codec.describe()}; qualities {' '.join(f'{q:g}' for q in points)}", err=True)
    tasks = make_tasks(codecs, images)
    left = {label: len(points) * len(images) for label, (_codec, points) in codecs.items()}
    groups: dict[tuple[str, float], list[dict]] = {}
    rows: dict[str, list[dict]] = {label: [] for label in codecs}
    curves = []
    progress = Progress(len(tasks), click.echo, click.get_text_stream("stderr").isatty())

    def on_interrupt(running: int) -> None:
        plural = "s" if running > 1 else ""
        progress.log(f"interrupted; waiting for the {running} measurement{plural} already handed to workers")

    with ResultCache(out_dir) as cache:
        cached_before = len(cache)
        try:
            for task, row, cached in run(tasks, cache, jobs, on_interrupt):
                progress.advance(f"{task.codec_label} q={task.quality:g} {task.image.name}", cached)
                if "error" in row:
                    progress.log(f"neco: warning: {task.codec_label} q={task.quality:g} "
                                 f"{task.image.name} failed: {row['error']}")
                elif verbose:
                    progress.log(f"{task.codec_label} q={task.quality:g} {task.image.name}: "
                                 f"{row['bpp']:.4f} bpp {row['psnr-rgb']:.2f} dB{' (cached)' if cached else ''}")
                group = groups.setdefault((task.codec_label, task.quality), [])
                group.append(row)
                if len(group) == len(images):
                    progress.log(_group_line(task.codec_label, task.quality, group))
                rows[task.codec_label].append(row)
                left[task.codec_label] -= 1
                if left[task.codec_label] == 0:
                    codec, points = codecs[task.codec_label]
                    curves.append(_write_codec(codec, points, rows[task.codec_label], dataset, jobs,
                                               out_dir, progress))
        except KeyboardInterrupt:
            progress.close()
            raise _fail(f"interrupted; {len(cache)} measurements are cached in {cache.path} "
                        f"({len(cache) - cached_before} new): run the same command to continue",
                        EXIT_INTERRUPTED) from None
        finally:
            progress.close()
    return curves, len(images)


def _write_codec(codec: Codec, points: list[float], rows: list[dict], dataset: Path, jobs: int,
                 out_dir: Path, progress) -> report.Curve:
    ok = [r for r in rows if "error" not in r]
    extra = {"codec": {"name": codec.name, "version": codec.version(), "settings": codec.settings()},
             "dataset": str(dataset)}
    result, left_out = report.summarize(codec.label, "", points, ok, extra)
    result["description"] = (
        f"{codec.describe()}; mean over the {result['images']} images of {dataset.resolve().name} of "
        "per-image bpp (file bytes*8/pixels), RGB PSNR, BT.709 Y PSNR and RGB MS-SSIM; encoding/decoding "
        f"seconds per image on this machine ({jobs} job{'s' if jobs > 1 else ''})")
    if left_out:
        n_images = len({r["image"] for r in rows})
        progress.log(f"neco: warning: {codec.label}: {len(left_out)} of {n_images} images left out of "
                     f"the means (failed at some quality): {', '.join(left_out)}")
    json_path, csv_path = out_dir / f"{codec.label}.json", out_dir / f"{codec.label}.csv"
    report.write_atomic(json_path, report.to_json(result))
    report.write_atomic(csv_path, report.to_csv(ok))
    progress.log(f"wrote {json_path}, {csv_path}")
    return report.load_curve(json_path)


def _resolve(names: tuple[str, ...] | list[str], folders: list[Path]) -> list[report.Curve]:
    curves = []
    for name in names:
        try:
            path = report.resolve_curve(name, folders)
            curves.append(report.load_curve(path, None if name.endswith(".json") else name))
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    return curves


@click.command("eval")
@click.argument("inputs", nargs=-1, metavar="DATASET | --compare RESULT...")
@click.option("-c", "--codec", "specs", multiple=True, metavar="NAME[:KEY=VALUE,...]",
              help=f"Codec to measure, repeatable: {', '.join(CODECS)}; options e.g. avif:speed=6 "
                   f"[default: {' '.join(DEFAULT_CODECS)}].")
@click.option("-q", "--quality", "qualities", multiple=True, metavar="Q[,Q...]",
              help="Rate points (codec quality 0-100) for every codec; default: each codec's grid.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for results, cache and plots (required for a run).")
@click.option("-j", "--jobs", type=click.IntRange(1), default=1, show_default=True,
              help="Parallel worker processes.")
@click.option("--anchor", "anchors", multiple=True, metavar="NAME|FILE",
              help="Curve for BD tables, drawn dashed; repeatable [default: vtm when found; with "
                   "--compare, the first RESULT].")
@click.option("--metric", type=click.Choice(report.METRICS), default="psnr-rgb", show_default=True,
              help="Quality metric of the BD table.")
@click.option("--references", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of reference curves [default: $NECO_REFERENCES or ../shared/reference/kodak].")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images.")
@click.option("--compare", is_flag=True, help="BD tables and plots of saved RESULT files; no codec runs.")
@click.option("--no-plot", is_flag=True, help="Write no RD plots.")
@click.option("--list-codecs", is_flag=True, help="List the codecs, their versions and availability.")
@click.option("-v", "--verbose", is_flag=True, help="One progress line per measurement.")
def eval_command(inputs: tuple[str, ...], specs: tuple[str, ...], qualities: tuple[str, ...],
                 out_dir: str | None, jobs: int, anchors: tuple[str, ...], metric: str,
                 references: str | None, limit: int | None, compare: bool, no_plot: bool,
                 list_codecs: bool, verbose: bool) -> None:
    """Rate-distortion bench: measure codecs on the images of DATASET, or --compare results."""
    if list_codecs:
        _list_codecs()
        return
    folders = _reference_folders(references)
    out = Path(out_dir) if out_dir is not None else None
    if compare:
        if not inputs:
            raise click.UsageError("--compare needs at least one RESULT file")
        if specs or qualities:
            raise click.UsageError("--compare runs no codec: drop --codec / --quality")
        curves = _resolve(inputs, ([out] if out else []) + folders)
        anchor_curves = _resolve(anchors, ([out] if out else []) + folders) if anchors else curves[:1]
        title = "RD curves"
    else:
        if len(inputs) != 1:
            raise click.UsageError("give one DATASET folder (or --compare RESULT...)")
        if out is None:
            raise click.UsageError("a run needs -o/--output DIR")
        dataset = Path(inputs[0])
        if not dataset.exists():
            raise _fail(f"{click.format_filename(inputs[0])}: no such file or directory")
        codecs = _codecs(specs, _qualities(qualities))
        if anchors:
            anchor_curves = _resolve(anchors, [out] + folders)
        else:
            try:
                anchor_curves = _resolve([DEFAULT_ANCHOR], folders)
            except click.ClickException:
                anchor_curves = []
        curves, n_images = _run(dataset, codecs, out, jobs, limit, verbose)
        if not anchor_curves and len(curves) > 1:
            anchor_curves = curves[:1]
        title = f"{dataset.resolve().name} ({n_images} image{'s' if n_images > 1 else ''})"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    _bd_report(curves, anchor_curves, metric, out)
    if out is not None and not no_plot:
        _plots([c for c in curves if all(c is not a for a in anchor_curves)], anchor_curves, out, title)
