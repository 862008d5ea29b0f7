"""The frozen integer graph: ordered nodes, int64 parameters, a FixedType on every edge.

A `Graph` is what the backends consume and what the exact executor runs. It knows nothing of
training code. It is saved as one ``.npz`` file (no pickle): the structure as JSON under the
key ``__graph__`` and every parameter array as int64.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfx.atomic import atomic_open
from qfx.fixed.fixed_type import FixedType

__all__ = ["Edge", "Node", "Graph", "OPS", "pair", "BINARY_OPS_DOC", "sanitize_identifier",
           "save_graph", "load_graph"]

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
    # --- binarized networks (qfx.nn.binary); exact semantics in BINARY_OPS_DOC below -------
    "binary_dense": (1, ("weight",), ("acc_type", "fan_in")),
    "binary_conv2d": (1, ("weight",), ("acc_type", "fan_in", "stride", "padding", "dilation",
                                       "groups", "pad_value")),
    "threshold": (1, ("threshold", "direction"), ("threshold_type",)),
    "thermometer": (1, ("thresholds",), ("threshold_type", "levels")),
}

BINARY_OPS_DOC = """Exact semantics of the K-hot digits and the binarized-network ops.

Notation: a tensor's raw integer ``a`` has value ``a * 2**-F`` with F the frac bits of its
FixedType; shapes below omit the batch dimension; "channel" is the first axis of an edge's
shape (C of (C, H, W), F of a flat (F,) edge). A *binary* edge (output of ``threshold`` or
``thermometer``, or ``maxpool2d``/``flatten`` of a binary edge) has type ap_fixed<2,2> and
only the values -1 and +1; hardware may carry it as one bit: bit 1 <-> +1, bit 0 <-> -1.

K-hot constants (optional params of dense, conv2d, batchnorm, binary_dense, binary_conv2d)
    ``weight_digits`` (with ``attrs["weight_khot"] = K``) / ``scale_digits`` (with
    ``attrs["scale_khot"] = K``): int64 ``[*weight.shape, K, 2]`` / ``[C, K, 2]``. Entry
    ``[..., j, :] = (sign_j, shift_j)`` with sign in {-1, 0, +1}, shift >= 0, and
    ``raw == sum_j sign_j * 2**shift_j`` exactly (raw on the weight_type / scale_type grid).
    Used digits come first, most significant first, no two at adjacent shifts (canonical
    signed digits: the count is minimal); unused slots are (0, 0). So
    ``x * w == sum_j sign_j * (x << shift_j)`` on the product grid F_x + F_w: K shifts and
    at most K - 1 adds, no multiplier. The values in ``weight`` / ``scale`` are unchanged.

binary_dense: params ``weight`` int64 [O, N] in {-1, +1}; attrs ``fan_in`` = N,
    ``acc_type``; optional ``scale`` int64 [O] (attrs ``scale_type``) and, when K-hot,
    ``scale_digits`` / ``scale_khot``. Input: binary edge (N,). With bits xb, wb (1 <-> +1):
        dot_o = sum_i x_i * w_oi = 2 * popcount(XNOR(xb, wb_o)) - N      (an integer)
    Without ``scale``: the output is dot_o itself; acc_type == the output type,
    ap_fixed<B,B> holding [-N, N] (no cast). With ``scale``: acc_o = scale_o * dot_o
    exactly (acc_type, frac bits of scale_type), then cast to the output type with its modes.

binary_conv2d: params ``weight`` int64 [O, C/groups, KH, KW] in {-1, +1}; attrs
    ``stride``, ``padding``, ``dilation``, ``groups``, ``pad_value`` = -1, ``fan_in`` =
    C/groups*KH*KW, ``acc_type``; optional ``scale`` as for binary_dense. Input: binary edge
    (C, H, W), padded with **-1** (bit 0) on every side by ``padding``; then the plain
    cross-correlation of torch.nn.functional.conv2d (padding 0) on the padded input:
    every output is dot = 2 * popcount(XNOR(window bits, weight bits)) - fan_in, the same
    fan_in at every position (padded taps count as -1). Output as for binary_dense.

threshold: params ``threshold`` int64 [C] (raw on ``threshold_type``, whose frac bits equal
    the input's), ``direction`` int64 [C] in {+1, -1}. Input: any edge (C, ...), raw a.
        out = +1 if a >= T_c else -1      (direction_c = +1)
        out = +1 if a <= T_c else -1      (direction_c = -1: BatchNorm scale < 0)
    Output: binary edge of the input's shape. A folded BatchNorm + sign is exactly this
    (T_c may lie one step outside the input range: a constant channel). When the input is
    a binary_dense/binary_conv2d output without scale (a = 2p - N, p the popcount):
    a >= T <=> p >= ceil((T + N) / 2) and a <= T <=> p <= floor((T + N) / 2).

thermometer: params ``thresholds`` int64 [L] non-decreasing (raw on ``threshold_type``, frac
    bits equal to the input's); attrs ``levels`` = L. Input: edge (C, ...) with raw x.
        out[c * L + k, ...] = +1 if x[c, ...] >= thresholds[k] else -1
    Output: binary edge (C * L, ...).
"""

_IDENT = re.compile(r"[^A-Za-z0-9_]")


def pair(v: Any) -> tuple[int, int]:
    """A 2-D attribute (kernel, stride, padding, ...) as ``(h, w)``: IR attrs hold a list of
    two or one int for both.

    Example:
        >>> pair(3), pair([1, 2])
        ((3, 3), (1, 2))
    """
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"expected a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


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
        self._validate_digits("weight")
        self._validate_digits("scale")
        if self.op in ("binary_dense", "binary_conv2d"):
            w = self.params["weight"]
            if not np.isin(w, (-1, 1)).all():
                raise ValueError(f"node {self.name!r} ({self.op}): weights must be -1 or +1")
            if int(self.attrs["fan_in"]) != int(np.prod(w.shape[1:])):
                raise ValueError(f"node {self.name!r} ({self.op}): fan_in "
                                 f"{self.attrs['fan_in']} != {int(np.prod(w.shape[1:]))}")
        if self.op == "threshold" and not np.isin(self.params["direction"], (-1, 1)).all():
            raise ValueError(f"node {self.name!r} (threshold): direction must be -1 or +1")

    def _validate_digits(self, key: str) -> None:
        """K-hot digits, where present, must rebuild their constants exactly."""
        digits = self.params.get(f"{key}_digits")
        k = self.attrs.get(f"{key}_khot")
        if digits is None and k is None:
            return
        raw = self.params.get(key)
        if digits is None or k is None or raw is None:
            raise ValueError(f"node {self.name!r}: {key}_digits, attrs {key}_khot and {key} "
                             "go together")
        if digits.shape != (*raw.shape, int(k), 2):
            raise ValueError(f"node {self.name!r}: {key}_digits has shape {digits.shape}, "
                             f"expected {(*raw.shape, int(k), 2)}")
        sign, shift = digits[..., 0], digits[..., 1]
        if not (np.isin(sign, (-1, 0, 1)).all() and (shift >= 0).all() and (shift < 63).all()):
            raise ValueError(f"node {self.name!r}: {key}_digits signs must be -1/0/+1 and "
                             "shifts 0..62")
        rebuilt = (sign * np.left_shift(np.ones_like(shift), shift)).sum(-1)
        if not np.array_equal(rebuilt, raw):
            raise ValueError(f"node {self.name!r}: {key}_digits do not rebuild {key}")


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
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
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
