"""concat, mul, upsample, pad (the ops of U-Nets, squeeze-excite gates and padded convolutions):
the executor equals an integer reference on the raw mantissas, the exact alignment / product
types hold for all formats (hypothesis), and bad graphs are refused in one line naming the node."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfx import FixedType
from qfx.fixed import OVERFLOW_MODES, ROUNDING_MODES
from qfx.ir import run_graph
from qfx.ir.cost import cost_report
from qfx.ir.graph import Edge, Graph, Node
from qfx.ir.ops import spec
from qfx.ir.serialize import load_graph, save_graph
from qfx.ir.verify import verify


@st.composite
def fixed_types(draw, max_width: int = 12) -> FixedType:
    signed = draw(st.booleans())
    width = draw(st.integers(2 if signed else 1, max_width))
    return FixedType(width, draw(st.integers(-4, 8)), signed)


def _modes(draw) -> dict:
    return {"rounding": draw(st.sampled_from(ROUNDING_MODES)),
            "overflow": draw(st.sampled_from([o for o in OVERFLOW_MODES if o != "WRAP_SM"]))}


def _raw(rng: np.random.Generator, t: FixedType, shape: tuple[int, ...]) -> np.ndarray:
    """Raw mantissas of ``t`` with both ends of its range included."""
    raw = rng.integers(t.raw_min, t.raw_max + 1, size=shape, dtype=np.int64)
    flat = raw.reshape(-1)
    flat[0], flat[-1] = t.raw_min, t.raw_max
    return raw


def _two_input_graph(op: str, ta: FixedType, tb: FixedType, sa: tuple, sb: tuple,
                     out_t: FixedType, out_shape: tuple) -> Graph:
    g = Graph(inputs=["a", "b"], outputs=["y"])
    g.add_edge(Edge("a", sa, ta))
    g.add_edge(Edge("b", sb, tb))
    g.add_edge(Edge("y", out_shape, out_t))
    acc = spec(op).size_accumulator(Node("y", op, ["a", "b"], "y"), [ta, tb], "y")
    g.add_node(Node("y", op, ["a", "b"], "y", {"acc_type": acc}))
    return verify(g)


# ---------------------------------------------------------------------- concat
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_concat_type_is_the_smallest_exact_alignment(data):
    ta, tb = data.draw(fixed_types()), data.draw(fixed_types())
    acc = spec("concat").size_accumulator(None, [ta, tb], "cat")
    assert acc.contains(ta) and acc.contains(tb)
    assert acc.frac_bits == max(ta.frac_bits, tb.frac_bits)  # the finest grid, no finer
    narrower = FixedType(acc.width - 1, acc.int_bits - 1, acc.signed) if acc.width > 1 else None
    assert narrower is None or not (narrower.contains(ta) and narrower.contains(tb))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_concat_executor_aligns_exactly_then_casts_once(data):
    ta, tb = data.draw(fixed_types()), data.draw(fixed_types())
    out_t = data.draw(fixed_types(10)).replace(**_modes(data.draw))
    g = _two_input_graph("concat", ta, tb, (2, 3, 2), (1, 3, 2), out_t, (3, 3, 2))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    ra, rb = _raw(rng, ta, (4, 2, 3, 2)), _raw(rng, tb, (4, 1, 3, 2))
    acc = g.nodes[0].attrs["acc_type"]
    aligned = np.concatenate([ra << (acc.frac_bits - ta.frac_bits),
                              rb << (acc.frac_bits - tb.frac_bits)], axis=1)
    got = run_graph(g, [ta.from_int(ra), tb.from_int(rb)]).raw[0]
    assert np.array_equal(got, out_t.cast_int(aligned, acc))


# ---------------------------------------------------------------------- mul
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_mul_type_is_ap_fixed_product_and_holds_every_product(data):
    ta, tb = data.draw(fixed_types()), data.draw(fixed_types())
    acc = spec("mul").size_accumulator(None, [ta, tb], "mul")
    assert acc == FixedType.mul(ta, tb)
    ends = [a * b for a in (ta.raw_min, ta.raw_max) for b in (tb.raw_min, tb.raw_max)]
    assert acc.frac_bits == ta.frac_bits + tb.frac_bits
    assert acc.raw_min <= min(ends) and max(ends) <= acc.raw_max


@settings(max_examples=25, deadline=None)
@given(st.data(), st.sampled_from([(4,), (4, 1, 1), (4, 2, 3)]))
def test_mul_executor_is_the_exact_product_then_one_cast(data, gate_shape):
    ta, tb = data.draw(fixed_types()), data.draw(fixed_types())
    out_t = data.draw(fixed_types(10)).replace(**_modes(data.draw))
    g = _two_input_graph("mul", ta, tb, (4, 2, 3), gate_shape, out_t, (4, 2, 3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    ra, rg = _raw(rng, ta, (3, 4, 2, 3)), _raw(rng, tb, (3, *gate_shape))
    prod = ra * (rg if gate_shape == (4, 2, 3) else rg.reshape(3, 4, 1, 1))
    got = run_graph(g, [ta.from_int(ra), tb.from_int(rg)]).raw[0]
    assert np.array_equal(got, out_t.cast_int(prod, g.nodes[0].attrs["acc_type"]))


# ---------------------------------------------------------------------- upsample, pad
def _one_input_graph(op: str, t: FixedType, shape: tuple, out_shape: tuple, attrs: dict) -> Graph:
    g = Graph(inputs=["x"], outputs=["y"])
    g.add_edge(Edge("x", shape, t))
    g.add_edge(Edge("y", out_shape, t))
    g.add_node(Node("y", op, ["x"], "y", attrs))
    return verify(g)


def test_upsample_and_pad_move_values_exactly():
    t = FixedType(6, 2, True)
    rng = np.random.default_rng(0)
    raw = _raw(rng, t, (2, 3, 2, 3))
    up = _one_input_graph("upsample", t, (3, 2, 3), (3, 6, 6), {"scale": [3, 2]})
    want = raw.repeat(3, axis=2).repeat(2, axis=3)
    assert np.array_equal(run_graph(up, t.from_int(raw)).raw[0], want)
    pad = _one_input_graph("pad", t, (3, 2, 3), (3, 5, 5),
                           {"pads": [1, 2, 2, 0], "value": -0.25})
    want = np.pad(raw, ((0, 0), (0, 0), (1, 2), (2, 0)), constant_values=-4)  # -0.25 = raw -4
    assert np.array_equal(run_graph(pad, t.from_int(raw)).raw[0], want)
    assert spec("upsample").same_format and spec("pad").same_format


def test_costs_and_file_round_trip():
    t = FixedType(8, 3)
    g = _two_input_graph("mul", t, t, (2, 2, 2), (2,), FixedType(8, 3), (2, 2, 2))
    c = cost_report(g).node("y")
    assert (c.multipliers, c.mult_ops) == (8, 8)
    cat = _two_input_graph("concat", t, t, (2, 2, 2), (1, 2, 2), t, (3, 2, 2))
    assert cost_report(cat).node("y").multipliers == 0


def test_graph_with_every_new_op_round_trips_through_the_file(tmp_path):
    t = FixedType(8, 3)
    g = _one_input_graph("pad", t, (1, 2, 2), (1, 3, 4), {"pads": [1, 1, 0, 1], "value": 0.5})
    back = load_graph(save_graph(g, tmp_path / "g.qfx.npz"))
    assert back.nodes[0].attrs == {"pads": [1, 1, 0, 1], "value": 0.5}


# ---------------------------------------------------------------------- bad graphs
def _refused(build, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        build()
    assert "\n" not in str(err.value)


def test_bad_graphs_are_refused_naming_the_node():
    t = FixedType(8, 3)
    _refused(lambda: _two_input_graph("concat", t, t, (2, 4, 4), (2, 4, 3), t, (4, 4, 4)),
             r"node 'y' \(concat\): concatenates shapes \(2, 4, 4\) and \(2, 4, 3\)")
    _refused(lambda: _two_input_graph("mul", t, t, (2, 4, 4), (4,), t, (2, 4, 4)),
             r"node 'y' \(mul\): multiplies shapes \(2, 4, 4\) and \(4,\)")
    _refused(lambda: _one_input_graph("upsample", t, (1, 2, 2), (1, 3, 3), {"scale": [1.5, 1.5]}),
             r"node 'y' \(upsample\): scale must be integers >= 1, got 1.5")
    _refused(lambda: _one_input_graph("upsample", t, (4,), (4,), {"scale": 2}),
             r"node 'y' \(upsample\): needs a \(C, H, W\) input")
    _refused(lambda: _one_input_graph("pad", t, (1, 2, 2), (1, 3, 3),
                                      {"pads": [1, 1, 0, 0], "value": 0.01}),
             r"node 'y' \(pad\): the pad value 0.01 is not a value of the input type")
    _refused(lambda: _one_input_graph("pad", t, (1, 2, 2), (1, 3, 3),
                                      {"pads": [1, -1, 0, 0], "value": 0.0}),
             r"node 'y' \(pad\): pads must be integers >= 0")
    bad_acc = Graph(inputs=["a", "b"], outputs=["y"])
    for name, shape, tt in [("a", (2,), t), ("b", (2,), FixedType(8, 6)), ("y", (4,), t)]:
        bad_acc.add_edge(Edge(name, shape, tt))
    bad_acc.add_node(Node("y", "concat", ["a", "b"], "y", {"acc_type": t}))
    _refused(lambda: verify(bad_acc), r"node 'y' \(concat\): acc_type ap_fixed<8,3> cannot hold "
                                      r"every value of input 'b'")
