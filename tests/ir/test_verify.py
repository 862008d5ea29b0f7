"""verify: every rule of the IR refuses a broken graph by node name; freeze, ONNX import and
load_graph all run it, so a hand-edited file cannot reach a backend unproven."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx import FixedType
from qfx.ir import Edge, Graph, Node, load_graph, save_graph, verify
from qfx.nn import QConv2d, QFlatten, QInput, QLinear, QReLU

I64 = np.int64


def _dense(acc: FixedType | None = None, *, out_shape=(2,), w=None) -> Graph:
    w = np.array([[3, -4, 5], [-7, 6, 1]], dtype=I64) if w is None else w
    x_t, w_t = FixedType(6, 2), FixedType(4, 1)
    g = Graph(inputs=["x"], outputs=["y"])
    g.add_edge(Edge("x", (3,), FixedType(16, 8)))
    g.add_edge(Edge("q", (3,), x_t))
    g.add_edge(Edge("y", out_shape, FixedType(8, 4)))
    g.add_node(Node("q", "input", ["x"], "q"))
    node = Node("y", "dense", ["q"], "y", {"weight_type": w_t}, {"weight": w})
    node.attrs["acc_type"] = acc or qfx.ir.ops.spec("dense").size_accumulator(node, [x_t], "y")
    g.add_node(node)
    return g


def test_a_consistent_graph_passes():
    assert verify(_dense()) is not None


def test_the_sized_accumulator_is_the_tightest_exact_one():
    g = _dense()
    acc = g.node("y").attrs["acc_type"]
    # the extreme partial sums: every |w| times the input's extreme raw value
    w = g.node("y").params["weight"]
    x_t = g.edges["q"].type
    bound = max(int(np.where(row > 0, row * x_t.raw_max, row * x_t.raw_min).sum()) for row in w)
    low = min(int(np.where(row > 0, row * x_t.raw_min, row * x_t.raw_max).sum()) for row in w)
    assert acc.frac_bits == x_t.frac_bits + FixedType(4, 1).frac_bits
    assert acc.raw_min <= low and bound <= acc.raw_max
    narrower = FixedType(acc.width - 1, acc.int_bits - 1)
    assert not (narrower.raw_min <= low and bound <= narrower.raw_max)
    with pytest.raises(ValueError, match=r"node 'y' \(dense\): accumulator .* cannot hold"):
        verify(_dense(narrower))


def test_too_few_fractional_bits_in_the_accumulator_are_refused():
    with pytest.raises(ValueError, match="fewer fractional bits"):
        verify(_dense(FixedType(40, 36)))


def test_output_shape_must_be_the_inferred_one():
    with pytest.raises(ValueError, match=r"node 'y' \(dense\): output shape \(3,\) != computed "
                                         r"\(2,\)"):
        verify(_dense(out_shape=(3,)))


def test_weight_outside_its_type_is_refused():
    with pytest.raises(ValueError, match="weight: raw values"):
        verify(_dense(FixedType(30, 20), w=np.array([[30, 0, 0], [0, 0, 0]], dtype=I64)))


def test_order_names_ops_and_outputs():
    g = _dense()
    g.nodes.reverse()
    with pytest.raises(ValueError, match="reads edge 'q' before it is computed"):
        verify(g)
    g = _dense()
    g.outputs = ["nowhere"]
    with pytest.raises(ValueError, match="'nowhere' is not an edge"):
        verify(g)
    g = _dense()
    g.nodes[1].op = "mystery"
    with pytest.raises(ValueError, match="unknown op 'mystery'; known: "):
        verify(g)
    g = _dense()
    g.edges["bad name"] = Edge("bad name", (1,), FixedType(8, 3))
    with pytest.raises(ValueError, match="IR edge name 'bad name' is not a C\\+\\+ identifier"):
        verify(g)


def test_too_wide_for_float64_is_refused():
    g = _dense()
    g.edges["y"] = Edge("y", (2,), FixedType(60, 30))
    with pytest.raises(ValueError, match="more than 53 bits"):
        verify(g)


def _frozen() -> qfx.Graph:
    torch.manual_seed(0)
    net = nn.Sequential(QInput(8), QConv2d(2, 3, 3, padding=1), QReLU(), QFlatten(),
                        QLinear(3 * 4 * 4, 2))
    with qfx.calibration(net):
        net(torch.randn(16, 2, 4, 4))
    return qfx.freeze(net, torch.randn(1, 2, 4, 4))


def test_load_graph_refuses_a_hand_edited_accumulator(tmp_path):
    path = save_graph(_frozen(), tmp_path / "m.qfx.npz")
    data = dict(np.load(path))
    doc = json.loads(bytes(data["__graph__"]).decode())
    conv = next(n for n in doc["nodes"] if n["op"] == "conv2d")
    conv["attrs"]["acc_type"] = {"__fixed__": "ap_fixed<6,3>"}
    data["__graph__"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    np.savez(tmp_path / "edited.qfx.npz", **data)
    with pytest.raises(ValueError, match=rf"node {conv['name']!r} \(conv2d\): accumulator"):
        load_graph(tmp_path / "edited.qfx.npz")
    assert load_graph(path).summary() == _frozen().summary()


def test_freeze_output_is_verified():
    g = _frozen()
    assert verify(g) is g
    # every accumulator is the op's own sizing of its input formats
    for node in g.nodes:
        if "acc_type" in node.attrs and node.op != "add":
            ins = [g.edges[i].type for i in node.inputs]
            assert node.attrs["acc_type"] == qfx.ir.ops.spec(node.op).size_accumulator(
                node, ins, node.name)
