"""BD-rate of the holdout validation curves in training logs, against one logged step.

    python tools/validation_bd.py tools/checkpoints/train.log 13500 [other.log ...] [--slow]

Reads the `validate step N:` lines train_image.py prints (one bpp/dB point per rate level) and
prints, for every logged step from the reference on, the BD-rate (pchip, over the overlapping
range) over all levels, the low six and the high six: the measure to compare training runs by
(a loss averaged over levels is dominated by the high rates). With --slow, the curves compared
are those of the slow weight average (`validate slow step N:` lines), still against the
reference step's `validate step` curve.
"""

import re
import sys

from neco.plugins.bench.bdrate import bd_rate


def validation_curves(path: str, label: str = "validate") -> dict[int, tuple[list[float], list[float]]]:
    """step -> (bpp per level, PSNR per level) from a training log's `<label> step N:` lines."""
    curves = {}
    with open(path) as f:
        for line in f:
            m = re.match(label + r" step (\d+): loss [\d.]+ (.*)", line)
            if m:
                points = re.findall(r"([\d.]+)bpp/([\d.]+)dB", m.group(2))
                curves[int(m.group(1))] = ([float(b) for b, _ in points], [float(q) for _, q in points])
    return curves


def main():
    args = [a for a in sys.argv[1:] if a != "--slow"]
    label = "validate slow" if "--slow" in sys.argv else "validate"
    if len(args) < 2:
        raise SystemExit(__doc__)
    ref_log, ref_step = args[0], int(args[1])
    ref_rate, ref_psnr = validation_curves(ref_log)[ref_step]
    for path in args[2:] or [ref_log]:
        for step, (rate, psnr) in sorted(validation_curves(path, label).items()):
            if step >= ref_step:
                low = bd_rate(ref_rate[:6], ref_psnr[:6], rate[:6], psnr[:6])
                high = bd_rate(ref_rate[-6:], ref_psnr[-6:], rate[-6:], psnr[-6:])
                print(f"{path} step {step}: BD-rate {bd_rate(ref_rate, ref_psnr, rate, psnr):+.2f} % "
                      f"(low levels {low:+.2f}, high {high:+.2f})")


if __name__ == "__main__":
    main()
