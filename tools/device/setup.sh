# Sourced on the GPU machine by bench.sh and train.sh: installs the carried constriction wheel,
# makes neco importable from this tree (its package folders, as pyproject.toml maps them) and
# unpacks the carried photos to PNG in /tmp/train (kept between calls while the machine is warm).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
mkdir -p /tmp/pkg && ln -sfn "$PWD/api" /tmp/pkg/neco
for d in codec formats plugins; do ln -sfn "$PWD/$d" "api/$d"; done
export PYTHONPATH=/tmp/pkg:/tmp/site PYTHONUNBUFFERED=1
mkdir -p /tmp/train
python3 - <<'PY'
from multiprocessing import Pool
from pathlib import Path
from PIL import Image

def unpack(f):
    out = Path("/tmp/train") / (f.stem + ".png")
    if not out.exists():
        Image.open(f).save(out, compress_level=0)

with Pool(16) as pool:
    pool.map(unpack, sorted(Path(".gpu").glob("[ab]/*.webp")))
PY
echo "setup: $(ls /tmp/train | wc -l) photos in /tmp/train"
