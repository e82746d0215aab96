"""Results of `neco eval`: CompressAI-style JSON, per-image CSV, RD curves and BD tables.

JSON per codec, as CompressAI's ``eval_model`` writes it and ``../shared/reference/kodak/``
holds it: ``name``, ``description`` and ``results`` with one value per rate point --
``quality``, ``bpp``, ``psnr-rgb``, ``psnr-y``, ``ms-ssim-rgb``, ``encoding_time`` and
``decoding_time`` (seconds per image) -- plus ``codec`` (version, settings) and ``dataset``.
With target bpps as rate points (``--bpp-grid``), ``results.target-bpp`` holds them and
``results.quality`` the mean quality found. Video results add ``kbps``, bits per frame (by
picture type) and per-frame values (`bench.video`). Perceptual metrics asked for with
``--metric`` (`bench.perceptual`: ``ssimulacra2``, ``flip``, ``vmaf``) add ``results.<name>``
and a CSV column each; RD curves read them too, BD tables stay PSNR / MS-SSIM.
Each value is the mean over images of the per-image value (bpp from the real byte count),
the convention of the reference curves. The per-image values go to ``<codec>.csv``.

Which images a curve averages: the names in ``<codec>.csv`` beside its JSON (per-image
results, as `neco eval` writes them), else the count ``images`` of the JSON, else -- for
files with neither, such as the reference curves -- the whole data set their folder (or
``meta.dataset``) is named after, when it is a known one (`DATASETS`: ``kodak``, the 24
Kodak images). BD tables mark a curve whose images differ from the anchor's (count or
names; a footnote says how); ``matching=True`` restricts both to their common images
where both have per-image results. Reference curves hold means only, so they cannot be
restricted: a run on a subset is compared with them as it is, marked.

BD tables use `bench.bdrate` (Bjøntegaard with pchip over the overlapping range):
BD-rate in percent at equal quality and BD-quality (e.g. BD-PSNR) in dB at equal rate, the
latter interpolating quality over log-rate, its mirror image. MS-SSIM enters both on the dB
scale, -10 log10(1 - MS-SSIM).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np

from neco.plugins.bench.bdrate import bd_rate, pchip_integral
from neco.plugins.bench.metrics import ms_ssim_db
from neco.plugins.bench.perceptual import PERCEPTUAL

METRICS = ("psnr-rgb", "psnr-y", "ms-ssim-rgb")
# What RD curves (and plots) read from a result file; BD tables take METRICS only.
CURVE_METRICS = (*METRICS, *PERCEPTUAL)
CSV_COLUMNS = ("image", "width", "height", "quality", "bytes", "bpp", *METRICS, "encoding_time",
               "decoding_time")
# Older CompressAI files name the RGB metrics without the suffix.
ALIASES = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb"}
# Data sets whose images are known by name: a result file that holds neither per-image results
# nor a count of images, in a folder so named (../shared/reference/kodak), averages all of them.
DATASETS = {"kodak": tuple(f"kodim{i:02d}" for i in range(1, 25))}


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _mean(values: list) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def summarize(name: str, description: str, points: list[float], rows: list[dict],
              extra: dict | None = None, by_bpp: bool = False, mean_keys: tuple[str, ...] = (),
              unit: str = "images", metrics: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """The CompressAI-style result of one codec, and the images left out of its means.

    Means are taken over the images measured at every rate point, so each point averages
    the same images; an image a codec failed on at some point is left out (and returned).
    points: qualities, or with by_bpp target bpps (``results.target-bpp``; ``results.quality``
    is then the mean of the qualities found). mean_keys: more row values to average (video:
    ``kbps``, bits per frame type). unit: what the count of sources is called. metrics: the
    perceptual metrics measured (`bench.perceptual`), averaged after the others.
    """
    point_key = "target_bpp" if by_bpp else "quality"
    by_point: dict[float, dict[str, dict]] = {p: {} for p in points}
    for row in rows:
        by_point.setdefault(row[point_key], {})[row["image"]] = row
    images = set.union(set(), *(set(by_point[p]) for p in points))
    complete = sorted(i for i in images if all(i in by_point[p] for p in points))
    results: dict[str, list] = {"target-bpp": list(points)} if by_bpp else {"quality": list(points)}
    keys = (("quality",) if by_bpp else ()) + ("bpp", *mean_keys, *METRICS, *metrics, "encoding_time",
                                               "decoding_time")
    for key in keys:
        results[key] = [_finite(_mean([by_point[p][i].get(key) for i in complete])) for p in points]
    for key in ("ms-ssim-rgb", *metrics):
        if not any(v is not None for v in results[key]):
            del results[key]  # images too small for the metric
    result = {"name": name, "description": description, **(extra or {}), unit: len(complete),
              "results": results}
    return result, sorted(images - set(complete))


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2) + "\n"


def csv_columns(metrics: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The per-image CSV columns, with those of the perceptual `metrics` after MS-SSIM."""
    at = CSV_COLUMNS.index("encoding_time")
    return (*CSV_COLUMNS[:at], *metrics, *CSV_COLUMNS[at:])


