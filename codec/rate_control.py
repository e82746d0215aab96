"""Rate control for one frame (encoder side): a quality maps to a rate position, a target bpp
is found by search over the rate positions."""

import warnings

import numpy as np
import torch

# Rate search: stop when the achieved rate is this close to the target (relative).
BPP_TOLERANCE = 0.01
# Rate search: full codings (refinement, decoder adaptation) at most (see search_rate).
SEARCH_ROUNDS = 3


def code_frame(coder, pixels: np.ndarray, quality: float | None, bpp: float | None,
               device: str, effort: int) -> tuple[bytes, dict]:
    """One (H, W, 3) uint8 frame -> its FRAME payload and stats, at a quality (default 75) or a
    target bpp (searched); coder is a family.FrameEncoder."""
    h, w = pixels.shape[:2]
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    y0 = coder.analyse(x, device)

    def code(rate_fx: int, probe: bool = False) -> tuple[bytes, dict]:
        """The frame coded at a rate position: fully, or as a rate search's probe (latents as
        analysed, no adaptation: one forward pass)."""
        return coder.code_latents(y0, rate_fx, 0, None) if probe else coder.code_latents(y0, rate_fx, effort, x)

    if bpp is None:
        return code(coder.rate_fx_from_quality(75.0 if quality is None else quality))
    return search_rate(code, coder.max_rate_fx, bpp * h * w / 8)


def search_rate(code, max_rate_fx: int, target_bytes: float) -> tuple[bytes, dict]:
    """The payload closest to target_bytes; code(rate_fx, probe) codes the frame at a rate
    position (size grows with it).

    The rate position is bisected with probes (one forward pass each). Refinement and the
    decoder adaptation then change the size at a given position, so the probes' goal is
    rescaled by the full/probe size ratio seen and the search repeats: a few full codings in
    all rather than one per probe. A target beyond the model's range gives the nearest end of
    the range and a warning.
    """
    def off(coded) -> float:
        return _miss(coded, target_bytes)

    best, goal, tried = None, target_bytes, set()
    for _ in range(SEARCH_ROUNDS):
        rate_fx, _ = _bisect_rate(lambda r: code(r, probe=True), max_rate_fx, goal)
        if rate_fx in tried:  # an end of the range again: the same full coding
            break
        tried.add(rate_fx)
        full = code(rate_fx)
        best = full if best is None or off(full) < off(best) else best
        if off(best) <= BPP_TOLERANCE * target_bytes:
            return best
        goal *= target_bytes / len(full[0])
    if rate_fx in (0, max_rate_fx) and off(best) > BPP_TOLERANCE * target_bytes:
        warnings.warn(f"target rate not reachable; coded at the nearest achievable rate "
                      f"({len(best[0]) / target_bytes:.2f}x the target)", stacklevel=4)
    return best


def _miss(coded: tuple[bytes, dict], target_bytes: float) -> float:
    return abs(len(coded[0]) - target_bytes)


def _bisect_rate(code, max_rate_fx: int, target_bytes: float) -> tuple[int, tuple[bytes, dict]]:
    """(rate position, code(position)) with the size closest to target_bytes; an end of the
    range when the target lies beyond it."""
    def off(coded) -> float:
        return _miss(coded, target_bytes)

    lo, hi = 0, max_rate_fx
    ends = {r: code(r) for r in (lo, hi)}
    if not len(ends[lo][0]) <= target_bytes <= len(ends[hi][0]):
        r = lo if target_bytes < len(ends[lo][0]) else hi
        return r, ends[r]
    best = min(ends.items(), key=lambda rc: off(rc[1]))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        coded = code(mid)
        if off(coded) < off(best[1]):
            best = (mid, coded)
        if off(coded) <= BPP_TOLERANCE * target_bytes:
            break
        lo, hi = (mid, hi) if len(coded[0]) < target_bytes else (lo, mid)
    return best
