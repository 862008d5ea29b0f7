"""Power-of-two thresholds chosen by an error criterion (HPTQ, Habi et al. 2021, section 3).

A qfx format ``ap_(u)fixed<W, I>`` *is* a power-of-two threshold: its range is
``[-t, t - lsb]`` (signed) or ``[0, t - lsb]`` (unsigned) with ``t = 2**(I - signed)`` and
``lsb = 2**(I - W)``. Choosing I is choosing the threshold. The candidates run from the
no-clipping one (the smallest format whose largest value covers ``max|x|``) down by ``search``
bits; each criterion scores a candidate on the observed values:

- ``"mse"``: mean squared quantisation error (HPTQ's default for activations);
- ``"mae"``: mean absolute error (clips outliers less eagerly than MSE);
- ``"noclip"``: no search: the no-clipping threshold (what a naive max calibration does);
- ``"kl"``: KL divergence between the histogram of the values and that of their quantised
  version (TensorRT's entropy calibration, restricted to power-of-two thresholds).
"""

from __future__ import annotations

import math

import torch

from qfx.fixed.exact import quantize_double

__all__ = ["CRITERIA", "no_clip_int_bits", "choose_int_bits", "quantize_rows", "threshold"]

CRITERIA = ("mse", "mae", "noclip", "kl")
_KL_BINS = 2048


def threshold(int_bits: int, signed: bool) -> float:
    """The power-of-two threshold ``t = 2**(I - signed)`` of a format.

    Example:
        >>> threshold(3, True), threshold(0, False)
        (4.0, 1.0)
    """
    return 2.0 ** (int_bits - int(signed))


def no_clip_int_bits(amax: torch.Tensor, width: int, signed: bool) -> torch.Tensor:
    """The smallest I whose largest value ``2**(I - signed) - 2**(I - W)`` is >= ``amax`` (per
    element of ``amax``); 1 where ``amax`` is 0.

    Example:
        >>> no_clip_int_bits(torch.tensor([1.0, 0.99, 3.0]), 8, True).tolist()
        [2, 1, 3]
    """
    amax = amax.to(torch.float64)
    pos = amax > 0
    i0 = torch.floor(torch.log2(amax.clamp(min=1e-300))) + 1 + int(signed)  # 2**(i0-s) > amax
    top = torch.ldexp(torch.ones_like(amax), (i0 - int(signed)).to(torch.int64)) - torch.ldexp(
        torch.ones_like(amax), (i0 - width).to(torch.int64))
    i = torch.where(top >= amax, i0, i0 + 1)
    return torch.where(pos, i, torch.ones_like(i)).to(torch.int64)


def quantize_rows(x: torch.Tensor, int_bits: torch.Tensor, width: int, signed: bool,
                  rounding: str = "RND", overflow: str = "SAT") -> torch.Tensor:
    """``x`` ([rows, n] float64) quantised with one I per row, as float64 values."""
    frac = (width - int_bits.to(torch.int64)).reshape(-1, 1)
    raw = quantize_double(x, frac, width=width, signed=signed, rounding=rounding,
                          overflow=overflow, sat_bits=0)
    return torch.ldexp(raw.to(torch.float64), (-frac).to(torch.float64))


def _kl_scores(x: torch.Tensor, cands: torch.Tensor, width: int, signed: bool, rounding: str,
               overflow: str) -> torch.Tensor:
    """KL(P || Q) per candidate for one row ``x``: P is the histogram of ``x`` (outliers of a
    candidate folded into its edge bins), Q spreads the mass of each quantisation level evenly
    over the non-empty bins that round to it."""
    hi = float(x.abs().max()) if signed else float(x.max())
    lo = -hi if signed else 0.0
    if hi <= 0:
        return torch.zeros(len(cands), dtype=torch.float64)
    hist = torch.histc(x.clamp(lo, hi), _KL_BINS, lo, hi).to(torch.float64)
    edges = torch.linspace(lo, hi, _KL_BINS + 1, dtype=torch.float64)
    centers = (edges[:-1] + edges[1:]) / 2
    scores = []
    for i in cands.tolist():
        t, lsb = 2.0 ** (i - int(signed)), 2.0 ** (i - width)
        cmin, cmax = (-t if signed else 0.0), t - lsb
        # outliers go to the last in-range bin on their side
        dest = torch.bucketize(centers.clamp(cmin, cmax), edges[1:-1])
        p = torch.zeros_like(hist).scatter_add_(0, dest, hist)
        level = quantize_rows(centers.reshape(1, -1), torch.tensor([i]), width, signed,
                              rounding, overflow).reshape(-1)
        _, inv = torch.unique(level, return_inverse=True)
        mass = torch.zeros(int(inv.max()) + 1, dtype=torch.float64).scatter_add_(0, inv, p)
        nz = torch.zeros_like(mass).scatter_add_(0, inv, (p > 0).to(torch.float64))
        q = torch.where(p > 0, mass[inv] / nz[inv].clamp(min=1), torch.zeros_like(p))
        ps, qs = p / p.sum(), q / q.sum()
        keep = ps > 0
        scores.append(float((ps[keep] * torch.log(ps[keep] / qs[keep])).sum()))
    return torch.tensor(scores, dtype=torch.float64)


def choose_int_bits(x: torch.Tensor, width: int, signed: bool, criterion: str = "mse", *,
                    rounding: str = "RND", overflow: str = "SAT",
                    search: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(I per row, the criterion's error per row) for ``x`` of shape [rows, n].

    Example:
        >>> x = torch.linspace(-3, 3, 101).reshape(1, -1)
        >>> choose_int_bits(x, 8, True, "noclip")[0].tolist()
        [3]
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown threshold criterion {criterion!r}; allowed: "
                         f"{', '.join(CRITERIA)}")
    x = x.detach().to(torch.float64)
    if x.dim() != 2:
        raise ValueError(f"choose_int_bits expects [rows, samples], got {tuple(x.shape)}")
    amax = x.abs().amax(dim=1) if signed else x.clamp(min=0).amax(dim=1)
    top = no_clip_int_bits(amax, width, signed)
    if criterion == "noclip":
        err = ((quantize_rows(x, top, width, signed, rounding, overflow) - x) ** 2).mean(1)
        return top, err
    best_err = torch.full_like(amax, math.inf)
    best = top.clone()
    # from the no-clipping threshold downwards: ties keep the larger (safer) threshold
    for delta in range(0, -search - 1, -1):
        cand = top + delta
        if criterion == "kl":
            err = torch.stack([_kl_scores(x[r], cand[r:r + 1], width, signed, rounding,
                                          overflow)[0] for r in range(x.shape[0])])
        else:
            diff = quantize_rows(x, cand, width, signed, rounding, overflow) - x
            err = (diff ** 2).mean(1) if criterion == "mse" else diff.abs().mean(1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, cand, best)
    return best, best_err
