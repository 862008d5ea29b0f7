"""Graph structure, names and the file format (round trip, refusal of foreign files)."""

from __future__ import annotations

import numpy as np
import pytest

from qfx import FixedType
from qfx.ir import Edge, Graph, Node, load_graph, run_graph, sanitize_identifier, save_graph
from qfx.ir.builder import GraphBuilder


def _graph() -> Graph:
    b = GraphBuilder()
    x = b.add_input("in put", (2,), FixedType(16, 8))
    q = b.add("layer.0", "input", [x], FixedType(8, 3, rounding="RND", overflow="SAT"), (2,))
    r = b.add("layer.0", "relu", [q], FixedType(6, 3), (2,))
    return b.finish([r])


def test_builder_names_are_unique_identifiers():
    g = _graph()
    assert g.inputs == ["in_put"]
    assert [n.name for n in g.nodes] == ["layer_0", "layer_0_2"]
    assert g.producer("layer_0_2").op == "relu" and g.producer("in_put") is None


def test_save_load_round_trip_is_exact(tmp_path):
    g = _graph()
    back = load_graph(save_graph(g, tmp_path / "sub" / "m.qfx.npz"))
    assert back.summary() == g.summary()
    x = np.array([[0.3, -9.7], [5.0, 1.26]])
    assert np.array_equal(run_graph(back, x).raw[0], run_graph(g, x).raw[0])


def test_foreign_files_are_refused(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a qfx frozen model"):
        load_graph(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="no frozen model"):
        load_graph(tmp_path / "missing.npz")


def test_node_lookup_and_schema_errors_name_the_node():
    g = _graph()
    with pytest.raises(KeyError, match="no node named 'zz'"):
        g.node("zz")
    g.add_edge(Edge("d", (2,), FixedType(8, 3)))
    with pytest.raises(ValueError, match=r"node 'd' \(dense\) lacks weight, weight_type"):
        g.add_node(Node("d", "dense", ["layer_0"], "d"))
    with pytest.raises(ValueError, match="refers to unknown edge 'nope'"):
        g.add_node(Node("e", "relu", ["nope"], "d"))


def test_sanitize_identifier():
    assert sanitize_identifier("3x.conv") == "n_3x_conv"
    assert sanitize_identifier("") == "node"
