"""Decode and encode speed of neco beside AVIF, measured in one process and one run (issue 40).

    python tools/bench_speed.py [--limit N] [--k 3] [--threads N] [--large 4000x3000] [--json PATH]

Absolute times on a shared 2-core machine drift with its load, so what this reports is the
ratio neco / AVIF: within each round the codecs are timed one after the other on the same
input, and each keeps its best of k rounds (after one untimed warm-up), so drifts in load hit
both alike. Bursts do not: a decode of seconds is interrupted where one of milliseconds slips
through, so on a busy machine the ratio comes out high; compare runs on an idle one.

1. Kodak decode: neco at the API's default quality (``neco.encode(x)``, no quality given),
   decoded by ``neco.decode_array``, against AVIF (libavif through Pillow, the RD bench's
   settings: `AvifCodec`, speed 4, 4:2:0) at the quality whose file is nearest neco's size
   (`Codec.find_quality`) and at Pillow's default quality. Encoding happens before timing.
2. A large photo (default 4000x3000: 16 training photos, 4:3 centre crops, tiled 4x4): decode
   time of neco (once by default, ``--large-k``) and of size-matched AVIF (best of k), and each
   one's peak RSS (VmHWM) decoding it in a fresh subprocess, as
   tests/codec/image_hp/test_decode_memory.py measures it.
3. Effort-0 encode of a 64x64 crop, a 640x360 video frame and a Kodak image, beside AVIF's
   encode at Pillow's default quality.

``--threads N`` gives both codecs N threads (torch.set_num_threads; libavif's max_threads);
without it each keeps its own default; the header prints both.
"""

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import AvifImagePlugin, Image

import neco
from neco.plugins.adapters.av_io import AvReader
from neco.plugins.atomic import write_atomic
from neco.plugins.bench.codecs import AvifCodec, NecoCodec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
AVIF = AvifCodec()

# Decodes `.neco` or AVIF bytes in a fresh process, as a viewer would, and prints its peak RSS in kB.
_PEAK_RSS_CHILD = """
import sys
data, threads = open(sys.argv[2], "rb").read(), int(sys.argv[3])
if sys.argv[1] == "neco":
    import torch
    import neco
    if threads:
        torch.set_num_threads(threads)
    neco.decode_array(data)
else:  # Pillow alone, without neco and torch in memory
    import io
    import numpy
    from PIL import AvifImagePlugin, Image
    if threads:
        AvifImagePlugin.DEFAULT_MAX_THREADS = threads
    numpy.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def avif_default(pixels: np.ndarray) -> bytes:
    """AVIF with the bench's settings at Pillow's default quality (no quality passed)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="AVIF", **AVIF.config)
    return buffer.getvalue()


def best_times(calls: dict, k: int, warmup: bool = True) -> dict[str, float]:
    """Best of k rounds per call, in seconds; each round calls every one once, in turn."""
    if warmup:
        for call in calls.values():
            call()
    best = {name: float("inf") for name in calls}
    for _ in range(k):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def ratios(slow: list[float], fast: list[float]) -> dict[str, float]:
    """slow / fast two ways: the mean of the per-item ratios, and the ratio of the means."""
    return {"mean_of_ratios": statistics.fmean(s / f for s, f in zip(slow, fast)),
            "ratio_of_means": statistics.fmean(slow) / statistics.fmean(fast)}


def table(header: list[str], rows: list[list]) -> str:
    """Plain-text columns, right-aligned (the first left-aligned); floats as given by `cell`."""
    cells = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in cells)


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 100 else f"{value:#.3g}"
    return str(value)


