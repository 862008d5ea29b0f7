"""K-hot quantisation: the code tables, the nearest-value projection and the CSD digits are
checked against brute force; the quantizer's eval, training and calibration paths agree."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qfx import FixedQuantizer, KHotQuantizer
from qfx.fixed.khot import (
    code_range,
    csd_weight,
    digits_to_raw,
    khot_codes,
    khot_digits,
    khot_fake_quantize,
    khot_project,
)


def _range(width: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def _brute_codes(width: int, k: int, signed: bool, extra_positions: int = 2) -> list[int]:
    """Every in-range sum of at most k signed powers of two, positions 0..width+1 (wider than
    any NAF needs, so the brute force does not assume what it checks)."""
    lo, hi = _range(width, signed)
    terms = [s << p for p in range(width + extra_positions) for s in (1, -1)]
    values = {0}
    for j in range(1, k + 1):
        for combo in itertools.combinations(terms, j):
            values.add(sum(combo))
    return sorted(v for v in values if lo <= v <= hi)


_BRUTE: dict[tuple[int, int, bool], list[int]] = {}


def _codes(width: int, k: int, signed: bool) -> list[int]:
    key = (width, k, signed)
    if key not in _BRUTE:
        _BRUTE[key] = _brute_codes(width, k, signed)
    return _BRUTE[key]


def _brute_nearest(y: float, codes: list[int]) -> int:
    """argmin |c - y|, ties toward the smaller magnitude (the documented rule)."""
    return min(codes, key=lambda c: (abs(c - y), abs(c)))


@pytest.mark.parametrize("signed", [True, False])
def test_code_tables_equal_brute_force(signed):
    for width in range(1, 9):
        for k in range(1, 5):
            assert khot_codes(width, k, signed).tolist() == _codes(width, k, signed), (width, k)


@pytest.mark.parametrize("width, k", [(24, 1), (24, 2), (40, 2)])
def test_wide_code_tables_equal_brute_force(width, k):
    # built by the union over digit positions (not by enumerating the range)
    assert khot_codes(width, k, True).tolist() == _brute_codes(width, k, True, 1)


def test_dense_tables_are_the_whole_range():
    # K >= ceil((W+1)/2): every integer has few enough CSD digits
    assert khot_codes(7, 4, True).tolist() == list(range(-64, 64))
    y = torch.tensor([2.5, -2.5, 3.5, 1e9, -1e9, 0.49], dtype=torch.float64)
    assert khot_project(y, 30, 16, True).tolist() == [2.0, -2.0, 3.0, 2.0**29 - 1, -(2.0**29), 0]


def test_csd_digits_are_minimal_and_non_adjacent():
    n = torch.arange(-(1 << 9), 1 << 9)
    weights = csd_weight(n)
    # minimal: the brute-force sets give the least number of signed powers of two
    minimal = {}
    for k in range(6, 0, -1):
        for c in _brute_codes(10, k, True, 1):
            minimal[c] = k
    minimal[0] = 0
    assert weights.tolist() == [minimal[v] for v in n.tolist()]
    digits = khot_digits(n, 6)
    assert torch.equal(digits_to_raw(digits), n)
    sign, shift = digits[..., 0], digits[..., 1]
    used = sign != 0
    assert torch.equal(used.sum(-1), weights)
    # used slots first, most significant first, no two at adjacent shifts, unused = (0, 0)
    assert bool((used[..., :-1] | ~used[..., 1:]).all())
    gaps = shift[..., :-1] - shift[..., 1:]
    both = used[..., :-1] & used[..., 1:]
    assert bool((gaps[both] >= 2).all())
    assert bool((shift[~used] == 0).all())


def test_digits_refuse_values_with_too_many_digits():
    with pytest.raises(ValueError, match="more than K=2"):
        khot_digits(torch.tensor([11]), 2)


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 8), k=st.integers(1, 4), signed=st.booleans(),
       y=st.one_of(st.floats(-300, 300, allow_nan=False),
                   st.integers(-300, 300).map(lambda v: v / 2)))  # many exact ties
def test_projection_is_the_nearest_k_hot_value(width, k, signed, y):
    codes = _codes(width, k, signed)
    got = khot_project(torch.tensor([y], dtype=torch.float64), width, k, signed).item()
    assert got == _brute_nearest(y, codes)


def test_ties_go_toward_zero_and_saturation_goes_to_the_extreme_codes():
    codes = khot_codes(8, 1, True)
    mids = ((codes[1:] + codes[:-1]).double() / 2)
    got = khot_project(mids, 8, 1, True)
    lower, upper = codes[:-1].double(), codes[1:].double()
    assert torch.equal(got, torch.where(upper.abs() < lower.abs(), upper, lower))
    y = torch.tensor([1e300, -1e300, math.inf, -math.inf, 127.0], dtype=torch.float64)
    assert khot_project(y, 8, 1, True).tolist() == [64.0, -128.0, 64.0, -128.0, 64.0]
    assert code_range(8, 1) == (-128, 64)


def test_greedy_rules_are_not_nearest_but_the_projection_is():
    # Keeping the K most significant CSD digits: 43 = 64 - 16 - 4 - 1 -> 48, but 40 is nearer.
    digits = khot_digits(torch.tensor([43]), 4)[0, :2]
    assert int(digits_to_raw(digits)) == 48
    assert khot_project(torch.tensor([43.0], dtype=torch.float64), 8, 2, True).item() == 40.0
    # The power of two nearest to 100 is 128, outside a signed 8-bit range: nearest is 64.
    assert khot_project(torch.tensor([100.0], dtype=torch.float64), 8, 1, True).item() == 64.0


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantizer_eval_is_the_projection_on_its_grid(per_channel):
    torch.manual_seed(0)
    w = torch.randn(6, 5) * torch.tensor([0.1, 1.0, 3.0, 0.01, 0.5, 8.0]).view(6, 1)
    q = KHotQuantizer(2, width=6, per_channel=per_channel, num_channels=6 if per_channel else None)
    q.calibrate(w)
    q.eval()
    out = q(w)
    assert out.dtype == torch.float64
    for c, t in enumerate(q.fixed_types * (6 if not per_channel else 1)):
        y = torch.ldexp(w[c].double(), torch.tensor(float(t.frac_bits), dtype=torch.float64))
        codes = khot_project(y, 6, 2, True)
        assert torch.equal(out[c], torch.ldexp(codes, torch.tensor(-float(t.frac_bits),
                                                                   dtype=torch.float64)))
        assert torch.equal(q.to_int(w)[c], codes.to(torch.int64))
        assert torch.equal(t.quantize(out[c]), out[c])  # on the storage format's grid
    assert bool((csd_weight(q.to_int(w)) <= 2).all())
    assert q.digits(w).shape == (6, 5, 2, 2)


def test_training_forward_equals_eval_and_gradients_are_straight_through():
    q = KHotQuantizer(1, width=6, int_bits=2)  # lsb 1/16, codes -32..16 -> [-2, 1]
    x = torch.tensor([0.3, -0.7, 1.9, -5.0, 0.0, 0.99], requires_grad=True)
    out = q(x)
    assert out.dtype == torch.float32
    assert out.tolist() == q.eval()(x.detach()).tolist()
    assert out.tolist() == [0.25, -0.5, 1.0, -2.0, 0.0, 1.0]
    q.train()
    grad = torch.arange(1.0, 7.0)
    (q(x) * grad).sum().backward()
    inside = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0])  # 1.9 and -5 saturate
    assert x.grad.tolist() == (grad * inside).tolist()
    expected = math.log(2) * float(
        (grad * torch.where(inside.bool(), out.detach() - x.detach(), out.detach())).sum())
    assert q.log2_lsb.grad.item() == pytest.approx(expected, rel=1e-6)


def test_per_channel_fake_quantize_gives_per_channel_binary_point_gradients():
    p = torch.tensor([-2.0, -4.0], requires_grad=True)
    x = torch.tensor([[0.3, 0.3], [0.8, 0.8]])
    out = khot_fake_quantize(x, p, width=6, k=1, channel_dim=1)
    assert out.tolist() == [[0.25, 0.25], [1.0, 1.0]]
    out.sum().backward()
    assert p.grad.shape == (2,)
    with pytest.raises(ValueError, match="channel_dim"):
        khot_fake_quantize(x, p, width=6, k=1)


def test_calibration_picks_the_least_k_hot_error():
    torch.manual_seed(1)
    x = torch.randn(4000, dtype=torch.float64) * 0.7
    q = KHotQuantizer(2, width=6)
    q.calibrate(x)
    errors = {}
    for i in range(-8, 6):
        frac = torch.tensor(6.0 - i, dtype=torch.float64)
        v = torch.ldexp(khot_project(torch.ldexp(x, frac), 6, 2, True), -frac)
        errors[i] = float(((v - x) ** 2).mean())
    top = math.floor(math.log2(float(x.abs().max()))) + 2
    best = min(range(top - 8, top + 2), key=lambda i: errors[i])
    assert q.int_bits == best


def test_k_hot_is_coarser_than_uniform_and_k1_is_powers_of_two():
    x = torch.linspace(-1, 1, 1001, dtype=torch.float64)
    uniform = FixedQuantizer(8, int_bits=1).eval()(x)
    k1 = KHotQuantizer(1, width=8, int_bits=1).eval()(x)
    mags = k1[k1 != 0].abs()
    assert bool((torch.log2(mags) == torch.round(torch.log2(mags))).all())
    assert float(((k1 - x) ** 2).mean()) > float(((uniform - x) ** 2).mean())


def test_errors_are_clear():
    with pytest.raises(ValueError, match="K .* must be an integer >= 1"):
        KHotQuantizer(0)
    with pytest.raises(ValueError, match="1..48 bits"):
        KHotQuantizer(2, width=60)
    with pytest.raises(ValueError, match="too large"):
        khot_codes(48, 6)
    q = KHotQuantizer(2, width=8)
    with pytest.raises(RuntimeError, match="before its binary point was set"):
        q.eval()(torch.ones(3))
    q = KHotQuantizer(2, width=8, int_bits=2).eval()
    with pytest.raises(ValueError, match="NaN"):
        q(torch.tensor([float("nan")]))


def test_codes_are_sorted_unique_and_vectorised_on_any_shape():
    codes = khot_codes(12, 3, False)
    assert bool((codes[1:] > codes[:-1]).all())
    y = torch.randn(3, 4, 5, dtype=torch.float64) * 100
    out = khot_project(y, 12, 3, False)
    assert out.shape == y.shape
    assert np.isin(out.numpy(), codes.double().numpy()).all()
