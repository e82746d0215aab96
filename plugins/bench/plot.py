"""RD plots of `neco eval`: one PNG and one SVG per metric, one curve per codec, anchors dashed.

matplotlib is optional (``pip install neco[plot]``): without it `plot_rd` returns None and the
caller warns; nothing else of the bench needs it. Figures are drawn with matplotlib's
object API (no pyplot, no global backend switch), and the SVG carries no date, so the same
results give the same file.
"""

from __future__ import annotations

from pathlib import Path

from neco.plugins.atomic import atomic_path
from neco.plugins.bench.perceptual import PERCEPTUAL
from neco.plugins.bench.report import Curve

AXIS_LABELS = {"psnr-rgb": "PSNR (RGB) [dB]", "psnr-y": "PSNR (Y, BT.709) [dB]",
               "ms-ssim-rgb": "MS-SSIM (RGB) [dB, -10 log10(1 - MS-SSIM)]",
               "ssimulacra2": "SSIMULACRA2 [higher is better, 100 = identical]",
               "flip": "FLIP mean error [lower is better, 0 = identical]",
               "vmaf": "VMAF v0.6.1 [higher is better]"}
# Metrics that fall as the rate rises: their curves run from the upper left.
LOWER_IS_BETTER = frozenset(m.name for m in PERCEPTUAL.values() if not m.higher_is_better)


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_rd(curves: list[Curve], anchors: list[Curve], metric: str, out_base: Path,
            title: str) -> list[Path] | None:
    """Draw `metric` over bpp; write ``<out_base>.png`` and ``.svg``. None without matplotlib.

    Returns the files written (none when no curve has the metric).
    """
    if not matplotlib_available():
        return None
    import matplotlib
    from matplotlib.figure import Figure

    drawn = [(c, False) for c in curves] + [(c, True) for c in anchors]
    drawn = [(c, dashed, c.points(metric)) for c, dashed in drawn]
    drawn = [(c, dashed, p) for c, dashed, p in drawn if p is not None and len(p[0])]
    if not drawn:
        return []
    with matplotlib.rc_context({"svg.hashsalt": "neco-eval", "font.size": 9}):
        figure = Figure(figsize=(7, 5), layout="constrained")
        axes = figure.add_subplot()
        for curve, dashed, (rate, value) in drawn:
            order = rate.argsort()
            axes.plot(rate[order], value[order], linestyle="--" if dashed else "-",
                      marker="" if dashed else "o", markersize=3.5, linewidth=1.2 if dashed else 1.6,
                      label=curve.name)
        axes.set_xlabel("rate [bits per pixel]")
        axes.set_ylabel(AXIS_LABELS.get(metric, metric))
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper right" if metric in LOWER_IS_BETTER else "lower right")
        written = []
        for suffix, options in ((".png", {"dpi": 150}), (".svg", {"metadata": {"Date": None}})):
            path = out_base.with_name(out_base.name + suffix)
            with atomic_path(path) as tmp:
                figure.savefig(tmp, format=suffix[1:], **options)
            written.append(path)
    return written
