"""The ``multithreshold`` op: executor == an integer reference on every input code, its
exactness proof refuses levels that do not fit, and it costs comparisons only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfx import FixedType
from qfx.ir.builder import GraphBuilder
from qfx.ir.cost import cost_report
from qfx.ir.executor import run_graph


def mt_graph(x_t: FixedType, t: np.ndarray, d: np.ndarray, out_t: FixedType, scale: int,
             bias: int, out_frac: int | None = None):
    b = GraphBuilder()
    c = t.shape[0]
    x = b.add_input("x", (c, 3), x_t)
    q = b.add("q", "input", [x], x_t, (c, 3))
    t_t = FixedType.for_raw_range(int(t.min()), int(t.max()), x_t.frac_bits)
    y = b.add("mt", "multithreshold", [q], out_t, (c, 3),
              {"threshold_type": t_t, "out_scale": scale, "out_bias": bias,
               "out_frac": out_t.frac_bits if out_frac is None else out_frac},
              {"thresholds": t, "direction": d})
    return b.finish([y])


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 7), st.integers(-3, 3), st.integers(1, 4), st.integers(1, 6),
       st.sampled_from([1, 2, -1, 3]), st.integers(-4, 2), st.data())
def test_executor_is_the_count_rule_on_every_input_code(width, frac, c, k, scale, bias, data):
    x_t = FixedType(width, width - frac)
    lo, hi = x_t.raw_min, x_t.raw_max
    t = np.sort(np.array(data.draw(st.lists(st.integers(lo - 1, hi + 1), min_size=c * k,
                                            max_size=c * k)), dtype=np.int64).reshape(c, k), 1)
    d = np.array(data.draw(st.lists(st.sampled_from([1, -1]), min_size=c, max_size=c)),
                 dtype=np.int64)
    levels = [bias, bias + k * scale]
    out_t = FixedType.for_raw_range(min(levels), max(levels), 2)
    g = mt_graph(x_t, t, d, out_t, scale, bias)
    codes = np.arange(lo, hi + 1, dtype=np.int64)
    raw_in = np.broadcast_to(codes[:, None, None], (codes.size, c, 3))
    got = run_graph(g, raw_in * 2.0 ** -x_t.frac_bits).raw[0]
    up = np.where(d[None, :, None, None] > 0, raw_in[..., None] >= t[None, :, None, :],
                  raw_in[..., None] <= t[None, :, None, :])
    want = (up.sum(-1) * scale + bias) * 2 ** (out_t.frac_bits - 2)
    np.testing.assert_array_equal(got, want)


def test_levels_that_do_not_fit_the_output_are_refused():
    t, d = np.array([[0, 1, 2]]), np.array([1])
    with pytest.raises(ValueError, match=r"output levels \(1\.\.4 at 0 fractional bits\) do not "
                       "fit"):
        mt_graph(FixedType(4, 4), t, d, FixedType(2, 2, False), 1, 1)
    with pytest.raises(ValueError, match="non-decreasing"):
        mt_graph(FixedType(4, 4), np.array([[2, 1]]), d, FixedType(4, 4), 1, 0)
    with pytest.raises(ValueError, match="direction must be -1 or \\+1"):
        mt_graph(FixedType(4, 4), t, np.array([0]), FixedType(4, 4), 1, 0)
    with pytest.raises(ValueError, match="threshold type .* is not on the input's grid"):
        b = GraphBuilder()
        x = b.add_input("x", (1,), FixedType(4, 2))
        y = b.add("mt", "multithreshold", [x], FixedType(4, 4), (1,),
                  {"threshold_type": FixedType(4, 4), "out_scale": 1, "out_bias": 0,
                   "out_frac": 0}, {"thresholds": t, "direction": d})
        b.finish([y])


def test_cost_is_comparisons_and_adders_only():
    g = mt_graph(FixedType(6, 3), np.tile(np.arange(7), (2, 1)), np.array([1, -1]),
                 FixedType(4, 4, False), 1, 0)
    c = next(n for n in cost_report(g).nodes if n.op == "multithreshold")
    assert (c.comparisons, c.multipliers, c.mult_ops) == (2 * 3 * 7, 0, 0)
    assert c.dsp_free
