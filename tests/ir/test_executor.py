"""run_graph, the specification: its raw outputs equal an integer reference computed here with
Python ints (ap_fixed semantics on raw mantissas), for saturating and wrapping casts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfx import FixedType
from qfx.ir import Edge, Graph, Node, run_graph
from qfx.ir.ops import spec

I64 = np.int64


def _graph(w: np.ndarray, b: np.ndarray, out_t: FixedType) -> Graph:
    x_t, w_t, b_t = FixedType(6, 3, overflow="SAT"), FixedType(5, 2), FixedType(8, 4)
    g = Graph(inputs=["x"], outputs=["y"])
    g.add_edge(Edge("x", (w.shape[1],), FixedType(32, 16)))
    g.add_edge(Edge("q", (w.shape[1],), x_t))
    g.add_edge(Edge("y", (w.shape[0],), out_t))
    g.add_node(Node("q", "input", ["x"], "q"))
    node = Node("y", "dense", ["q"], "y", {"weight_type": w_t, "bias_type": b_t},
                {"weight": w, "bias": b})
    node.attrs["acc_type"] = spec("dense").size_accumulator(node, [x_t], "y")
    g.add_node(node)
    return g


def _reference(g: Graph, x_raw: np.ndarray) -> np.ndarray:
    """The dense node on raw integers: exact sum at F_x + F_w, then the output cast."""
    node = g.node("y")
    x_t, w_t, b_t = g.edges["q"].type, node.attrs["weight_type"], node.attrs["bias_type"]
    out_t = g.edges["y"].type
    frac = x_t.frac_bits + w_t.frac_bits
    rows = []
    for xs in x_raw.tolist():
        acc = [sum(int(w) * x for w, x in zip(row, xs, strict=True))
               + (int(b) << (frac - b_t.frac_bits))
               for row, b in zip(node.params["weight"], node.params["bias"], strict=True)]
        rows.append(out_t.cast_int(np.array(acc, dtype=I64),
                                   FixedType(62, 62 - frac)).tolist())
    return np.array(rows, dtype=I64)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["SAT", "WRAP", "SAT_SYM"]),
       st.sampled_from(["TRN", "RND", "RND_CONV"]))
def test_dense_equals_the_integer_reference(seed, overflow, rounding):
    rng = np.random.default_rng(seed)
    w = rng.integers(-16, 16, size=(3, 4)).astype(I64)
    b = rng.integers(-128, 128, size=3).astype(I64)
    g = _graph(w, b, FixedType(6, 2, rounding=rounding, overflow=overflow))
    x_t = g.edges["q"].type
    x_raw = rng.integers(x_t.raw_min, x_t.raw_max + 1, size=(16, 4)).astype(I64)
    res = run_graph(g, x_t.from_int(x_raw), trace=True)
    assert np.array_equal(res.raw[0], _reference(g, x_raw))
    assert np.array_equal(res.trace["q"], x_raw)
    assert set(res.trace) == {"q", "y"}


def test_overflow_counts_values_outside_the_output_format():
    w = np.array([[15, 15, 15, 15]], dtype=I64)
    g = _graph(w, np.zeros(1, dtype=I64), FixedType(6, 2, overflow="SAT"))
    res = run_graph(g, np.array([[3.5] * 4, [0.0] * 4]))
    assert res.overflow["y"] == 1 and res.elements["y"] == 2


def test_same_format_ops_do_not_cast():
    g = Graph(inputs=["x"], outputs=["p"])
    t = FixedType(8, 3)
    g.add_edge(Edge("x", (1, 2, 2), FixedType(16, 8)))
    g.add_edge(Edge("q", (1, 2, 2), t))
    g.add_edge(Edge("p", (1, 1, 1), t))
    g.add_node(Node("q", "input", ["x"], "q"))
    g.add_node(Node("p", "maxpool2d", ["q"], "p", {"kernel": [2, 2], "stride": [2, 2],
                                                    "padding": [0, 0], "dilation": [1, 1],
                                                    "ceil_mode": False}))
    res = run_graph(g, np.array([[[[0.5, -1.0], [2.25, 1.0]]]]))
    assert res.raw[0].tolist() == [[[[72]]]]  # 2.25 * 2**5
    assert "p" not in res.overflow  # nothing was cast


def test_input_shape_is_checked():
    g = _graph(np.ones((2, 3), dtype=I64), np.zeros(2, dtype=I64), FixedType(8, 4))
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(batch, 3\)"):
        run_graph(g, np.zeros((4, 5)))
