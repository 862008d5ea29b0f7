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


#: Sane limits checked before anything is allocated: elements of one edge or parameter, rank,
#: and bytes of the JSON structure.
MAX_ELEMENTS = 1 << 28
MAX_RANK = 8
MAX_JSON_BYTES = 64 << 20


class _Bad(Exception):
    """A malformed file: the message names the key or node (the file is added once)."""


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise _Bad(msg)


def _str_list(doc: dict[str, Any], key: str, where: str) -> list[str]:
    value = doc.get(key)
    _need(isinstance(value, list) and all(isinstance(v, str) for v in value),
          f"{where}{key}: expected a list of names, got {_short(value)}")
    return list(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shape(value: Any, where: str) -> tuple[int, ...]:
    _need(isinstance(value, list) and len(value) <= MAX_RANK
          and all(isinstance(d, int) and not isinstance(d, bool) for d in value),
          f"{where}: expected a list of at most {MAX_RANK} integers, got {_short(value)}")
    _need(all(1 <= d <= MAX_ELEMENTS for d in value), f"{where}: dimensions must be >= 1, got "
          f"{_short(value)}")
    size = 1
    for d in value:
        size *= d
    _need(size <= MAX_ELEMENTS, f"{where}: {size} elements is more than the limit "
          f"{MAX_ELEMENTS}")
    return tuple(value)


def _fixed(text: Any, where: str) -> FixedType:
    try:
        return FixedType.parse(text)
    except (ValueError, TypeError) as err:
        raise _Bad(f"{where}: {err}") from None


def _decode_checked(value: Any, where: str, depth: int = 0) -> Any:
    _need(depth < 16, f"{where}: nested too deeply")
    if isinstance(value, dict):
        if set(value) == {"__fixed__"}:
            return _fixed(value["__fixed__"], where)
        _need(all(isinstance(k, str) for k in value), f"{where}: keys must be strings")
        return {k: _decode_checked(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_checked(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, float) and not np.isfinite(value):
        raise _Bad(f"{where}: {value!r} is not a finite number")
    return value


def _read_header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read(f, max_header_size=10000)
    return shape, dtype


def _array(data: Any, key: str, where: str) -> np.ndarray:
    """The integer array ``key`` of the npz, its header checked before it is read."""
    _need(key in data.files, f"{where}: no array {key!r} in the file")
    try:
        with data.zip.open(f"{key}.npy") as f:
            shape, dtype = _read_header(f)
    except Exception as err:  # noqa: BLE001 - a corrupt member of any kind
        raise _Bad(f"{where}: array {key!r} is unreadable ({type(err).__name__}: {err})"
                   ) from None
    _need(dtype.kind in "iu", f"{where}: array {key!r} has dtype {dtype}; a frozen model holds "
          "integers only (refused, not truncated)")
    _need(len(shape) <= MAX_RANK and int(np.prod(shape, dtype=object)) <= MAX_ELEMENTS,
          f"{where}: array {key!r} declares shape {shape}, more than the limit")
    try:
        arr = data[key]
    except Exception as err:  # noqa: BLE001
        raise _Bad(f"{where}: array {key!r} is unreadable ({type(err).__name__}: {err})"
                   ) from None
    _need(arr.dtype.kind in "iu" and arr.shape == tuple(shape), f"{where}: array {key!r} is "
          "inconsistent with its header")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise _Bad(f"{where}: array {key!r} holds values beyond int64")
    return np.array(arr, dtype=np.int64)


def _graph_from(data: Any) -> Graph:
    _need("__graph__" in data.files, "no __graph__ entry (not a qfx frozen model)")
    raw = _array_bytes(data)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise _Bad(f"__graph__ is not valid JSON ({err})") from None
    _need(isinstance(doc, dict), "__graph__: expected a JSON object")
    if doc.get("format") != "qfx-frozen-graph" or doc.get("version") != FORMAT_VERSION:
        raise _Bad(f"unsupported frozen-model format {_short(doc.get('format'))} version "
                   f"{_short(doc.get('version'))}")
    meta = doc.get("meta", {})
    _need(isinstance(meta, dict), "meta: expected a mapping")
    g = Graph(inputs=_str_list(doc, "inputs", ""), outputs=_str_list(doc, "outputs", ""),
              meta=_decode_checked(meta, "meta"))
    edges, nodes = doc.get("edges"), doc.get("nodes")
    _need(isinstance(edges, list), "edges: expected a list")
    _need(isinstance(nodes, list), "nodes: expected a list")
    for i, e in enumerate(edges):
        _need(isinstance(e, dict) and isinstance(e.get("name"), str),
              f"edges[{i}]: expected an object with a string name")
        where = f"edge {e['name']!r}"
        _need(e["name"] not in g.edges, f"{where}: defined twice")
        g.add_edge(Edge(e["name"], _shape(e.get("shape"), f"{where}.shape"),
                        _fixed(e.get("type"), f"{where}.type")))
    for i, n in enumerate(nodes):
        _need(isinstance(n, dict) and isinstance(n.get("name"), str),
              f"nodes[{i}]: expected an object with a string name")
        where = f"node {n['name']!r}"
        for key in ("op", "output"):
            _need(isinstance(n.get(key), str), f"{where}.{key}: expected a string")
        _need(isinstance(n.get("source", ""), str), f"{where}.source: expected a string")
        ins = _str_list(n, "inputs", f"{where}.")
        for name in (*ins, n["output"]):
            _need(name in g.edges, f"{where}: edge {name!r} is not defined")
        attrs, params = n.get("attrs"), n.get("params")
        _need(isinstance(attrs, dict), f"{where}.attrs: expected a mapping")
        _need(isinstance(params, dict) and all(isinstance(v, str) for v in params.values()),
              f"{where}.params: expected a mapping of names to array keys")
        node = Node(n["name"], n["op"], ins, n["output"],
                    {k: _decode_checked(v, f"{where}.attrs.{k}") for k, v in attrs.items()},
                    {k: _array(data, key, f"{where}.params.{k}") for k, key in params.items()},
                    n.get("source", ""))
        try:
            g.add_node(node)
        except ValueError as err:
            raise _Bad(f"{where}: {err}") from None
    return g


def _array_bytes(data: Any) -> bytes:
    try:
        with data.zip.open("__graph__.npy") as f:
            shape, dtype = _read_header(f)
    except Exception as err:  # noqa: BLE001
        raise _Bad(f"__graph__ is unreadable ({type(err).__name__}: {err})") from None
    _need(dtype == np.uint8 and len(shape) == 1 and shape[0] <= MAX_JSON_BYTES,
          f"__graph__: expected at most {MAX_JSON_BYTES} bytes (uint8), got {dtype} {shape}")
    try:
        return bytes(data["__graph__"])
    except Exception as err:  # noqa: BLE001
        raise _Bad(f"__graph__ is unreadable ({type(err).__name__}: {err})") from None


def load_graph(path: str | os.PathLike[str]) -> Graph:
    """Read a graph written by :func:`save_graph` (arrays are loaded with pickle disabled) and
    verify it (:func:`qfx.ir.verify.verify`): a hand-edited file is proven or refused.

    Every structural problem (JSON, a missing or mistyped key, a shape beyond the limits, a
    non-integer array, an edge or array that does not exist) is one ``ValueError`` naming the
    file and the key or node, checked before anything large is allocated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no frozen model at {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except PermissionError:
        raise
    except Exception as err:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, ...
        raise ValueError(f"{path} is not a qfx frozen model (.npz with a __graph__ entry): "
                         f"{err}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a qfx frozen model (.npz with a __graph__ entry): a "
                         "single .npy array")
    with data:
        try:
            g = _graph_from(data)
        except _Bad as err:
            raise ValueError(f"{path}: {err}") from None
    try:
        return verify(g)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    except (ArithmeticError, LookupError, TypeError, AttributeError, RuntimeError) as err:
        # an op's rule tripped over a value the schema let through: still the file's fault
        raise ValueError(f"{path}: the graph is malformed ({type(err).__name__}: {err})"
                         ) from None
