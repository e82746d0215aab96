"""Coding and container overhead on Kodak, measured on real files.

    python tools/measure_overhead.py [--quality 0 50 100] [--limit N]

coding overhead: ANS-coder output bits vs the ideal code length (cross-entropy) of the same
symbols under the model's own integer tables; container overhead: file bytes that are not
ANS-coder output (magic, header, chunk framing, CRCs, the FRAME's first varint, the decoder
adaptation's block and the table offsets' row byte). The cross-entropy counts every coded
symbol: the adaptation's and the offsets', z and y.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from neco.codec.session import encode_array

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quality", type=float, nargs="+", default=[0, 50, 100])
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args()
    files = sorted(KODAK.glob("*.png"))[:args.limit or None]
    for q in args.quality:
        coded, ideal, container, share, bpp = [], [], [], [], []
        for f in files:
            x = np.asarray(Image.open(f).convert("RGB"))
            r = encode_array(x, quality=q)
            coded.append(r.stats["coded_bits"])
            ideal.append(r.stats["cross_entropy_bits"])
            container.append(len(r.data) - r.stats["coded_bits"] // 8)
            share.append(container[-1] / len(r.data))
            bpp.append(r.bpp)
        print(f"quality {q:5.1f}: {np.mean(bpp):.4f} bpp; coding overhead "
              f"{100 * (sum(coded) / sum(ideal) - 1):+.3f} % ({sum(coded)} vs {sum(ideal):.0f} bits); "
              f"container {np.mean(container):.1f} bytes/file = {100 * np.mean(share):.2f} % of the file")


if __name__ == "__main__":
    main()
