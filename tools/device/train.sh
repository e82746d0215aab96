# Second call, at once while the machine is warm (carry .gpu/b and .gpu/whl; /tmp/train keeps the
# first half): fine-tune the shipped weights (or resume /tmp/ck/image-hp.pt, from an earlier call
# on the same machine) and return the averages in fp16 under $OUT, for
# `python tools/train_image.py --export --checkpoint <files_at>/best16.pt` here.
# At LIMIT_S seconds training gets SIGTERM and saves the step it reached (resumable by a next call).
# usage: bash tools/device/train.sh STEPS BATCH LR LIMIT_S [more train_image.py arguments]
STEPS=$1 BATCH=$2 LR=$3 LIMIT=$4; shift 4
source tools/device/setup.sh
mkdir -p /tmp/ck
timeout -k 60 "$LIMIT" python3 tools/train_image.py --device cuda --data /tmp/train --checkpoint /tmp/ck/image-hp.pt \
    --bf16 --batch "$BATCH" --crop 256 --lr "$LR" --steps "$STEPS" --save-every 500 --validate-every 500 "$@" 2>&1 | tee "$OUT/train.log"
python3 - <<'PY'
import os, torch
for src, key, dst in (("/tmp/ck/image-hp-best.pt", "model", "best16.pt"),
                      ("/tmp/ck/image-hp.pt", "ema_slow", "slow16.pt"), ("/tmp/ck/image-hp.pt", "ema", "ema16.pt")):
    if not os.path.exists(src):
        print("missing", src)
        continue
    s = torch.load(src, weights_only=False, map_location="cpu")
    half = {k: v.half() if v.is_floating_point() else v for k, v in s[key].items()}
    torch.save({"config": s["config"], "step": s["step"], "val_loss": s.get("val_loss"), "model": half},
               os.path.join(os.environ["OUT"], dst))
    print("saved", dst, "step", s["step"], "val_loss", s.get("val_loss"))
PY
