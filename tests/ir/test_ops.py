"""The op registry: every op is complete (schema, inference, proof, execution, cost) and its
traits are what the executor and the cost model act on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qfx import FixedType
from qfx.ir.builder import GraphBuilder
from qfx.ir.ops import OPS, OpSpec, spec


def test_every_op_defines_execute_and_is_registered_once():
    assert len(OPS) == len(set(OPS)) >= 14
    for name, op in OPS.items():
        assert op.name == name
        assert type(op).execute is not OpSpec.execute, name
        assert not (op.same_format and op.casts), name  # a same-format op never casts


def test_unknown_op_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown op 'conv3d'; known: .*conv2d"):
        spec("conv3d")


def test_binary_edges_follow_the_traits():
    b = GraphBuilder()
    x = b.add_input("x", (2, 4, 4), FixedType(8, 3))
    q = b.add("q", "input", [x], FixedType(8, 3), (2, 4, 4))
    t = b.add("t", "threshold", [q], FixedType(2, 2), (2, 4, 4),
              {"threshold_type": FixedType(8, 3)},
              {"threshold": np.zeros(2, dtype=np.int64), "direction": np.ones(2, dtype=np.int64)})
    p = b.add("p", "maxpool2d", [t], FixedType(2, 2), (2, 2, 2),
              {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1],
               "ceil_mode": False})
    f = b.add("f", "flatten", [p], FixedType(2, 2), (8,))
    r = b.add("r", "relu", [q], FixedType(8, 3), (2, 4, 4))
    assert {e for e in (q, t, p, f, r) if b.is_binary(e)} == {t, p, f}
    b.drop(f)
    assert not b.is_binary(f) and f not in b.graph.edges


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 10), st.integers(-3, 6), st.booleans())
def test_sized_accumulators_hold_every_extreme_sum(seed, width, int_bits, signed):
    """For random constants and input formats, the conv/BN accumulators the op sizes hold the
    exact result at every corner of the input range (the sum is extreme at a corner)."""
    rng = np.random.default_rng(seed)
    x_t = FixedType(width + 1 if signed else width, int_bits, signed)
    w = rng.integers(-40, 41, size=(3, 2, 2, 2)).astype(np.int64)
    node = OPS["conv2d"]
    b = GraphBuilder()
    x = b.add_input("x", (2, 3, 3), FixedType(32, 16))
    q = b.add("q", "input", [x], x_t, (2, 3, 3))
    n = b.node("conv2d", [q], {"weight_type": FixedType(7, 3), "stride": [1, 1],
                               "padding": [0, 0], "dilation": [1, 1], "groups": 1},
               {"weight": w})
    n.attrs["acc_type"] = acc = b.size_accumulator(n, "c")
    b.add_node(n, "c", acc, (3, 2, 2))
    g = b.finish(["c"])
    corners = torch.tensor([[x_t.min], [x_t.max]], dtype=torch.float64)
    for pick in range(16):  # per tap: min or max of the input range
        xs = torch.stack([corners[(pick >> (i % 4)) & 1, 0] for i in range(18)]).view(1, 2, 3, 3)
        out = node.execute(g.node("c"), [xs], torch.device("cpu"))
        assert float(out.max()) <= acc.max and float(out.min()) >= acc.min
