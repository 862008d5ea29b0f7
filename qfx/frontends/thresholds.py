"""Integer thresholds that reproduce a monotone per-channel function of raw input codes: how
``freeze(fold_thresholds=True)`` and the ONNX importer turn BatchNorm + activation into a
``multithreshold`` / ``threshold`` (the function is the source model's own eval path, so every
rounding and tie is decided as the source decides it).

Example:
    >>> import torch
    >>> code = lambda a: torch.clamp(torch.div(a + 1, 2, rounding_mode="floor"), 0, 3)
    >>> t, d, lo_out = level_thresholds(code, -8, 7, 1)
    >>> t.tolist(), d.tolist(), lo_out
    ([[1, 3, 5]], [1], 0)
"""

from __future__ import annotations

import torch

__all__ = ["check_levels", "first_true", "level_thresholds"]


def first_true(h, lo: int, hi: int, n: int) -> torch.Tensor:
    """Per column, the smallest raw integer a in [lo, hi + 1] with ``h(a)`` true, for ``h``
    (raw ints [M, n] -> bool [M, n]) monotone from false to true (h(hi + 1) taken as true)."""
    left = torch.full((n,), lo - 1, dtype=torch.int64)
    right = torch.full((n,), hi + 1, dtype=torch.int64)
    while bool(((right - left) > 1).any()):
        active = (right - left) > 1
        mid = torch.div(left + right, 2, rounding_mode="floor")
        hm = h(mid.unsqueeze(0))[0]
        right = torch.where(active & hm, mid, right)
        left = torch.where(active & ~hm, mid, left)
    return right


def level_thresholds(code, lo: int, hi: int, channels: int, lo_out: int | None = None,
                     k: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For a per-channel monotone ``code`` (raw input ints [M, C] -> output codes [M, C]):
    thresholds [C, K], directions [C] and the lowest code lo_out with ``code(a) == lo_out +
    #{k : a >= T[c, k]}`` (direction +1) or ``#{k : a <= T[c, k]}`` (direction -1) on
    [lo, hi]. Levels never reached get a threshold one step outside [lo, hi]. ``lo_out`` and
    ``k`` (the number of levels) default to the codes' range over all channels."""
    ends = code(torch.tensor([[lo] * channels, [hi] * channels], dtype=torch.int64))
    falling = ends[0] > ends[1]
    if lo_out is None or k is None:
        lo_out, hi_out = int(ends.min()), int(ends.max())
        k = max(hi_out - lo_out, 1)
    levels = torch.arange(lo_out + 1, lo_out + 1 + k, dtype=torch.int64)  # [K]
    flip = falling.repeat_interleave(k)  # column c * K + j

    def h(a: torch.Tensor) -> torch.Tensor:  # [M, C * K] -> (code >= level) XOR falling
        m = a.shape[0]
        per = a.view(m, channels, k).transpose(1, 2).reshape(m * k, channels)
        out = code(per).view(m, k, channels).transpose(1, 2)  # [M, C, K]
        return (out >= levels).reshape(m, channels * k) ^ flip

    first = first_true(h, lo, hi, channels * k)
    t = torch.where(flip, first - 1, first).view(channels, k)
    t = torch.where(falling.unsqueeze(1), t.flip(1), t)  # rows non-decreasing
    return t, torch.where(falling, -1, 1).to(torch.int64), lo_out


def check_levels(code, t: torch.Tensor, direction: torch.Tensor, lo_out: int, lo: int, hi: int,
                  where: str) -> None:
    """Compare the multithreshold rule with the function it replaces: on every input code
    when there are at most 2**20 (codes x channels), else at both ends, around every threshold and
    at random points."""
    channels = t.shape[0]
    if (hi - lo + 1) * channels <= 1 << 20:
        a = torch.arange(lo, hi + 1, dtype=torch.int64).unsqueeze(1).expand(-1, channels)
    else:
        gen = torch.Generator().manual_seed(0)
        rand = lo + (torch.rand(256, channels, generator=gen, dtype=torch.float64)
                     * (hi - lo)).to(torch.int64)
        near = (t.T.unsqueeze(0) + torch.arange(-1, 2).view(3, 1, 1)).reshape(-1, channels)
        a = torch.cat([torch.full((1, channels), lo), torch.full((1, channels), hi),
                       near.clamp(lo, hi), rand])
    # rows of t are sorted: #{k: a >= T} = searchsorted right, #{k: a <= T} = K - left
    at = a.T.contiguous()  # [C, M]
    rising = torch.searchsorted(t.contiguous(), at, right=True)
    falling = t.shape[1] - torch.searchsorted(t.contiguous(), at, right=False)
    count = torch.where((direction > 0).unsqueeze(1), rising, falling).T
    if not torch.equal(lo_out + count, code(a)):
        raise RuntimeError(f"{where}: BatchNorm + activation is not a multithreshold function "
                           "of its input (every cast on the path should be monotone)")
