#!/usr/bin/env bash
# Pack what a lent GPU machine (the workplace's `device` tool) needs and lacks into .gpu/ (ignored
# by git, so a call carries it only where named): the training photos as lossless WebP in two halves (a call
# carries at most 64 MiB: the PNGs are 84 MB, the WebPs ~35 MB a half) and constriction's wheel
# for the machine's Python 3.12. Run here, in the repository root, once per machine.
set -euo pipefail
mkdir -p .gpu/a .gpu/b .gpu/whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl constriction==0.5.0
python3 - <<'PY'
from multiprocessing import Pool
from pathlib import Path
from PIL import Image

def pack(f):  # photos 001-024 in the first half, the rest (and the holdout 046-049) in the second
    half = ".gpu/a" if int(f.stem) <= 24 else ".gpu/b"
    Image.open(f).save(f"{half}/{f.stem}.webp", "WEBP", lossless=True, quality=100, method=4)

with Pool(2) as pool:
    pool.map(pack, sorted(Path("../shared/data/train").glob("*.png")))
PY
du -sh .gpu/a .gpu/b .gpu/whl
