"""Bjøntegaard delta rate (BD-rate) with piecewise cubic Hermite (pchip) interpolation.

G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves" (VCEG-M33, 2001),
with the monotone pchip interpolation of log-rate over quality that common tools use instead
of the original cubic fit (Fritsch & Carlson 1980 slopes, as in Matlab's / SciPy's pchip).
BD-rate is the mean log-rate difference over the overlapping quality range: negative means
the test codec needs fewer bits than the anchor for the same quality.
"""

import numpy as np


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = np.diff(x)
    delta = np.diff(y) / h
    if len(x) == 2:
        return np.array([delta[0], delta[0]])
    d = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def edge(h0, h1, m0, m1):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(e) > 3 * abs(m0):
            return 3 * m0
        return e

    d[0] = edge(h[0], h[1], delta[0], delta[1])
    d[-1] = edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


def pchip_integral(x, y, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the pchip interpolant through (x, y); x strictly increasing."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        delta = (y[k + 1] - y[k]) / h
        c = (y[k], d[k], (3 * delta - 2 * d[k] - d[k + 1]) / h, (d[k] + d[k + 1] - 2 * delta) / h ** 2)
        prim = lambda s: c[0] * s + c[1] * s ** 2 / 2 + c[2] * s ** 3 / 3 + c[3] * s ** 4 / 4
        total += prim(b - x[k]) - prim(a - x[k])
    return total


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
    """BD-rate of test vs anchor in percent (rates in bpp or bits, quality in dB)."""
    curves = []
    for rate, quality in ((anchor_rate, anchor_quality), (test_rate, test_quality)):
        q, r = np.asarray(quality, float), np.asarray(rate, float)
        order = np.argsort(q)
        if len(q) < 2 or np.any(np.diff(q[order]) <= 0) or np.any(r <= 0):
            raise ValueError("each curve needs >= 2 points of distinct quality and positive rate")
        curves.append((q[order], np.log(r[order])))
    lo = max(c[0][0] for c in curves)
    hi = min(c[0][-1] for c in curves)
    if hi <= lo:
        raise ValueError("the curves do not overlap in quality")
    mean_diff = (pchip_integral(*curves[1], lo, hi) - pchip_integral(*curves[0], lo, hi)) / (hi - lo)
    return float((np.exp(mean_diff) - 1) * 100)
