"""The frozen-model file format: one ``.npz`` (no pickle anywhere), the structure as JSON under
the key ``__graph__`` and every parameter as an int64 array. Loading verifies the graph."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from qfx.atomic import atomic_open
from qfx.fixed.fixed_type import FixedType
from qfx.ir.graph import Edge, Graph, Node
from qfx.ir.verify import verify

__all__ = ["FORMAT_VERSION", "load_graph", "save_graph"]

FORMAT_VERSION = 1


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
    """Read a graph written by :func:`save_graph` (arrays are loaded with pickle disabled) and
    verify it (:func:`qfx.ir.verify.verify`): a hand-edited file is proven or refused."""
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
    return verify(g)
