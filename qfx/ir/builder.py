"""``GraphBuilder``: how the frontends make a graph. It hands out unique C++-safe names, tracks
which edges are binary ({-1, +1}) from the ops' traits, sizes exact accumulators through the
op registry, and verifies the finished graph.

Example:
    >>> from qfx.fixed.fixed_type import FixedType
    >>> b = GraphBuilder()
    >>> x = b.add_input("x", (4,), FixedType(8, 3))
    >>> q = b.add("q", "input", [x], FixedType(8, 3), (4,))
    >>> b.finish([q]).summary().splitlines()[1].split()[:2]
    ['q', 'input']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qfx.fixed.fixed_type import FixedType
from qfx.ir.graph import Edge, Graph, Node, sanitize_identifier
from qfx.ir.ops import spec
from qfx.ir.verify import verify

__all__ = ["GraphBuilder"]


class GraphBuilder:
    """Builds one :class:`Graph` node by node (in execution order)."""

    def __init__(self) -> None:
        self.graph = Graph()
        self.names: set[str] = set()
        self.binary: set[str] = set()  # edges whose values are all -1 or +1

    def name(self, base: str) -> str:
        """A fresh identifier derived from ``base`` (``base``, ``base_2``, ...)."""
        name = sanitize_identifier(base)
        candidate, i = name, 1
        while candidate in self.names:
            i += 1
            candidate = f"{name}_{i}"
        self.names.add(candidate)
        return candidate

    def add_input(self, base: str, shape: Sequence[int], t: FixedType) -> str:
        """A graph input edge; returns its name."""
        name = self.name(base)
        self.graph.inputs.append(name)
        self.graph.add_edge(Edge(name, tuple(int(d) for d in shape), t))
        return name

    def type(self, edge: str) -> FixedType:
        return self.graph.edges[edge].type

    def shape(self, edge: str) -> tuple[int, ...]:
        return self.graph.edges[edge].shape

    def is_binary(self, edge: str) -> bool:
        return edge in self.binary

    def node(self, op: str, inputs: Sequence[str], attrs: dict[str, Any] | None = None,
             params: dict[str, np.ndarray] | None = None, source: str = "") -> Node:
        """A node not yet in the graph (to size its accumulator before adding it)."""
        return Node("", op, list(inputs), "", dict(attrs or {}), dict(params or {}), source)

    def size_accumulator(self, node: Node, where: str) -> FixedType:
        """The exact ``acc_type`` of ``node`` over its inputs' formats (the op's rule); errors
        start with ``where``."""
        return spec(node.op).size_accumulator(node, [self.type(i) for i in node.inputs], where)

    def add(self, base: str, op: str, inputs: Sequence[str], out_type: FixedType,
            out_shape: Sequence[int], attrs: dict[str, Any] | None = None,
            params: dict[str, np.ndarray] | None = None, source: str = "") -> str:
        """Append a node (named like its output edge); returns the output edge's name."""
        return self.add_node(self.node(op, inputs, attrs, params, source), base, out_type,
                             out_shape)

    def add_node(self, node: Node, base: str, out_type: FixedType,
                 out_shape: Sequence[int]) -> str:
        """Append a node made with :meth:`node`; returns its output edge's name."""
        name = self.name(base)
        node.name = node.output = name
        self.graph.add_edge(Edge(name, tuple(int(d) for d in out_shape), out_type))
        try:
            self.graph.add_node(node)
        except ValueError:
            self.drop(name)
            raise
        self.track(node)
        return name

    def track(self, node: Node) -> None:
        """Record whether ``node``'s output is binary (its op's traits)."""
        op = spec(node.op)
        if op.makes_binary or (op.keeps_binary and node.inputs[0] in self.binary):
            self.binary.add(node.output)

    def drop(self, name: str) -> None:
        """Remove the node (if any) and edge ``name`` again (e.g. merged into its consumer)."""
        self.graph.nodes = [n for n in self.graph.nodes if n.name != name]
        self.graph.edges.pop(name, None)
        self.names.discard(name)
        self.binary.discard(name)

    def finish(self, outputs: Sequence[str]) -> Graph:
        """Set the outputs and return the verified graph."""
        self.graph.outputs = list(outputs)
        return verify(self.graph)
