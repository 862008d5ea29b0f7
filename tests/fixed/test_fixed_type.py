"""FixedType: spelling, validation, result types and internal consistency (the g++ oracle
comparison lives in test_ap_fixed_oracle.py)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qfx import MAX_WIDTH, OVERFLOW_MODES, ROUNDING_MODES, FixedType


@st.composite
def fixed_types(draw, max_width=MAX_WIDTH):
    width = draw(st.integers(1, max_width))
    signed = draw(st.booleans())
    overflow = draw(st.sampled_from([m for m in OVERFLOW_MODES if signed or m != "WRAP_SM"]))
    return FixedType(
        width,
        draw(st.integers(-8, width + 8)),
        signed,
        draw(st.sampled_from(ROUNDING_MODES)),
        overflow,
        draw(st.integers(0, width)),
    )


@given(fixed_types())
def test_cpp_spelling_round_trips(t):
    assert FixedType.parse(t.cpp()) == t
    assert str(t) == t.cpp()
    assert hash(FixedType.parse(t.cpp())) == hash(t)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ap_fixed<8,3>", FixedType(8, 3)),
        ("ap_fixed<8, 3, AP_RND_CONV, AP_SAT>", FixedType(8, 3, True, "RND_CONV", "SAT")),
        ("ap_fixed<8,3,AP_TRN,AP_WRAP,2>", FixedType(8, 3, sat_bits=2)),
        ("ap_ufixed<6,2>", FixedType(6, 2, signed=False)),
        ("ap_int<8>", FixedType(8, 8)),
        ("ap_uint<4>", FixedType(4, 4, signed=False)),
        ("ap_fixed<4,-3,AP_RND>", FixedType(4, -3, rounding="RND")),
    ],
)
def test_parse_accepts_cpp_spellings(text, expected):
    assert FixedType.parse(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("ap_fixed<8>", "2 to 5 arguments"),
        ("ap_fixed<8,3,AP_FOO>", "TRN, TRN_ZERO, RND"),
        ("ap_fixed<8,3,AP_RND,AP_CLAMP>", "SAT, SAT_ZERO, SAT_SYM, WRAP, WRAP_SM"),
        ("ap_ufixed<8,3,AP_RND,AP_WRAP_SM>", "needs a signed type"),
        ("ap_fixed<63,3>", "between 1 and 62"),
        ("float", "cannot parse"),
        ("ap_int<8,2>", "exactly one argument"),
    ],
)
def test_parse_rejects_bad_types_with_allowed_values(text, message):
    with pytest.raises(ValueError, match=message):
        FixedType.parse(text)


def test_invalid_construction_names_allowed_values():
    with pytest.raises(ValueError, match="RND_CONV"):
        FixedType(8, 3, rounding="nearest")
    with pytest.raises(ValueError, match="WRAP_SM"):
        FixedType(8, 3, overflow="clip")
    with pytest.raises(ValueError, match="signed"):
        FixedType(8, 3, signed=False, overflow="WRAP_SM")
    with pytest.raises(ValueError, match="62"):
        FixedType(64, 3)
    with pytest.raises(ValueError, match="saturation bits"):
        FixedType(4, 2, sat_bits=5)
    assert FixedType(8, 3, rounding="ap_rnd").rounding == "RND"


def test_is_immutable_and_hashable():
    t = FixedType(8, 3)
    with pytest.raises(AttributeError):
        t.width = 9
    assert len({t, FixedType(8, 3), FixedType(8, 4)}) == 2


def test_properties():
    t = FixedType(8, 3)
    assert (t.frac_bits, t.lsb, t.min, t.max) == (5, 1 / 32, -4.0, 4 - 1 / 32)
    u = FixedType(6, -2, signed=False)
    assert (u.raw_min, u.raw_max, u.lsb) == (0, 63, 2.0**-8)
    big = FixedType(4, 10)
    assert big.lsb == 64.0 and big.max == 7 * 64.0


def test_quantize_examples_for_every_rounding_mode():
    # LSB 0.25: ties at +-0.125 and +-0.375
    x = np.array([0.125, -0.125, 0.375, -0.375, 0.2, -0.2])
    expected = {
        "TRN": [0, -1, 1, -2, 0, -1],
        "TRN_ZERO": [0, 0, 1, -1, 0, 0],
        "RND": [1, 0, 2, -1, 1, -1],
        "RND_ZERO": [0, 0, 1, -1, 1, -1],
        "RND_MIN_INF": [0, -1, 1, -2, 1, -1],
        "RND_INF": [1, -1, 2, -2, 1, -1],
        "RND_CONV": [0, 0, 2, -2, 1, -1],
    }
    for mode, raw in expected.items():
        t = FixedType(6, 4, rounding=mode)
        assert t.to_int(x).tolist() == raw, mode
        assert t.quantize(x).tolist() == [k * 0.25 for k in raw], mode


def test_overflow_examples():
    x = np.array([9.0, -9.0, -8.0, 7.75])
    assert FixedType(4, 4, overflow="SAT").to_int(x).tolist() == [7, -8, -8, 7]
    assert FixedType(4, 4, overflow="SAT_SYM").to_int(x).tolist() == [7, -7, -7, 7]
    assert FixedType(4, 4, overflow="SAT_ZERO").to_int(x).tolist() == [0, 0, -8, 7]
    assert FixedType(4, 4, overflow="WRAP").to_int(x).tolist() == [-7, 7, -8, 7]
    assert FixedType(4, 4, signed=False, overflow="SAT").to_int(np.array([-1.0, 16.0])).tolist() \
        == [0, 15]


def test_special_values():
    t = FixedType(8, 3, rounding="RND", overflow="SAT")
    assert t.to_int(np.array([-0.0, 1e300, -1e300, np.inf, -np.inf, 5e-324])).tolist() == [
        0, 127, -128, 127, -128, 0]
    with pytest.raises(ValueError, match="NaN"):
        t.to_int(np.array([np.nan]))


def test_numpy_and_torch_agree_and_keep_container():
    t = FixedType(12, 2, rounding="RND_CONV", overflow="WRAP")
    x = np.random.default_rng(0).normal(scale=3, size=1000)
    a = t.to_int(x)
    b = t.to_int(torch.from_numpy(x))
    assert isinstance(a, np.ndarray) and a.dtype == np.int64
    assert isinstance(b, torch.Tensor) and b.dtype == torch.int64
    assert np.array_equal(a, b.numpy())
    f32 = torch.from_numpy(x).float()
    assert torch.equal(t.to_int(f32), t.to_int(f32.double()))


@settings(max_examples=300, deadline=None)
@given(fixed_types(max_width=50), st.lists(st.floats(allow_nan=False, width=64), min_size=1,
                                            max_size=20))
def test_quantize_is_from_int_of_to_int_and_idempotent(t, values):
    x = np.array(values)
    raw = t.to_int(x)
    assert raw.min() >= t.raw_min and raw.max() <= t.raw_max
    q = t.quantize(x)
    assert np.array_equal(q, t.from_int(raw))
    assert np.array_equal(t.to_int(q), raw)  # a representable value converts to itself


@settings(max_examples=300, deadline=None)
@given(fixed_types(max_width=52), fixed_types(max_width=52), st.data())
def test_cast_int_equals_conversion_of_the_exact_value(src, dst, data):
    # A source value is exactly a double here, so the fixed->fixed cast and the
    # double constructor must agree bit for bit.
    raw = np.array(data.draw(st.lists(st.integers(src.raw_min, src.raw_max), min_size=1,
                                      max_size=20)), dtype=np.int64)
    assert np.array_equal(dst.cast_int(raw, src), dst.to_int(src.from_int(raw)))


def test_result_types():
    a, b = FixedType(8, 3), FixedType(6, 2, signed=False)
    assert FixedType.mul(a, b) == FixedType(14, 5, True)
    assert FixedType.add(a, b) == FixedType(9, 4, True)  # I = max(3, 2+1)+1, F = max(5, 4)
    assert FixedType.add(b, b) == FixedType(7, 3, False)
    assert FixedType.sub(b, b) == FixedType(7, 3, True)
    assert FixedType.neg(b) == FixedType(7, 3, True)


@settings(max_examples=200, deadline=None)
@given(fixed_types(max_width=20), fixed_types(max_width=20))
def test_add_and_mul_types_hold_exact_results(a, b):
    corners_a = [a.raw_min, a.raw_max]
    corners_b = [b.raw_min, b.raw_max]
    for op, rtype in ((lambda x, y: x * y, FixedType.mul(a, b)),
                      (lambda x, y: x + y, FixedType.add(a, b)),
                      (lambda x, y: x - y, FixedType.sub(a, b))):
        for ka in corners_a:
            for kb in corners_b:
                va = math.ldexp(ka, -a.frac_bits)
                vb = math.ldexp(kb, -b.frac_bits)
                exact = op(va, vb)
                k = exact * 2.0**rtype.frac_bits
                assert k == int(k) and rtype.raw_min <= k <= rtype.raw_max


@given(fixed_types(max_width=30), st.integers(1, 5000))
def test_sum_of_holds_n_extreme_terms(t, n):
    s = t.sum_of(n)
    assert s.frac_bits == t.frac_bits
    assert n * t.raw_max <= s.raw_max and n * t.raw_min >= s.raw_min


@given(st.integers(-(2**40), 2**40), st.integers(0, 2**40), st.integers(-10, 10))
def test_for_raw_range_is_tight(lo, span, frac):
    hi = lo + span
    t = FixedType.for_raw_range(lo, hi, frac)
    assert t.raw_min <= lo and hi <= t.raw_max and t.frac_bits == frac
    if t.width > 1:
        narrower = FixedType(t.width - 1, t.int_bits - 1, t.signed)
        assert not (narrower.raw_min <= lo and hi <= narrower.raw_max)


def test_contains():
    assert FixedType(10, 4).contains(FixedType(8, 3))
    assert not FixedType(10, 4).contains(FixedType(8, 3, signed=False).replace(int_bits=5))
    assert FixedType(9, 5).contains(FixedType(8, 4, signed=False))
    assert not FixedType(8, 4).contains(FixedType(8, 4, signed=False))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 50), st.integers(-8, 58), st.booleans(), st.sampled_from(ROUNDING_MODES),
       st.sampled_from(["SAT", "SAT_SYM", "SAT_ZERO"]),
       st.lists(st.one_of(st.floats(allow_nan=False), st.integers(-(2**60), 2**60)),
                min_size=1, max_size=30), st.integers(-3, 3))
def test_float_fast_path_equals_the_integer_path(width, int_bits, signed, rounding, overflow,
                                                  values, tie_shift):
    # Values on and next to the grid's ties exercise every rounding decision; a negative frac
    # (int_bits > width) scales down, and subnormal or tiny inputs then take the integer path.
    from qfx.fixed.exact import fast_path_applies, quantize_double

    frac = width - int_bits
    x = torch.tensor([float(v) for v in values], dtype=torch.float64)
    ties = (torch.round(x * 2.0**frac) + 0.5) * 2.0 ** -frac * 2.0**tie_shift
    x = torch.cat([x, ties, -ties])
    kw = dict(width=width, signed=signed, rounding=rounding, overflow=overflow, sat_bits=0)
    fast = quantize_double(x, frac, **kw)
    exact = quantize_double(x, frac, fast=False, **kw)
    assert fast_path_applies(width, overflow)
    assert torch.equal(fast, exact)


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("frac", [-5, -1100])
def test_a_scale_down_below_the_normal_range_takes_the_integer_path(rounding, frac):
    # ldexp(-5e-324, -5) is -0.0 and ldexp(inf, -1100) is NaN: read as they are, a truncating
    # mode would give 0 where the header gives -1, and NaN would cast to garbage
    from qfx.fixed.exact import quantize_double

    x = torch.tensor([5e-324, -5e-324, 2.0**-1020, -3 * 2.0**-1070, -1.5, 7.0,
                      float("inf"), float("-inf")], dtype=torch.float64)
    kw = dict(width=8, signed=True, rounding=rounding, overflow="SAT", sat_bits=0)
    assert torch.equal(quantize_double(x, frac, **kw), quantize_double(x, frac, fast=False, **kw))
