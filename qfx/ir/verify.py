"""``verify``: prove that a graph computes exactly what the executor computes, or refuse it by
node name, before any backend sees it.

It runs on every graph whichever way it was made (``qfx.freeze``, ``qfx.import_onnx``,
``load_graph``, by hand before an export): names are C++ identifiers, every node fits its op's
schema, nodes come in execution order, every output shape is what the op infers, every
constant fits its type, every accumulator holds every partial sum (so no order of additions
can round or overflow), and every format is narrow enough for exact float64 evaluation.

Example:
    >>> from qfx.fixed.fixed_type import FixedType
    >>> from qfx.ir.graph import Edge, Graph, Node
    >>> g = Graph(inputs=["x"], outputs=["q"])
    >>> g.add_edge(Edge("x", (2,), FixedType(16, 8)))
    >>> g.add_edge(Edge("q", (3,), FixedType(8, 3)))
    >>> g.add_node(Node("q", "input", ["x"], "q"))
    >>> verify(g)
    Traceback (most recent call last):
    ...
    ValueError: node 'q' (input): output shape (3,) != computed (2,)
"""

from __future__ import annotations

import re

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.kernels import FLOAT64_EXACT_BITS
from qfx.ir.graph import CPP_KEYWORDS, Graph
from qfx.ir.ops import spec

__all__ = ["IDENTIFIER_RE", "check_exact", "check_identifier", "verify"]

#: Names that reach C++ must match this (the backends never rename them).
IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(name: object, what: str) -> str:
    """``name`` if it is a C/C++ identifier and not a C++ keyword (or ``main``), else a one-line
    error naming ``what``. Every name that reaches C++ or Tcl goes through this check.

    Example:
        >>> check_identifier("conv1", "IR node name")
        'conv1'
        >>> check_identifier("int", "project_name")
        Traceback (most recent call last):
        ...
        ValueError: project_name 'int' is a C++ keyword (or main); choose another name
    """
    if not isinstance(name, str) or not IDENTIFIER_RE.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a C++ identifier (it must match "
                         "[A-Za-z_][A-Za-z0-9_]*); rename it, e.g. with "
                         "qfx.ir.sanitize_identifier, before exporting")
    if name in CPP_KEYWORDS:
        raise ValueError(f"{what} {name!r} is a C++ keyword (or main); choose another name")
    return name


def check_exact(graph: Graph) -> None:
    """Raise if any edge or accumulator is too wide for exact float64 evaluation."""
    for node in graph.nodes:
        types = [graph.edges[node.output].type] + [
            v for v in node.attrs.values() if isinstance(v, FixedType)]
        for t in types:
            if t.width > FLOAT64_EXACT_BITS:
                raise ValueError(
                    f"node {node.name!r} ({node.source or node.op}) needs a {t.cpp()} "
                    f"intermediate: more than {FLOAT64_EXACT_BITS} bits cannot be evaluated "
                    "exactly; reduce the widths of this layer's inputs, weights or bias"
                )


def verify(graph: Graph) -> Graph:
    """Prove ``graph`` exact (see the module docstring) and return it; raise ``ValueError``
    naming the first node (or edge) that breaks a rule."""
    for name in graph.edges:
        check_identifier(name, "IR edge name")
    for node in graph.nodes:
        check_identifier(node.name, "IR node name")
        node.validate()
    if not graph.inputs or not graph.outputs:
        raise ValueError("the graph needs at least one input and one output")
    for name in (*graph.inputs, *graph.outputs):
        if name not in graph.edges:
            raise ValueError(f"graph input/output {name!r} is not an edge of the graph")
    check_exact(graph)
    known = set(graph.inputs)
    for node in graph.nodes:
        for i in node.inputs:
            if i not in known:
                raise ValueError(f"node {node.name!r} reads edge {i!r} before it is computed "
                                 "(nodes must be in execution order)")
        if node.output in known:
            raise ValueError(f"edge {node.output!r} is written twice")
        known.add(node.output)
        op = spec(node.op)
        ins = [graph.edges[i] for i in node.inputs]
        out = graph.edges[node.output]
        shape = op.infer_shape(node, ins)
        if tuple(out.shape) != tuple(shape):
            raise ValueError(f"node {node.name!r} ({node.op}): output shape {out.shape} != "
                             f"computed {shape}")
        op.check_types(node, ins, out)
    for o in graph.outputs:
        if o not in known:
            raise ValueError(f"graph output {o!r} is never computed")
    return graph