def photo_composite(width: int, height: int) -> np.ndarray:
    """A (height, width, 3) photo: 16 training photos cut to the tile's aspect, resized, tiled 4x4."""
    tw, th = -(-width // 4), -(-height // 4)
    tiles = []
    for path in sorted((SHARED / "train").glob("*.png"))[:16]:
        im = Image.open(path).convert("RGB")
        cw, ch = min(im.width, im.height * tw // th), min(im.height, im.width * th // tw)
        x0, y0 = (im.width - cw) // 2, (im.height - ch) // 2
        tiles.append(np.asarray(im.crop((x0, y0, x0 + cw, y0 + ch)).resize((tw, th), Image.Resampling.LANCZOS)))
    rows = [np.concatenate(tiles[r * 4:r * 4 + 4], axis=1) for r in range(4)]
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:height, :width])


def peak_rss_mib(codec: str, data: bytes, threads: int, tmp: Path) -> float:
    path = tmp / f"large.{codec}"
    path.write_bytes(data)
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS_CHILD, codec, str(path), str(threads)],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"the {codec} decode for peak RSS failed:\n{out.stderr}")
    return int(out.stdout.split()[-1]) / 1024


def log(text: str) -> None:
    """Progress, on stderr apart from the tables."""
    print(text, file=sys.stderr, flush=True)


def bpp(data: bytes, pixels: np.ndarray) -> float:
    return 8 * len(data) / (pixels.shape[0] * pixels.shape[1])


