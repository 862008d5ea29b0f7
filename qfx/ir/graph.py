"""The frozen integer graph: ordered nodes, int64 parameters, a FixedType on every edge.

A `Graph` is what the backends consume and what the exact executor runs. It knows nothing of
training code. Its file format is :mod:`qfx.ir.serialize`; :func:`qfx.ir.verify.verify`
proves it exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qfx.fixed.fixed_type import FixedType
from qfx.ir.ops import pair, spec

__all__ = ["CPP_KEYWORDS", "Edge", "Node", "Graph", "pair", "sanitize_identifier"]

_IDENT = re.compile(r"[^A-Za-z0-9_]")

#: C++ keywords and alternative tokens (C++20), plus ``main``: none of them may name anything
#: the backends write into C++ or Tcl (the one list :func:`qfx.ir.verify.check_identifier` and
#: :func:`sanitize_identifier` use).
CPP_KEYWORDS = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
co_return co_yield decltype default delete do double dynamic_cast else enum explicit export
extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
nullptr operator or or_eq private protected public register reinterpret_cast requires return
short signed sizeof static static_assert static_cast struct switch template this thread_local
throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while
xor xor_eq main NULL
""".split())


def sanitize_identifier(name: str) -> str:
    """Turn any module path into a C/C++ identifier (letters, digits, underscores).

    Example:
        >>> sanitize_identifier('layer1.0.conv; system("x")')
        'layer1_0_conv__system__x__'
        >>> sanitize_identifier("int")
        'int_'
    """
    ident = _IDENT.sub("_", name) or "node"
    ident = ident if not ident[0].isdigit() else f"n_{ident}"
    return f"{ident}_" if ident in CPP_KEYWORDS else ident


@dataclass(frozen=True)
class Edge:
    """A tensor between nodes: its name, shape without the batch dimension, and format."""

    name: str
    shape: tuple[int, ...]
    type: FixedType


@dataclass
class Node:
    """One operation of the integer graph.

    ``params`` hold raw int64 mantissas (their FixedTypes are in ``attrs``); FixedType attrs
    are stored as FixedType objects in memory and as C++ spellings on disk.
    """

    name: str
    op: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""  # the module path or function it came from, for messages

    def validate(self) -> None:
        """Check this node against its op's schema (:meth:`qfx.ir.ops.OpSpec.validate_node`)."""
        spec(self.op).validate_node(self)


@dataclass
class Graph:
    """A frozen fixed-point model: inputs, ordered nodes, outputs, and every edge's format.

    Example:
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (4,), FixedType(32, 16)))
        >>> g.add_edge(Edge("q", (4,), FixedType(8, 3)))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> [n.op for n in g.nodes]
        ['input']
    """

    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    edges: dict[str, Edge] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def add_edge(self, edge: Edge) -> None:
        if edge.name in self.edges:
            raise ValueError(f"edge {edge.name!r} defined twice")
        self.edges[edge.name] = edge

    def add_node(self, node: Node) -> None:
        node.validate()
        for name in [*node.inputs, node.output]:
            if name not in self.edges:
                raise ValueError(f"node {node.name!r} refers to unknown edge {name!r}")
        if any(n.name == node.name for n in self.nodes):
            raise ValueError(f"node name {node.name!r} used twice")
        self.nodes.append(node)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}; nodes: {', '.join(n.name for n in self.nodes)}")

    def out_type(self, node: Node) -> FixedType:
        return self.edges[node.output].type

    def producer(self, edge: str) -> Node | None:
        for n in self.nodes:
            if n.output == edge:
                return n
        return None

    def summary(self) -> str:
        """A table of nodes with their output formats and shapes."""
        rows = [f"{'node':24s} {'op':13s} {'output type':36s} shape"]
        for n in self.nodes:
            e = self.edges[n.output]
            rows.append(f"{n.name:24s} {n.op:13s} {e.type.cpp():36s} {e.shape}")
        return "\n".join(rows)
