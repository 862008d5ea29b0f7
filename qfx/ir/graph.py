"""The frozen integer graph: ordered nodes, int64 parameters, a FixedType on every edge.

A `Graph` is what the backends consume and what the exact executor runs. It knows nothing of
training code. It is saved as one ``.npz`` file (no pickle): the structure as JSON under the
key ``__graph__`` and every parameter array as int64.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfx.fixed.fixed_type import FixedType

__all__ = ["Edge", "Node", "Graph", "OPS", "sanitize_identifier", "save_graph", "load_graph"]

FORMAT_VERSION = 1

# op -> (number of inputs, required params, required attrs). The executor and backends
# implement exactly these.
OPS: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = {
    "input": (1, (), ()),
    "dense": (1, ("weight",), ("weight_type", "acc_type")),
    "conv2d": (1, ("weight",), ("weight_type", "acc_type", "stride", "padding", "dilation",
                                "groups")),
    "batchnorm": (1, ("scale", "shift"), ("scale_type", "shift_type", "acc_type")),
    "relu": (1, (), ()),
    "hardtanh": (1, (), ("min_raw", "max_raw", "clamp_type")),
    "add": (2, (), ("acc_type",)),
    "maxpool2d": (1, (), ("kernel", "stride", "padding", "dilation", "ceil_mode")),
    "avgpool2d": (1, (), ("kernel", "stride", "sum_type", "acc_type")),
    "flatten": (1, (), ()),
}

_IDENT = re.compile(r"[^A-Za-z0-9_]")


def sanitize_identifier(name: str) -> str:
    """Turn any module path into a C/C++ identifier (letters, digits, underscores).

    Example:
        >>> sanitize_identifier('layer1.0.conv; system("x")')
        'layer1_0_conv__system__x__'
    """
    ident = _IDENT.sub("_", name) or "node"
    return ident if not ident[0].isdigit() else f"n_{ident}"


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
        if self.op not in OPS:
            raise ValueError(f"node {self.name!r}: unknown op {self.op!r}; known: "
                             f"{', '.join(OPS)}")
        n_in, params, attrs = OPS[self.op]
        if len(self.inputs) != n_in:
            raise ValueError(f"node {self.name!r} ({self.op}) needs {n_in} input(s), "
                             f"has {len(self.inputs)}")
        missing = [p for p in params if p not in self.params] + [
            a for a in attrs if a not in self.attrs]
        if missing:
            raise ValueError(f"node {self.name!r} ({self.op}) lacks {', '.join(missing)}")
        for key, arr in self.params.items():
            if not isinstance(arr, np.ndarray) or arr.dtype != np.int64:
                raise ValueError(f"node {self.name!r}: param {key!r} must be an int64 array")


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
        rows = [f"{'node':24s} {'op':10s} {'output type':36s} shape"]
        for n in self.nodes:
            e = self.edges[n.output]
            rows.append(f"{n.name:24s} {n.op:10s} {e.type.cpp():36s} {e.shape}")
        return "\n".join(rows)


# ---------------------------------------------------------------------- serialisation
def _encode_attr(value: Any) -> Any:
    if isinstance(value, FixedType):
        return {"__fixed__": value.cpp()}
    if isinstance(value, (list, tuple)):
        return [_encode_attr(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def _decode_attr(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__fixed__"}:
        return FixedType.parse(value["__fixed__"])
    if isinstance(value, list):
        return [_decode_attr(v) for v in value]
    return value


def save_graph(graph: Graph, path: str | os.PathLike[str]) -> Path:
    """Write ``graph`` to one ``.npz`` file atomically (no pickle anywhere).

    Example:
        >>> import tempfile, os
        >>> g = Graph(inputs=["x"], outputs=["x"])
        >>> g.add_edge(Edge("x", (2,), FixedType(8, 3)))
        >>> p = save_graph(g, os.path.join(tempfile.mkdtemp(), "m.qfx.npz"))
        >>> load_graph(p).edges["x"].type.cpp()
        'ap_fixed<8,3>'
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for i, n in enumerate(graph.nodes):
        keys = {}
        for k, arr in n.params.items():
            key = f"p{i}_{k}"
            arrays[key] = np.ascontiguousarray(arr, dtype=np.int64)
            keys[k] = key
        nodes.append({"name": n.name, "op": n.op, "inputs": n.inputs, "output": n.output,
                      "source": n.source,
                      "attrs": {k: _encode_attr(v) for k, v in n.attrs.items()}, "params": keys})
    doc = {
        "format": "qfx-frozen-graph", "version": FORMAT_VERSION,
        "inputs": graph.inputs, "outputs": graph.outputs,
        "edges": [{"name": e.name, "shape": list(e.shape), "type": e.type.cpp()}
                  for e in graph.edges.values()],
        "nodes": nodes, "meta": _encode_attr(graph.meta),
    }
    arrays["__graph__"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_graph(path: str | os.PathLike[str]) -> Graph:
    """Read a graph written by :func:`save_graph` (arrays are loaded with pickle disabled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no frozen model at {path}")
    try:
        data = np.load(path, allow_pickle=False)
        doc = json.loads(bytes(data["__graph__"]).decode())
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"{path} is not a qfx frozen model (.npz with a __graph__ entry): "
                         f"{err}") from None
    if doc.get("format") != "qfx-frozen-graph" or doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported frozen-model format {doc.get('format')!r} "
                         f"version {doc.get('version')!r}")
    g = Graph(inputs=list(doc["inputs"]), outputs=list(doc["outputs"]),
              meta=_decode_attr(doc.get("meta", {})))
    for e in doc["edges"]:
        g.add_edge(Edge(e["name"], tuple(e["shape"]), FixedType.parse(e["type"])))
    for n in doc["nodes"]:
        g.add_node(Node(n["name"], n["op"], list(n["inputs"]), n["output"],
                        {k: _decode_attr(v) for k, v in n["attrs"].items()},
                        {k: np.array(data[key], dtype=np.int64) for k, key in n["params"].items()},
                        n.get("source", "")))
    return g
