"""qfx.fixed.tables: every table entry is the exact function quantised onto the output type
(checked against an independent 300-bit mpmath evaluation cast by FixedType), exact rational
values (sigmoid(0), tanh(0), exp(0), 1/x) round as ties do, and too-wide inputs are refused."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfx.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedType
from qfx.fixed.tables import (
    TABLE_FUNCTIONS,
    check_table_width,
    function_table,
    quantized_function,
    table_codes,
)

_MP = {"sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)), "tanh": mpmath.tanh, "exp": mpmath.exp,
       "exp_neg": lambda v: mpmath.exp(-v), "recip": lambda v: 1 / v}


def _oracle(fn: str, x: float, out_t: FixedType) -> int | None:
    """The raw quantisation of fn(x) from a 300-bit mpmath value, cast by FixedType: every
    rounding mode decides on the grid 2**-(F+1) (grid points and midpoints), so the value is
    replaced by the double in the middle of its open interval there (or the exact boundary it
    sits on, for the rational values). None: too large for a double to give a wrapping type's
    low bits."""
    if fn == "recip" and x == 0:
        return out_t.raw_max
    with mpmath.workprec(300):
        v = _MP[fn](mpmath.mpf(x))
        scaled = mpmath.ldexp(v, out_t.frac_bits + 1)  # boundaries: integers on this grid
        n = int(mpmath.floor(scaled))
        if abs(n) > 2**50:
            if out_t.overflow not in ("SAT", "SAT_ZERO", "SAT_SYM"):
                return None
            n = 2**50 if n > 0 else -(2**50)
        mid = n if scaled == n else n + 0.5
    return int(out_t.to_int(np.array([np.ldexp(mid, -(out_t.frac_bits + 1))]))[0])


def _types(draw, max_w: int) -> FixedType:
    w = draw(st.integers(1, max_w))
    return FixedType(w, draw(st.integers(-3, 6)), draw(st.booleans()))


@st.composite
def _case(draw):
    fn = draw(st.sampled_from(TABLE_FUNCTIONS))
    in_t = _types(draw, 6)
    signed = draw(st.booleans())
    overflow = draw(st.sampled_from([o for o in OVERFLOW_MODES if signed or o != "WRAP_SM"]))
    out_t = FixedType(draw(st.integers(2, 12)), draw(st.integers(-2, 6)), signed,
                      draw(st.sampled_from(ROUNDING_MODES)), overflow)
    return fn, in_t, out_t


@settings(max_examples=40, deadline=None)
@given(_case())
def test_table_equals_the_exact_function_quantised_for_every_code(case):
    fn, in_t, out_t = case
    table = function_table(fn, in_t, out_t)
    codes = table_codes(in_t)
    assert table.shape == (1 << in_t.width,)
    undecided = 0
    for raw, entry in zip(codes.tolist(), table.tolist(), strict=True):
        expected = _oracle(fn, float(in_t.from_int(np.array([raw]))[0]), out_t)
        if expected is None:
            undecided += 1
        else:
            assert entry == expected, (fn, in_t, out_t, raw)
    assert not undecided or fn in ("exp", "exp_neg")  # only huge e**(+-x) on a wrapping type


def test_exact_rational_values_round_like_ties():
    x_t = FixedType(4, 2)  # index of 0.0 is 0
    half = {r: function_table("sigmoid", x_t, FixedType(3, 3, False, r))[0]
            for r in ("RND", "RND_ZERO", "RND_CONV", "TRN")}
    assert half == {"RND": 1, "RND_ZERO": 0, "RND_CONV": 0, "TRN": 0}  # sigmoid(0) = 1/2
    assert function_table("tanh", x_t, FixedType(4, 1, rounding="RND"))[0] == 0
    assert function_table("exp", x_t, FixedType(4, 1, False, "TRN"))[0] == 8  # exp(0) = 1
    # 1/x: exact ties on a coarse grid, and 1/0 gives the largest value
    recip = quantized_function("recip", np.array([0.0, 4.0, -8.0 / 3]),
                               FixedType(4, 0, True, "RND_CONV", "SAT"))
    assert recip.tolist() == [7, 4, -6]  # 0.25 = 4/16; -3/8 = -6/16 exactly


def test_values_evaluate_like_the_table_and_keep_the_container():
    import torch

    x_t, out_t = FixedType(6, 3), FixedType(7, 1, False, "RND", "SAT")
    table = function_table("sigmoid", x_t, out_t)
    x = torch.tensor([[-4.0, 0.125], [3.875, -0.5]], dtype=torch.float64)
    raw = quantized_function("sigmoid", x, out_t)
    assert isinstance(raw, torch.Tensor) and raw.shape == x.shape
    idx = x_t.to_int(x.numpy()) & 63
    assert raw.numpy().tolist() == table[idx].tolist()


def test_too_wide_an_input_is_refused_with_the_cast_to_make():
    check_table_width(14, "here")
    with pytest.raises(ValueError, match=r"layer 'sm' input ap_fixed<16,4>: 16 bits would need "
                       r"a table of 65536 entries, more than the limit of 2\*\*14; cast the "
                       r"input to a narrower format"):
        check_table_width(16, "layer 'sm' input ap_fixed<16,4>")