def to_csv(rows: list[dict], columns: tuple[str, ...] = CSV_COLUMNS,
           order: tuple[str, ...] = ("image", "quality")) -> str:
    """CSV of `rows` (missing values empty), sorted by the `order` columns."""
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: tuple(r[k] for k in order)):
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return out.getvalue()


@dataclass
class Curve:
    """One RD curve: mean rate and quality per rate point, from a result JSON."""

    name: str
    bpp: list[float]
    quality: dict[str, list[float | None]] = field(default_factory=dict)
    path: Path | None = None
    images: frozenset[str] | None = None  # the images averaged (`image_key`), when known
    count: int | None = None  # how many images are averaged, when known
    rows: list[dict] | None = None  # per-image results, when there are (the CSV beside the JSON)
    by_bpp: bool = False  # rate points are target bpps (rows keyed by target_bpp)
    dataset: str = ""  # the known data set assumed (`DATASETS`), for messages

    def points(self, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(bpp, values) of the points with that metric, MS-SSIM in dB; None without any."""
        values = self.quality.get(metric)
        if values is None:
            return None
        pairs = [(r, v) for r, v in zip(self.bpp, values) if r is not None and v is not None]
        if not pairs:
            return None
        rate, value = map(np.asarray, zip(*pairs))
        if metric.startswith("ms-ssim"):
            value = np.array([ms_ssim_db(v) for v in value])
        keep = np.isfinite(value) & (rate > 0)
        return rate[keep], value[keep]


def load_curve(path: Path, name: str | None = None) -> Curve:
    """A curve from a CompressAI-style JSON file; ValueError when it is not one.

    Its images come from the per-image CSV beside it when there is one, else from its count
    of images, else from the known data set its folder is named after (`DATASETS`).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        curve = _curve(data["results"], name or data.get("name") or Path(path).stem, Path(path))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a result file with results.bpp ({type(exc).__name__}: {exc})") from exc
    rows = _per_image_rows(Path(path).with_suffix(".csv"), curve.by_bpp)
    if rows:
        return _with_rows(curve, rows)
    count = data.get("images")
    if isinstance(count, int) and not isinstance(count, bool):
        return replace(curve, count=count)
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    dataset = str(meta.get("dataset") or Path(path).resolve().parent.name).lower()
    if dataset in DATASETS:
        return replace(curve, images=frozenset(DATASETS[dataset]), count=len(DATASETS[dataset]), dataset=dataset)
    return curve


def _curve(results: dict, name: str, path: Path | None) -> Curve:
    """The curve of a ``results`` mapping (one list per key, one value per rate point)."""
    bpp = [float(v) if v is not None else None for v in results["bpp"]]
    quality = {}
    for key, values in results.items():
        metric = ALIASES.get(key, key)
        if metric in CURVE_METRICS and isinstance(values, list) and len(values) == len(bpp):
            quality[metric] = values
    return Curve(name, bpp, quality, path, by_bpp="target-bpp" in results)


def image_key(name: str) -> str:
    """How images are matched across result files: the name without its extension, lower case."""
    return str(PurePosixPath(name).with_suffix("")).lower()


def _per_image_rows(csv_path: Path, by_bpp: bool) -> list[dict] | None:
    """The rows of a per-image CSV (numbers as floats, empty as None); None without one."""
    point = "target_bpp" if by_bpp else "quality"
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"image", point, "bpp"} <= set(reader.fieldnames or ()):
                return None  # not per image (a video's CSV is per frame)
            return [{key: value if key == "image" else (float(value) if value else None)
                     for key, value in row.items()} for row in reader]
    except (OSError, ValueError, csv.Error, UnicodeDecodeError):
        return None


def _with_rows(curve: Curve, rows: list[dict]) -> Curve:
    """`curve` with its per-image rows; its images are those measured at every rate point."""
    point = "target_bpp" if curve.by_bpp else "quality"
    by_point: dict[float, set[str]] = {}
    for row in rows:
        by_point.setdefault(row[point], set()).add(image_key(row["image"]))
    images = frozenset.intersection(*map(frozenset, by_point.values())) if by_point else frozenset()
    return replace(curve, rows=rows, images=images, count=len(images))


def restricted(curve: Curve, images: frozenset[str]) -> Curve:
    """`curve` recomputed from its per-image rows over `images` only (means as `summarize` takes them)."""
    if curve.rows is None:
        raise ValueError(f"{curve.name} holds means only, no per-image results")
    point = "target_bpp" if curve.by_bpp else "quality"
    rows = [r for r in curve.rows if image_key(r["image"]) in images]
    points = sorted({r[point] for r in curve.rows})
    result, _left_out = summarize(curve.name, "", points, rows, by_bpp=curve.by_bpp)
    return _with_rows(replace(_curve(result["results"], curve.name, curve.path), by_bpp=curve.by_bpp), rows)


