"""cost_report: hand-counted multipliers, shift-add terms, XNOR bits and adder bits."""

from __future__ import annotations

import numpy as np
import pytest

from qfx import FixedType
from qfx.ir import Edge, Graph, Node, binary_edges, cost_report

I64 = np.int64
ACC = FixedType(16, 12)
T8 = FixedType(8, 4)


def _graph(in_shape, out_shape, node_op, params, attrs, in_type=T8, out_type=T8,
           prefix=()) -> Graph:
    """x -> [prefix nodes] -> node; prefix: (op, params, attrs, out_type) keeping the shape."""
    g = Graph(inputs=["x"], outputs=["y"])
    g.add_edge(Edge("x", tuple(in_shape), FixedType(32, 16)))
    g.add_edge(Edge("q", tuple(in_shape), in_type))
    g.add_node(Node("q", "input", ["x"], "q"))
    prev = "q"
    for i, (op, p, a, t) in enumerate(prefix):
        g.add_edge(Edge(f"p{i}", tuple(in_shape), t))
        g.add_node(Node(f"p{i}", op, [prev], f"p{i}", a, p))
        prev = f"p{i}"
    g.add_edge(Edge("y", tuple(out_shape), out_type))
    g.add_node(Node("y", node_op, [prev], "y", attrs, params))
    return g


W = np.array([[3, 4, 0, -1], [2, 0, 0, 0]], dtype=I64)
BIAS = np.array([1, 0], dtype=I64)


def test_dense_counts_true_multipliers_powers_of_two_and_additions():
    g = _graph((4,), (2,), "dense", {"weight": W, "bias": BIAS},
               {"weight_type": FixedType(4, 4), "bias_type": FixedType(4, 4), "acc_type": ACC})
    c = cost_report(g).node("y")
    # row 0: 3 (multiplier), 4 and -1 (shifts), bias -> 4 summands, 3 additions
    # row 1: 2 (shift), zero bias -> 1 summand, no addition
    assert (c.macs, c.multipliers, c.mult_ops, c.shift_add_terms) == (8, 1, 1, 3)
    assert (c.additions, c.adder_bits) == (3, 3 * 16)
    assert not cost_report(g).dsp_free


def test_k_hot_dense_has_no_multiplier_and_counts_digits():
    digits = np.zeros((2, 4, 2, 2), dtype=I64)
    digits[0, 0] = [[1, 2], [-1, 0]]  # 3 = 4 - 1
    digits[0, 1, 0] = [1, 2]          # 4
    digits[0, 3, 0] = [-1, 0]         # -1
    digits[1, 0, 0] = [1, 1]          # 2
    g = _graph((4,), (2,), "dense", {"weight": W, "bias": BIAS, "weight_digits": digits},
               {"weight_type": FixedType(4, 4), "bias_type": FixedType(4, 4), "acc_type": ACC,
                "weight_khot": 2})
    report = cost_report(g)
    c = report.node("y")
    assert (c.multipliers, c.mult_ops, c.shift_add_terms) == (0, 0, 5)
    assert (c.additions, c.adder_bits) == (4, 4 * 16)  # row 0: 4 digits + bias - 1
    assert report.dsp_free and "0 DSP" in str(report)


def test_conv_costs_scale_with_output_positions():
    w = np.array([[[[3, 4], [0, -1]]], [[[2, 0], [0, 0]]]], dtype=I64)
    g = _graph((1, 4, 4), (2, 3, 3), "conv2d", {"weight": w},
               {"weight_type": FixedType(4, 4), "acc_type": ACC, "stride": [1, 1],
                "padding": [0, 0], "dilation": [1, 1], "groups": 1})
    c = cost_report(g).node("y")
    assert (c.macs, c.multipliers, c.mult_ops, c.shift_add_terms) == (72, 1, 9, 27)
    assert (c.additions, c.adder_bits) == (18, 18 * 16)


def test_batchnorm_scales():
    g = _graph((3, 2, 2), (3, 2, 2), "batchnorm",
               {"scale": np.array([3, 2, 0], dtype=I64), "shift": np.array([1, 0, 1], dtype=I64)},
               {"scale_type": FixedType(4, 2), "shift_type": FixedType(4, 2), "acc_type": ACC})
    c = cost_report(g).node("y")
    # channel 0: multiplier + shift addition; channel 1: a shift only; channel 2: constant
    assert (c.macs, c.multipliers, c.mult_ops, c.shift_add_terms) == (12, 1, 4, 4)
    assert c.additions == 4


def test_binary_layers_and_weights_on_binary_inputs_need_no_multiplier():
    thr = ("threshold", {"threshold": np.zeros(4, dtype=I64), "direction": np.ones(4, dtype=I64)},
           {"threshold_type": FixedType(8, 4)}, FixedType(2, 2))
    g = _graph((4,), (2,), "dense", {"weight": W},
               {"weight_type": FixedType(4, 4), "acc_type": ACC}, prefix=[thr])
    assert binary_edges(g) == {"p0"}
    c = cost_report(g).node("y")
    assert (c.multipliers, c.shift_add_terms, c.additions) == (0, 4, 2)  # sign flips and adds
    assert cost_report(g).node("p0").comparisons == 4
    wb = np.array([[1, -1, 1, 1], [-1, -1, 1, -1], [1, 1, 1, 1]], dtype=I64)
    acc = FixedType(4, 4)
    g = _graph((4,), (3,), "binary_dense", {"weight": wb}, {"acc_type": acc, "fan_in": 4},
               out_type=acc, prefix=[thr])
    c = cost_report(g).node("y")
    # popcount of 4 bits: 1+1 -> 2 bits (twice), 2+2 -> 3 bits; then 2p - n at 4 bits
    assert (c.macs, c.xnor_bits, c.multipliers, c.additions) == (12, 12, 0, 12)
    assert c.adder_bits == 3 * (2 + 2 + 3 + 4)
    scale = np.array([3, 4, 1], dtype=I64)
    g = _graph((4,), (3,), "binary_dense", {"weight": wb, "scale": scale},
               {"acc_type": FixedType(8, 6), "fan_in": 4, "scale_type": FixedType(4, 2, False)},
               prefix=[thr])
    assert cost_report(g).node("y").multipliers == 1  # the scale 3


def test_average_pool_reciprocal_and_totals_table():
    g = _graph((2, 3, 3), (2, 1, 1), "avgpool2d", {"recip": np.array([7282], dtype=I64)},
               {"kernel": [3, 3], "stride": [3, 3], "sum_type": FixedType(12, 8),
                "recip_type": FixedType(16, -3, False), "acc_type": FixedType(28, 5)})
    report = cost_report(g)
    c = report.node("y")
    assert (c.multipliers, c.mult_ops, c.additions, c.adder_bits) == (1, 2, 16, 16 * 12)
    text = str(report)
    assert "total" in text and "need DSPs" in text
    assert report.total.additions == 16
    assert report.as_dict()["y"]["multipliers"] == 1
    with pytest.raises(KeyError):
        report.node("nope")
