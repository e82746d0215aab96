"""Rate-distortion of neco on Kodak: real file sizes, RGB PSNR, BD-rate against the references.

    python tools/eval_kodak.py                       # default qualities -> results/<model>-kodak.json
    python tools/eval_kodak.py --quality 10 50 90 --limit 4

bpp is the mean over images of (file bytes * 8 / pixels), PSNR the mean of per-image RGB PSNR
(the convention of ../shared/reference/kodak/*-measured.json). Writes CompressAI-style JSON.
"""

import argparse
import json
import math
from pathlib import Path
import time

import numpy as np
from PIL import Image

import neco
from neco.codec import registry
from neco.plugins.bdrate import bd_rate

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ANCHORS = ["vtm", "compressai-bmshj2018-hyperprior_mse_cpu", "avif-measured", "webp-measured",
           "jpeg-measured"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255 ** 2 / mse)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quality", type=float, nargs="+", default=[0, 15, 30, 45, 60, 75, 90, 100])
    p.add_argument("--model", default=registry.DEFAULT_IMAGE_MODEL)
    p.add_argument("--data", type=Path, default=SHARED / "data" / "kodak")
    p.add_argument("--limit", type=int, default=0, help="first N images only (quick checks)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    files = sorted(args.data.glob("*.png"))[:args.limit or None]
    rows = {"bpp": [], "psnr-rgb": [], "encoding_time": [], "decoding_time": []}
    for q in args.quality:
        bpp, quality, enc_s, dec_s = [], [], [], []
        for f in files:
            x = np.asarray(Image.open(f).convert("RGB"))
            t0 = time.perf_counter()
            data = neco.encode(x, quality=q, device=args.device, model=args.model)
            t1 = time.perf_counter()
            y = neco.decode_array(data, device=args.device)
            t2 = time.perf_counter()
            bpp.append(8 * len(data) / (x.shape[0] * x.shape[1]))
            quality.append(psnr(x, y))
            enc_s.append(t1 - t0)
            dec_s.append(t2 - t1)
        for k, v in zip(rows, (bpp, quality, enc_s, dec_s)):
            rows[k].append(float(np.mean(v)))
        print(f"quality {q:5.1f}: {rows['bpp'][-1]:.4f} bpp  {rows['psnr-rgb'][-1]:.2f} dB  "
              f"encode {rows['encoding_time'][-1]:.2f} s  decode {rows['decoding_time'][-1]:.2f} s", flush=True)
    result = {"name": f"neco-{args.model}", "description":
              f"neco {neco.__version__}, model {args.model}, {len(files)} Kodak images, mean of per-image "
              f"bpp from file bytes and RGB PSNR; seconds per image on this machine ({args.device})",
              "results": {"quality": args.quality, **rows}}
    ref = SHARED / "reference" / "kodak"
    result["bd-rate"] = {}
    for name in ANCHORS:
        a = json.loads((ref / f"{name}.json").read_text())["results"]
        try:
            result["bd-rate"][name] = bd_rate(a["bpp"], a["psnr-rgb"], rows["bpp"], rows["psnr-rgb"])
            print(f"BD-rate vs {name}: {result['bd-rate'][name]:+.1f} %")
        except ValueError as exc:
            print(f"BD-rate vs {name}: n/a ({exc})")
    out = args.out or ROOT / "results" / f"{args.model}-kodak.json"
    if not args.limit:
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