def _described(curve: Curve) -> str:
    count = "?" if curve.count is None else curve.count
    return f"{curve.name} {count} image{'' if count == 1 else 's'}{f' ({curve.dataset})' if curve.dataset else ''}"


def image_mismatch(anchor: Curve, curve: Curve) -> str:
    """How the images `curve` averages differ from the anchor's; '' when the same or not known."""
    if anchor.images is not None and curve.images is not None:
        if anchor.images == curve.images:
            return ""
        common = len(anchor.images & curve.images)
        return f"means over different images: {_described(curve)}, {_described(anchor)}, {common} in common"
    if anchor.count is not None and curve.count is not None and anchor.count != curve.count:
        return f"means over different images: {_described(curve)}, {_described(anchor)}"
    return ""


def resolve_curve(name: str, folders: list[Path]) -> Path:
    """A result file named by path, or by name (``vtm``, ``avif-measured``) in `folders`."""
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        return path
    for folder in folders:
        candidate = folder / f"{name}.json"
        if candidate.is_file():
            return candidate
    where = ", ".join(str(f) for f in folders) or "no folder"
    raise ValueError(f"no result file {name!r} (a path to a .json file, or a name in: {where})")


def bd_quality(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
    """Mean quality difference (test - anchor, dB) at equal rate, over the overlapping log-rates."""
    curves = []
    for rate, quality in ((anchor_rate, anchor_quality), (test_rate, test_quality)):
        r, q = np.log(np.asarray(rate, float)), np.asarray(quality, float)
        order = np.argsort(r)
        if len(r) < 2 or np.any(np.diff(r[order]) <= 0):
            raise ValueError("each curve needs >= 2 points of distinct positive rate")
        curves.append((r[order], q[order]))
    lo = max(c[0][0] for c in curves)
    hi = min(c[0][-1] for c in curves)
    if hi <= lo:
        raise ValueError("the curves do not overlap in rate")
    return float((pchip_integral(*curves[1], lo, hi) - pchip_integral(*curves[0], lo, hi)) / (hi - lo))


def bd_table(anchor: Curve, curves: list[Curve], metric: str = "psnr-rgb", matching: bool = False) -> list[dict]:
    """BD-rate (%) and BD-quality (dB) of each curve against the anchor; None with a reason.

    ``images``: how the images of a curve differ from the anchor's ('' when the same or not
    known). matching=True: where both have per-image results, both are restricted to their
    common images instead (``matched``: how many); elsewhere ``images`` says why not.
    """
    rows = []
    for curve in curves:
        row = {"name": curve.name, "bd-rate": None, "bd-quality": None, "note": "", "images": "", "matched": None}
        row["images"] = differ = image_mismatch(anchor, curve)
        base_curve = anchor
        if differ and matching:
            common = anchor.images & curve.images if anchor.images is not None and curve.images is not None else None
            missing = [c.name for c in (anchor, curve) if c.rows is None]
            if missing:
                row["images"] += f"; not matched: {' and '.join(missing)} hold{'s' if len(missing) == 1 else ''} " \
                                 f"means only"
            elif not common:
                row["images"] += "; not matched: no image in common"
            else:
                base_curve, curve = restricted(anchor, common), restricted(curve, common)
                row["images"], row["matched"] = "", len(common)
        base = base_curve.points(metric)
        test = curve.points(metric)
        if base is None or test is None:
            row["note"] = f"no {metric} in {anchor.name if base is None else curve.name}"
        else:
            for key, function in (("bd-rate", bd_rate), ("bd-quality", bd_quality)):
                try:
                    row[key] = function(base[0], base[1], test[0], test[1])
                except ValueError as exc:
                    row["note"] = str(exc)
        rows.append(row)
    return rows


def format_bd_table(anchor: str, metric: str, rows: list[dict]) -> str:
    """A plain-text table (also valid Markdown-ish columns) of `bd_table` rows; a curve whose
    images differ from the anchor's is marked ``*``, with a footnote saying how."""
    names = [f"{r['name']} *" if r.get("images") else r["name"] for r in rows]
    width = max([len(n) for n in names] + [5])
    quality_head = "BD-PSNR" if metric.startswith("psnr") else "BD-MS-SSIM"
    lines = [f"BD vs {anchor} ({metric}; Bjøntegaard, pchip over the overlapping range):",
             f"{'codec':<{width}}  {'BD-rate':>9}  {quality_head:>10}"]
    for name, r in zip(names, rows):
        rate = "n/a" if r["bd-rate"] is None else f"{r['bd-rate']:+.1f} %"
        quality = "n/a" if r["bd-quality"] is None else f"{r['bd-quality']:+.2f} dB"
        notes = [r["note"]] if r["note"] else []
        if r.get("matched"):
            notes.append(f"on the {r['matched']} images both measured")
        note = f"  ({'; '.join(notes)})" if notes else ""
        lines.append(f"{name:<{width}}  {rate:>9}  {quality:>10}{note}")
    lines += [f"* {r['name']}: {r['images']}" for r in rows if r.get("images")]
    return "\n".join(lines)