def header_lines(threads: int) -> list[str]:
    import torch
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")),
                     []))
    has = {flag: "yes" if flag in flags else "no" for flag in ("avx512_bf16", "amx_tile")}
    return [f"cpu: {model}; avx512_bf16 {has['avx512_bf16']}, amx {has['amx_tile']}",
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; libavif max_threads "
            f"{AvifImagePlugin._get_default_max_threads()} ({'--threads' if threads else 'defaults'})",
            f"neco: {NecoCodec().version()}",
            f"avif: {AVIF.describe()}, decoder {AvifImagePlugin.DECODE_CODEC_CHOICE} "
            f"(dav1d {AvifImagePlugin.get_codec_version('dav1d') or 'absent'})"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=0, help="first N Kodak images (default: all 24)")
    p.add_argument("--k", type=int, default=3, help="timed rounds per input, best kept (default 3)")
    p.add_argument("--large", default="4000x3000", help="large photo WxH (default 4000x3000)")
    p.add_argument("--large-k", type=int, default=1, help="timed rounds of the large decode (default 1, no warm-up)")
    p.add_argument("--threads", type=int, default=0, help="threads for both codecs (default: their defaults)")
    p.add_argument("--json", type=Path, help="write every number here")
    args = p.parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
        AvifImagePlugin.DEFAULT_MAX_THREADS = args.threads
    head = header_lines(args.threads)
    print("\n".join(head), flush=True)
    result = {"header": head, "k": args.k, "threads": args.threads}

    rows, kodak = [], []
    for path in sorted((SHARED / "kodak").glob("*.png"))[:args.limit or None]:
        x = np.asarray(Image.open(path).convert("RGB"))
        ours = neco.encode(x)
        q = AVIF.find_quality(x, bpp(ours, x))
        matched, default = AVIF.encode(x, q), avif_default(x)
        t = best_times({"neco": lambda: neco.decode_array(ours), "matched": lambda: AVIF.decode(matched),
                        "default": lambda: AVIF.decode(default)}, args.k)
        level = next(c["rate_level"] for c in neco.info(ours)["chunks"] if c["type"] == "FRAME")
        kodak.append({"image": path.stem, "neco_rate_level": level, "neco_bpp": bpp(ours, x), "avif_quality": q,
                      "avif_bpp": bpp(matched, x), "avif_default_bpp": bpp(default, x),
                      **{f"{name}_s": s for name, s in t.items()}})
        rows.append([path.stem, bpp(ours, x), 1e3 * t["neco"], int(q), bpp(matched, x), 1e3 * t["matched"],
                     t["neco"] / t["matched"], bpp(default, x), 1e3 * t["default"], t["neco"] / t["default"]])
        log(f"{path.stem}: decode neco {t['neco']:.3f} s, avif {t['matched']:.4f} s")
    neco_s = [r["neco_s"] for r in kodak]
    result["kodak"] = {"images": kodak, "vs_matched": ratios(neco_s, [r["matched_s"] for r in kodak]),
                       "vs_default": ratios(neco_s, [r["default_s"] for r in kodak])}
    print(f"\nKodak decode, best of {args.k} (ms); neco at the API default quality (rate level "
          f"{kodak[0]['neco_rate_level']}), AVIF size-matched (q) and at Pillow's default quality")
    print(table(["image", "neco bpp", "neco ms", "q", "avif bpp", "avif ms", "ratio", "dflt bpp", "dflt ms", "ratio"],
                rows + [["mean"] + [statistics.fmean(col) for col in list(zip(*rows))[1:]]]))
    for name, label in (("vs_matched", "size-matched"), ("vs_default", "Pillow default quality")):
        r = result["kodak"][name]
        print(f"ratio neco/AVIF decode ({label}): mean of per-image ratios {r['mean_of_ratios']:.1f}x, "
              f"ratio of means {r['ratio_of_means']:.1f}x")

    width, height = (int(v) for v in args.large.split("x"))
    x = photo_composite(width, height)
    start = time.perf_counter()
    ours = neco.encode(x)
    encode_s = time.perf_counter() - start
    log(f"large {width}x{height}: neco encode {encode_s:.1f} s; AVIF quality search")
    q = AVIF.find_quality(x, bpp(ours, x))
    matched = AVIF.encode(x, q)
    log(f"large: AVIF q{int(q)}; timing the decodes")
    t = best_times({"neco": lambda: neco.decode_array(ours)}, args.large_k, warmup=args.large_k > 1)
    t |= best_times({"avif": lambda: AVIF.decode(matched)}, args.k)  # right after; cheap, so warm and best of k
    with tempfile.TemporaryDirectory() as tmp:
        rss = {name: peak_rss_mib(name, data, args.threads, Path(tmp))
               for name, data in (("neco", ours), ("avif", matched))}
    result["large"] = {"size": [width, height], "neco_encode_s": encode_s, "neco_bpp": bpp(ours, x),
                       "avif_quality": q, "avif_bpp": bpp(matched, x), **{f"{n}_s": s for n, s in t.items()},
                       **{f"{n}_peak_rss_mib": v for n, v in rss.items()}}
    print(f"\n{width}x{height} photo decode ({width * height / 1e6:.1f} MP), neco best of {args.large_k}, AVIF of "
          f"{args.k}; peak RSS of a fresh process decoding it (neco: with torch and the model; AVIF: Pillow alone)")
    print(table(["codec", "bpp", "decode s", "peak RSS MiB"],
                [["neco", bpp(ours, x), t["neco"], rss["neco"]],
                 [f"avif q{int(q)}", bpp(matched, x), t["avif"], rss["avif"]]]))
    print(f"ratio neco/AVIF decode ({width}x{height}): {t['neco'] / t['avif']:.1f}x; "
          f"neco's effort-0 encode of it took {encode_s:.1f} s (once, cold at this size)")

    kodim = np.asarray(Image.open(sorted((SHARED / "kodak").glob("*.png"))[0]).convert("RGB"))
    frame = next(iter(AvReader(str(SHARED / "video" / "vtest.avi"), frames=(0, 1), scale=(640, 360))))
    inputs = {"64x64 crop": kodim[224:288, 352:416], "640x360 frame": frame, "kodak 768x512": kodim}
    rows, result["encode"] = [], {}
    for name, pixels in inputs.items():
        t = best_times({"neco": lambda: neco.encode(pixels), "avif": lambda: avif_default(pixels)}, args.k)
        result["encode"][name] = t
        rows.append([name, t["neco"], t["avif"], t["neco"] / t["avif"]])
        log(f"encode {name}: neco {t['neco']:.2f} s")
    print(f"\nEffort-0 encode, best of {args.k} (s); AVIF at Pillow's default quality")
    print(table(["input", "neco s", "avif s", "ratio"], rows))
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
