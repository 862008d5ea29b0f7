"""Render a frozen qfx graph into Vitis/Vivado HLS firmware, a testbench and test vectors.

:func:`export_firmware` writes, from the Jinja templates in ``hls_templates/`` (StrictUndefined;
Python only supplies identifiers, integers and ``FixedType.cpp()`` spellings)::

    <out_dir>/
      firmware/qfx_layers.h          the layer library (static; see its header for the contract)
      firmware/qfx_axi_sdata.h       ap_axiu for host C-sim when <ap_axi_sdata.h> is missing
      firmware/qfx_stream.h          io="stream" only: pixel FIFOs, line buffers, DATAFLOW layers
      firmware/parameters.h          one typedef per edge and per weight/bias/acc/... type, and
                                     one config struct per node, in namespace <project>_fw
      firmware/weights/<node>_w.h    raw integer mantissas (weights, biases, BN scale/shift, 1/area,
                                     thresholds); K-hot constants as digit tables
                                     (<node>_w_dsign.h / _w_dshift.h, likewise scale_*) instead of
                                     their values; binary weights packed in 32-bit words (_wbits.h)
      firmware/<project>.h/.cpp      the top function: the layers in IR order (one translation unit;
                                     io="stream": one DATAFLOW region of processes and FIFOs)
      firmware/<project>_axis.h/.cpp AXI-Stream wrapper (AXI-Lite control) for the board
      tb/tb_<project>.cpp            testbench: vectors in, raw outputs out (-DQFX_TRACE: per node)
      tb/inputs.txt, tb/expected.txt when ``test_vectors`` are given (expected = exact executor)
      project.json, model.qfx.npz    manifest and the frozen graph (HLSProject.load)

K-hot nodes (``weight_digits`` / ``scale_digits``) call the ``*_khot`` layers: each product is
a sum of signed shifts of the input's raw bits (no multiplier). Binarized nodes (``binary_dense``,
``binary_conv2d``) are XNOR-popcount on packed bits; ``threshold`` and ``thermometer`` compare on
the input's grid (qfx.ir.graph.BINARY_OPS_DOC is the contract).

Exactness: each node accumulates in its IR ``acc_type`` and casts once to its output type, as
the executor does; the writer re-checks the IR's accumulator sizing from the integer weights
and refuses a graph whose accumulators could round or overflow. Constants are emitted as raw
integer literals (exact for every width) and reinterpreted bit for bit in C++.

Names: every IR node and edge name must already be a C++ identifier (``qfx.freeze`` sanitizes
them); anything else is refused before any file is written. Generated identifiers get fixed
suffixes (``_t``, ``_config``, ``_w``, ...), live in the project's namespace and are checked
for uniqueness.

Parallelism: ``reuse`` (multiplications per multiplier) folds every layer (``_fold`` /
``_unroll``: unroll factors, never beyond Vivado's 4096); an int applies to the whole model, a
mapping ``{node_name: reuse, "*": default}`` gives each layer its own factor. Reuse only changes
unroll factors (pragmas), never the arithmetic.

The export is atomic: everything is rendered and written into a temporary folder next to the
target, which is then renamed into place; an existing target needs ``force=True``.

Example:
    >>> import qfx, torch, tempfile, os
    >>> from qfx.nn import QInput, QLinear, QReLU
    >>> net = torch.nn.Sequential(QInput(8), QLinear(4, 3), QReLU())
    >>> with qfx.calibration(net):
    ...     _ = net(torch.randn(32, 4))
    >>> graph = qfx.freeze(net, torch.randn(1, 4))
    >>> prj = export_firmware(graph, os.path.join(tempfile.mkdtemp(), "mlp"),
    ...                       test_vectors=torch.randn(5, 4).numpy())
    >>> sorted(p.name for p in prj.firmware_dir.glob("*.cpp"))
    ['qfx_model.cpp', 'qfx_model_axis.cpp']
    >>> from qfx.backends.hls.layout import read_vectors
    >>> read_vectors(prj.expected_vectors).shape
    (5, 3)
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from qfx.atomic import staging_dir, swap_into_place
from qfx.backends.hls.layout import (
    default_axis_width,
    edge_pixels,
    write_vectors,
)
from qfx.backends.hls.project import MANIFEST_NAME, MODEL_NAME, HLSProject, PortInfo
from qfx.fixed.fixed_type import FixedType
from qfx.ir.executor import run_graph
from qfx.ir.graph import Graph, Node, pair, sanitize_identifier
from qfx.ir.ops.base import khot_k
from qfx.ir.serialize import save_graph
from qfx.ir.verify import IDENTIFIER_RE, check_identifier, verify

__all__ = ["DEFAULT_REUSE_KEY", "IDENTIFIER_RE", "MAX_UNROLL", "SUPPORTED_OPS", "LayerReuse",
           "ReuseSpec", "export_firmware", "normalize_reuse", "resolve_reuse", "templates_dir"]

#: Vivado/Vitis HLS refuse to unroll a loop further than this.
MAX_UNROLL = 4096
#: IR ops the firmware writer implements.
SUPPORTED_OPS = ("input", "dense", "conv2d", "batchnorm", "relu", "hardtanh", "add", "maxpool2d",
                 "avgpool2d", "flatten", "binary_dense", "binary_conv2d", "threshold",
                 "thermometer")
_IO_MODES = ("parallel", "stream")
#: Sliding-window ops: a line buffer in the streaming architecture (qfx_stream.h).
_WINDOW_OPS = ("conv2d", "binary_conv2d", "maxpool2d", "avgpool2d")
_AXIS_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
_ROW = 16  # integer literals per line in the weight headers
_STATIC_FIRMWARE = ("qfx_layers.h", "qfx_axi_sdata.h")
# IR attr -> suffix of the per-node typedef
_TYPE_ATTRS = (("weight_type", "weight"), ("bias_type", "bias"), ("acc_type", "acc"),
               ("scale_type", "scale"), ("shift_type", "shift"), ("clamp_type", "clamp"),
               ("sum_type", "sum"), ("recip_type", "recip"), ("threshold_type", "threshold"))
_PARAM_SUFFIX = {"weight": "w", "bias": "b", "scale": "scale", "shift": "shift", "recip": "recip",
                 "weight_dsign": "w_dsign", "weight_dshift": "w_dshift",
                 "scale_dsign": "scale_dsign", "scale_dshift": "scale_dshift",
                 "wbits": "wbits", "threshold": "thr", "thresholds": "thr", "direction": "dir"}
#: K-hot digit tables (sign in {-1, 0, +1}, shift 0..62) and packed binary weights: the types of
#: their raw storage in the generated headers.
_DSIGN_T = FixedType(2, 2)
_DSHIFT_T = FixedType(6, 6, False)
_WORD_BITS = 32
_WORD_T = FixedType(_WORD_BITS, _WORD_BITS, False)
_BINARY_T = FixedType(2, 2)
_DIR_T = FixedType(2, 2)
#: The key of a per-layer ``reuse`` mapping that sets the factor of every layer not named.
DEFAULT_REUSE_KEY = "*"


# ====================================================================== reuse factors
class LayerReuse(dict[str, int]):
    """Per-layer reuse factors: ``{node_name: reuse}`` plus the ``"*"`` default that every
    other node gets (always present; :func:`normalize_reuse` builds it). Its ``str`` is the
    one-line description the generated files and reports print.

    Example:
        >>> r = LayerReuse({"fc": 1, "*": 32})
        >>> r.default, r.of("fc"), r.of("conv"), r.overrides, str(r)
        (32, 1, 32, {'fc': 1}, '32 (per layer: fc=1)')
    """

    @property
    def default(self) -> int:
        """The factor of every node the mapping does not name."""
        return int(self.get(DEFAULT_REUSE_KEY, 1))

    @property
    def overrides(self) -> dict[str, int]:
        """The named nodes and their factors (without the default)."""
        return {k: v for k, v in self.items() if k != DEFAULT_REUSE_KEY}

    def of(self, node: str) -> int:
        """The reuse factor of ``node``."""
        return int(self.get(node, self.default))

    def __str__(self) -> str:
        over = ", ".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.default} (per layer: {over})" if over else str(self.default)


#: What ``reuse`` accepts: one factor for every layer, or ``{node_name: factor}`` with an
#: optional ``"*"`` default (1 when absent).
ReuseSpec = int | Mapping[str, int]


def _reuse_value(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


def normalize_reuse(reuse: Any) -> int | LayerReuse:
    """Check a ``reuse`` argument without a graph: an int >= 1 stays an int; a mapping
    ``{node_name: int >= 1}`` (optional ``"*"`` default, else 1) becomes a :class:`LayerReuse`
    with the default stored under ``"*"``. Node names are checked by :func:`resolve_reuse`.

    Example:
        >>> normalize_reuse(4), normalize_reuse({"fc": 2})
        (4, {'fc': 2, '*': 1})
        >>> normalize_reuse({"fc": 0})
        Traceback (most recent call last):
        ...
        ValueError: reuse['fc'] must be an integer >= 1, got 0
    """
    if isinstance(reuse, Mapping):
        out = LayerReuse()
        for key, value in reuse.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"reuse: keys must be node names (or {DEFAULT_REUSE_KEY!r} for "
                                 f"the default), got {key!r}")
            if key != DEFAULT_REUSE_KEY:
                out[key] = _reuse_value(value, f"reuse[{key!r}]")
        out[DEFAULT_REUSE_KEY] = _reuse_value(reuse.get(DEFAULT_REUSE_KEY, 1),
                                              f"reuse[{DEFAULT_REUSE_KEY!r}]")
        return out
    if isinstance(reuse, bool) or not isinstance(reuse, numbers.Integral):
        raise ValueError(f"reuse must be an integer >= 1 or a mapping {{node_name: integer >= 1}}"
                         f" with an optional {DEFAULT_REUSE_KEY!r} default, got {reuse!r}")
    return _reuse_value(reuse, "reuse")


def resolve_reuse(graph: Graph, reuse: Any) -> dict[str, int]:
    """The reuse factor of every node of ``graph`` (in graph order) from an int or a per-layer
    mapping (see :func:`normalize_reuse`); a mapping that names a node the graph does not have
    is refused with the list of valid node names.

    Example:
        >>> from qfx.ir.graph import Edge
        >>> g = Graph(inputs=["x"], outputs=["y"])
        >>> g.add_edge(Edge("x", (3,), FixedType(8, 3)))
        >>> g.add_edge(Edge("y", (3,), FixedType(8, 3)))
        >>> g.add_node(Node("relu_1", "relu", ["x"], "y"))
        >>> resolve_reuse(g, {"*": 4})
        {'relu_1': 4}
        >>> resolve_reuse(g, {"relu1": 2})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: reuse: ... 'relu1' (did you mean 'relu_1'?); valid node names: relu_1 ...
    """
    spec = normalize_reuse(reuse)
    names = [n.name for n in graph.nodes]
    if isinstance(spec, int):
        return dict.fromkeys(names, spec)
    unknown = [k for k in spec.overrides if k not in set(names)]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(sanitize_identifier(k), names, n=1)
            hints.append(f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k))
        raise ValueError(f"reuse: the graph has no node named {', '.join(hints)}; valid node "
                         f"names: {', '.join(names) or '(none)'} (and {DEFAULT_REUSE_KEY!r} for "
                         "the default of the others)")
    return {n: spec.of(n) for n in names}


# ====================================================================== templates
def templates_dir() -> Path:
    """The ``hls_templates`` folder: the installed data files if they hold the firmware
    templates, else the source tree's.

    Example:
        >>> (templates_dir() / "firmware" / "qfx_layers.h").is_file()
        True
    """
    candidates: list[Path] = []
    try:
        from qfx.package_data import resource_dir

        candidates.append(resource_dir("hls_templates"))
    except (ImportError, FileNotFoundError):
        pass
    candidates.append(Path(__file__).resolve().parents[3] / "hls_templates")
    for c in candidates:
        if (c / "firmware" / "qfx_layers.h").is_file() and (c / "tb").is_dir():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"qfx HLS firmware templates not found (looked in: {looked})")


def _cint(value: int) -> str:
    """A C++ integer literal for an int64 value (LL suffix outside the int32 range)."""
    v = int(value)
    return f"{v}LL" if not -(2**31) < v < 2**31 else str(v)


def _environment(root: Path) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(root)),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["cint"] = _cint
    return env


# ====================================================================== naming
_check_identifier = check_identifier


class _Names:
    """Allocates the C++ identifiers of one project; refuses duplicates."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        _check_identifier(name, "generated name")
        if name in self.used:
            raise ValueError(f"two generated C++ names collide: {name!r}; rename the IR node or "
                             "edge (or the project) that produces it")
        self.used.add(name)
        return name


# ====================================================================== checks
def _khot(node: Node, key: str) -> int | None:
    """K of the node's K-hot ``key`` constant (``weight`` or ``scale``), or None."""
    return khot_k(node, key)


def _validate(graph: Graph) -> None:
    """Refuse anything the firmware could not compute bit for bit like the executor: the IR's
    own proof (:func:`qfx.ir.verify`), then the ops this backend has layers for."""
    verify(graph)
    for node in graph.nodes:
        if node.op not in SUPPORTED_OPS:
            raise ValueError(f"node {node.name!r}: op {node.op!r} has no HLS layer; supported: "
                             f"{', '.join(SUPPORTED_OPS)}")


# ====================================================================== planning
@dataclass
class _Plan:
    """Everything the templates need, as plain names and numbers."""

    context: dict[str, Any]
    inputs: tuple[PortInfo, ...]
    outputs: tuple[PortInfo, ...]
    params: list[dict[str, Any]]


def _fold(k: int, outputs: int, reuse: int) -> tuple[int, int]:
    """(red_unroll, out_unroll) for a reduction of length ``k`` per output, ``outputs`` outputs
    in the unrollable output loop and ``reuse`` multiplications per multiplier."""
    mults = min(max(1, -(-k * outputs // reuse)), MAX_UNROLL)
    red = max(1, min(k, mults))
    out = max(1, min(outputs, mults // red, MAX_UNROLL // red))
    return red, out


def _pack_bits(weight: np.ndarray) -> np.ndarray:
    """Rows of a {-1, +1} weight ([out, ...]) as words of ``_WORD_BITS`` bits, [out, words]:
    bit i % 32 of word i // 32 is 1 where the row's i-th weight is +1; the padding bits are 0.

    Example:
        >>> _pack_bits(np.array([[1, -1, 1], [-1, -1, -1]])).tolist()
        [[5], [0]]
    """
    rows = (weight.reshape(weight.shape[0], -1) > 0).astype(np.int64)
    n = rows.shape[1]
    words = -(-n // _WORD_BITS)
    padded = np.zeros((rows.shape[0], words * _WORD_BITS), dtype=np.int64)
    padded[:, :n] = rows
    place = np.left_shift(np.int64(1), np.arange(_WORD_BITS, dtype=np.int64))
    return (padded.reshape(rows.shape[0], words, _WORD_BITS) * place).sum(-1)


def _unroll(n: int, reuse: int, inner: int = 1) -> int:
    return max(1, min(n, -(-n // reuse), MAX_UNROLL // max(inner, 1)))


def _plan(graph: Graph, project_name: str, reuse: int | LayerReuse,
          axis_width: int | None, io: str = "parallel") -> _Plan:
    stream = io == "stream"
    per_node = resolve_reuse(graph, reuse)
    names = _Names()
    for reserved in ("in_stream", "out_stream", "qfx"):  # names the templates use
        names.take(reserved)
    ns = names.take(f"{project_name}_fw")
    top = names.take(project_name)
    axis_top = names.take(f"{project_name}_axis")
    axis_word = names.take(f"{project_name}_axis_word")

    # ---- typedefs: one per edge, one per typed node attribute
    edge_types: list[dict[str, Any]] = []
    tname: dict[str, str] = {}
    for e in graph.edges.values():
        tname[e.name] = names.take(f"{e.name}_t")
        edge_types.append({"name": tname[e.name], "cpp": e.type.cpp(), "edge": e.name,
                           "shape": "x".join(map(str, e.shape)) or "scalar"})
    pixel_types: list[dict[str, Any]] = []  # io="stream": the element type of each edge's stream
    if stream:
        for e in graph.edges.values():
            chan, pixels = edge_pixels(e.shape)
            pixel_types.append({"name": names.take(f"{e.name}_px"), "type": tname[e.name],
                                "edge": e.name, "chan": chan, "pixels": pixels})
    node_types: list[dict[str, Any]] = []
    ntype: dict[tuple[str, str], str] = {}

    def add_type(node: Node, kind: str, t: FixedType, note: str) -> str:
        name = names.take(f"{node.name}_{kind}_t")
        ntype[(node.name, kind)] = name
        node_types.append({"name": name, "cpp": t.cpp(), "note": note})
        return name

    for node in graph.nodes:
        for attr, kind in _TYPE_ATTRS:
            t = node.attrs.get(attr)
            if isinstance(t, FixedType):
                add_type(node, kind, t, f"{node.op} {attr}")
        if node.op in ("dense", "conv2d") and "bias" not in node.params:
            add_type(node, "bias", node.attrs["acc_type"],
                     "no bias in the model: a zero bias in the accumulator type")
        if _khot(node, "weight") or _khot(node, "scale"):
            add_type(node, "dsign", _DSIGN_T, "K-hot digit signs (-1, 0, +1)")
            add_type(node, "dshift", _DSHIFT_T, "K-hot digit shifts")
        if node.op in ("binary_dense", "binary_conv2d"):
            add_type(node, "word", _WORD_T, f"{_WORD_BITS} packed weight bits (1 <-> +1)")
            db = int(node.attrs["fan_in"]).bit_length() + 1
            add_type(node, "dot", FixedType(db, db), "the XNOR-popcount dot in [-fan_in, fan_in]")
        if node.op == "threshold":
            add_type(node, "dir", _DIR_T, "threshold direction (+1: x >= T, -1: x <= T)")

    # ---- constants
    params: list[dict[str, Any]] = []
    pname: dict[tuple[str, str], str] = {}

    def add_param(node: Node, kind: str, raw: np.ndarray, t: FixedType, layout: str,
                  tkind: str | None = None) -> None:
        array = names.take(f"{node.name}_{_PARAM_SUFFIX[kind]}")
        pname[(node.name, kind)] = array
        flat = [int(v) for v in np.asarray(raw, dtype=np.int64).ravel()]
        params.append({
            "array": array, "file": f"{array}.h",
            "node": node.name, "op": node.op, "kind": kind,
            "type": ntype[(node.name, tkind or kind)],
            "cpp": t.cpp(), "frac": t.frac_bits, "count": len(flat), "layout": layout,
            "rows": [flat[i:i + _ROW] for i in range(0, len(flat), _ROW)],
        })

    def add_digits(node: Node, key: str, layout: str) -> None:
        digits = node.params[f"{key}_digits"]
        layout = f"{layout}[K={digits.shape[-2]}] (K-hot digits of {key})"
        add_param(node, f"{key}_dsign", digits[..., 0], _DSIGN_T, layout, "dsign")
        add_param(node, f"{key}_dshift", digits[..., 1], _DSHIFT_T, layout, "dshift")

    for node in graph.nodes:
        a, p = node.attrs, node.params
        if node.op in ("dense", "conv2d"):
            w = p["weight"]
            layout = "[out][in]" if node.op == "dense" else "[out_c][in_c/groups][k_h][k_w]"
            if _khot(node, "weight"):
                add_digits(node, "weight", layout)
            else:
                add_param(node, "weight", w, a["weight_type"], layout)
            if "bias" in p:
                add_param(node, "bias", p["bias"], a["bias_type"], "[out]")
            else:
                add_param(node, "bias", np.zeros(w.shape[0], dtype=np.int64), a["acc_type"],
                          "[out] (zeros: the model has no bias)")
        elif node.op == "batchnorm":
            if _khot(node, "scale"):
                add_digits(node, "scale", "[channel]")
            else:
                add_param(node, "scale", p["scale"], a["scale_type"], "[channel]")
            add_param(node, "shift", p["shift"], a["shift_type"], "[channel]")
        elif node.op in ("binary_dense", "binary_conv2d"):
            add_param(node, "wbits", _pack_bits(p["weight"]), _WORD_T,
                      f"[out][words of {_WORD_BITS}]: bit i % {_WORD_BITS} of word "
                      f"i / {_WORD_BITS} is (weight i == +1), i over the flattened row",
                      "word")
            if _khot(node, "scale"):
                add_digits(node, "scale", "[out]")
            elif "scale" in p:
                add_param(node, "scale", p["scale"], a["scale_type"], "[out]")
        elif node.op == "threshold":
            add_param(node, "threshold", p["threshold"], a["threshold_type"], "[channel]")
            add_param(node, "direction", p["direction"], _DIR_T, "[channel]", "dir")
        elif node.op == "thermometer":
            add_param(node, "thresholds", p["thresholds"], a["threshold_type"], "[level]",
                      "threshold")
        elif node.op == "avgpool2d" and "recip" in p:
            add_param(node, "recip", p["recip"], a["recip_type"], "[1]")

    # ---- ports
    def port(edge: str, prefix: str) -> PortInfo:
        e = graph.edges[edge]
        return PortInfo(names.take(f"{prefix}_{edge}"), edge, tname[edge], e.type, e.shape)

    inputs = tuple(port(e, "in") for e in graph.inputs)
    outputs = tuple(port(e, "out") for e in graph.outputs)

    # ---- arrays and steps
    array: dict[str, str] = {p.edge: p.name for p in inputs}
    locals_: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []
    for node in graph.nodes:
        out = graph.edges[node.output]
        size = int(math.prod(out.shape))
        if stream:
            if node.op != "flatten":
                configs.append(_config(graph, node, names.take(f"{node.name}_config"), tname,
                                       ntype, per_node[node.name], True))
            continue
        if node.op == "flatten":  # NCHW is already flat: the output is the input's array
            array[node.output] = array[node.inputs[0]]
            steps.append({"node": node.name, "op": node.op, "alias": True,
                          "y": array[node.output], "size": size})
            continue
        array[node.output] = names.take(f"{node.output}_out")
        locals_.append({"name": array[node.output], "type": tname[node.output], "size": size,
                        "node": node.name})
        cfg = _config(graph, node, names.take(f"{node.name}_config"), tname, ntype,
                      per_node[node.name], False)
        configs.append(cfg)
        steps.append({
            "node": node.name, "op": node.op, "alias": False, "config": cfg["name"],
            "func": cfg["func"], "x": [array[i] for i in node.inputs], "y": array[node.output],
            "size": size, "params": [pname[(node.name, k)] for k in cfg["param_kinds"]],
        })

    copies = [] if stream else [{"src": array[p.edge], "dst": p.name, "type": p.typedef,
                                 "size": p.size} for p in outputs]
    widths = [p.type.width for p in (*inputs, *outputs)]
    if axis_width is None:
        axis_width = default_axis_width(widths)
    if axis_width not in _AXIS_WIDTHS or axis_width < max(widths):
        raise ValueError(f"axis_width must be one of {_AXIS_WIDTHS} and at least the widest "
                         f"port ({max(widths)} bits), got {axis_width}")

    pixel_of = {t["edge"]: t for t in pixel_types}

    def port_ctx(p: PortInfo) -> dict[str, Any]:
        # wire order (layout.wire_order): element j of the port on the AXI-Stream wire is NCHW
        # element (j % wire_chan) * wire_pixels + j // wire_chan
        chan, pixels = edge_pixels(p.shape) if stream else (1, p.size)
        return {"name": p.name, "edge": p.edge, "type": p.typedef, "cpp": p.type.cpp(),
                "size": p.size, "shape": "x".join(map(str, p.shape)), "width": p.type.width,
                "signed": p.type.signed, "wire_chan": chan, "wire_pixels": pixels,
                "px": pixel_of[p.edge]["name"] if stream else None}

    body, streams = (_stream_body(graph, configs, pname, pixel_of, inputs, outputs, names)
                     if stream else ([], []))

    context = {
        "project": project_name, "top": top, "axis_top": axis_top, "axis_word": axis_word,
        "ns": ns, "model": sanitize_identifier(str(graph.meta.get("model", "graph"))),
        "reuse": reuse, "reuse_per_layer": per_node,
        "axis_width": axis_width, "edge_types": edge_types, "node_types": node_types,
        "configs": configs, "params": params, "locals": locals_, "steps": steps,
        "copies": copies, "inputs": [port_ctx(p) for p in inputs],
        "io": io, "pixel_types": pixel_types, "body": body, "streams": streams,
        "outputs": [port_ctx(p) for p in outputs],
        "n_in_total": sum(p.size for p in inputs), "n_out_total": sum(p.size for p in outputs),
    }
    return _Plan(context, inputs, outputs, params)


def _stream_body(graph: Graph, configs: list[dict[str, Any]],
                 pname: dict[tuple[str, str], str], pixel_of: dict[str, dict[str, Any]],
                 inputs: Sequence[PortInfo], outputs: Sequence[PortInfo],
                 names: _Names) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The DATAFLOW body of the streaming top function: (steps, local streams).

    Each edge is written by its producer into one stream (the input port for a graph input, the
    output port for a graph output that nothing else reads, else a local stream) and read by
    each of its readers (nodes, and the output port when it is a graph output) from a stream of
    its own: an edge with several readers is copied by a chain of ``clone`` processes. Streams
    that leave a clone are as deep as the edge has pixels: a reader may lag the other by up to
    the whole tensor (a residual branch behind a line buffer), and a shallower FIFO could
    deadlock the DATAFLOW region. Every other stream keeps the default depth (2).
    ``pixel_of``: each edge's pixel type (name, element typedef, values per pixel, pixels).
    """
    cfg_of = {c["node"]: c for c in configs}
    in_port = {p.edge: p.name for p in inputs}
    out_port = {p.edge: p.name for p in outputs}
    readers: dict[str, list[tuple[str, int]]] = {e: [] for e in graph.edges}
    for node in graph.nodes:
        for k, e in enumerate(node.inputs):
            readers[e].append((node.name, k))
    streams: list[dict[str, Any]] = []
    source: dict[str, str] = {}  # edge -> the stream its producer writes
    read_from: dict[tuple[str, int], str] = {}  # (node, input index) -> stream

    def local(edge: str, suffix: str, depth: int) -> str:
        name = names.take(f"s_{edge}{suffix}")
        streams.append({"name": name, "px": pixel_of[edge]["name"], "depth": depth,
                        "edge": edge})
        return name

    def px_args(edge: str) -> dict[str, Any]:
        t = pixel_of[edge]
        return {"type": t["type"], "chan": t["chan"], "pixels": t["pixels"]}

    body: list[dict[str, Any]] = []

    def fan_out(edge: str) -> None:
        """Route ``edge`` from its source stream to every reader (clones when > 1)."""
        dests: list[tuple[str, int] | None] = [*readers[edge]]
        if edge in out_port:
            dests.append(None)  # the output port
        if not dests:
            raise ValueError(f"io='stream': edge {edge!r} is never read; a streaming design "
                             "cannot leave a stream unread")
        if edge in in_port and edge in out_port:
            raise ValueError(f"io='stream': graph input {edge!r} is also a graph output")
        if len(dests) == 1:
            if dests[0] is not None:
                read_from[dests[0]] = source[edge]
            return
        depth = pixel_of[edge]["pixels"]

        def stream_for(dest: tuple[str, int] | None, i: int) -> str:
            if dest is None:
                return out_port[edge]
            read_from[dest] = local(edge, f"_r{i}", depth)
            return read_from[dest]

        src = source[edge]
        for i, dest in enumerate(dests[:-1]):
            a = stream_for(dest, i)
            last = i == len(dests) - 2
            b = stream_for(dests[-1], i + 1) if last else local(edge, f"_c{i}", depth)
            body.append({"kind": "clone", "x": src, "a": a, "b": b, **px_args(edge)})
            src = b

    for e in graph.inputs:
        source[e] = in_port[e]
        fan_out(e)
    for node in graph.nodes:
        y = node.output
        only_port = y in out_port and not readers[y]
        source[y] = out_port[y] if only_port else local(y, "", 2)
        xs = [read_from[(node.name, k)] for k in range(len(node.inputs))]
        if node.op == "flatten":
            body.append({"kind": "flatten", "node": node.name, "x": xs[0], "y": source[y],
                         **px_args(node.inputs[0])})
        else:
            cfg = cfg_of[node.name]
            body.append({"kind": "call", "node": node.name, "func": cfg["func"],
                         "config": cfg["name"], "x": xs, "y": source[y],
                         "params": [pname[(node.name, k)] for k in cfg["param_kinds"]]})
        body.append({"kind": "trace", "node": node.name, "stream": source[y], **px_args(y)})
        fan_out(y)
    return body, streams


def _config(graph: Graph, node: Node, name: str, tname: dict[str, str],
            ntype: dict[tuple[str, str], str], reuse: int, stream: bool) -> dict[str, Any]:
    """One config struct: member typedefs, integer constants, the layer function to call.
    ``reuse`` is this node's own factor: it sets the unroll factors (the pragmas' factors in
    qfx_layers.h) and is recorded as the struct's ``reuse`` member.

    ``stream`` (io="stream"): the layers run once per pixel (qfx_stream.h), so element-wise
    layers get per-pixel sizes (n = channels, n_spatial = 1) plus ``n_pixels``, ``px_in`` and
    ``px_out``, and a convolution folds the products of one output pixel (out_c / groups outputs
    of a reduction of in_c / groups * k_h * k_w) instead of a whole output channel."""
    a = node.attrs
    x = graph.edges[node.inputs[0]]
    out = graph.edges[node.output]
    n = int(math.prod(out.shape))
    pixels = 1
    if stream:  # per-pixel sizes: n is the values of one output pixel
        (c_in, _), (c_out, pixels) = edge_pixels(x.shape), edge_pixels(out.shape)
        n = c_out
    types: list[tuple[str, str]] = [("in_t", tname[x.name]), ("out_t", tname[node.output])]
    ints: list[tuple[str, int]] = []
    kinds: list[str] = []
    func = node.op

    def typ(member: str, kind: str) -> None:
        types.append((member, ntype[(node.name, kind)]))

    def khot(key: str) -> bool:
        """Switch to the K-hot variant of the layer when ``key`` has digits."""
        k = _khot(node, key)
        if k is None:
            return False
        typ("dsign_t", "dsign")
        typ("dshift_t", "dshift")
        ints.append(("khot", k))
        return True

    if node.op == "input":
        func = "cast"
        ints += [("n", n), ("unroll", _unroll(n, reuse))]
    elif node.op == "dense":
        for m, k in (("acc_t", "acc"), ("weight_t", "weight"), ("bias_t", "bias")):
            typ(m, k)
        n_in, n_out = x.shape[0], out.shape[0]
        red, outer = _fold(n_in, n_out, reuse)
        ints += [("n_in", n_in), ("n_out", n_out), ("red_unroll", red),
                 ("out_unroll", outer)]
        kinds = ["weight", "bias"]
        if khot("weight"):
            func, kinds = "dense_khot", ["weight_dsign", "weight_dshift", "bias"]
    elif node.op == "conv2d":
        for m, k in (("acc_t", "acc"), ("weight_t", "weight"), ("bias_t", "bias")):
            typ(m, k)
        cin, h, w = x.shape
        cout, oh, ow = out.shape
        _, cin_g, kh, kw = node.params["weight"].shape
        (sh, sw), (ph, pw), (dh, dw) = (pair(a["stride"]), pair(a["padding"]),
                                        pair(a["dilation"]))
        red, outer = _fold(cin_g * kh * kw, cout // int(a["groups"]) if stream else oh * ow,
                           reuse)
        ints += [
            ("in_c", cin), ("in_h", h), ("in_w", w), ("out_c", cout), ("out_h", oh),
            ("out_w", ow), ("k_h", kh), ("k_w", kw), ("stride_h", sh), ("stride_w", sw),
            ("pad_h", ph), ("pad_w", pw), ("dil_h", dh), ("dil_w", dw),
            ("groups", int(a["groups"])), ("red_unroll", red), ("out_unroll", outer)]
        kinds = ["weight", "bias"]
        if khot("weight"):
            func, kinds = "conv2d_khot", ["weight_dsign", "weight_dshift", "bias"]
    elif node.op == "batchnorm":
        for m, k in (("acc_t", "acc"), ("scale_t", "scale"), ("shift_t", "shift")):
            typ(m, k)
        c = x.shape[0]
        ints += [("n_chan", c), ("n_spatial", n // c),
                 ("unroll", _unroll(n // c, reuse)),
                 ("chan_unroll", _unroll(c, reuse) if stream else 1)]
        kinds = ["scale", "shift"]
        if khot("scale"):
            func, kinds = "batchnorm_khot", ["scale_dsign", "scale_dshift", "shift"]
    elif node.op in ("binary_dense", "binary_conv2d"):
        for m, k in (("acc_t", "acc"), ("dot_t", "dot"), ("word_t", "word")):
            typ(m, k)
        fan_in = int(a["fan_in"])
        n_words = -(-fan_in // _WORD_BITS)
        if node.op == "binary_dense":
            red, outer = _fold(n_words, out.shape[0], reuse)
            ints += [("n_in", fan_in), ("n_out", out.shape[0])]
        else:
            cin, h, w = x.shape
            cout, oh, ow = out.shape
            _, _, kh, kw = node.params["weight"].shape
            groups = int(a["groups"])
            (sh, sw), (ph, pw), (dh, dw) = (pair(a["stride"]), pair(a["padding"]),
                                            pair(a["dilation"]))
            red, outer = _fold(n_words, cout // groups, reuse)
            ints += [
                ("in_c", cin), ("in_h", h), ("in_w", w), ("out_c", cout), ("out_h", oh),
                ("out_w", ow), ("k_h", kh), ("k_w", kw), ("stride_h", sh), ("stride_w", sw),
                ("pad_h", ph), ("pad_w", pw), ("dil_h", dh), ("dil_w", dw), ("groups", groups),
                ("fan_in", fan_in)]
        ints += [("n_words", n_words), ("red_unroll", red), ("out_unroll", outer)]
        kinds = ["wbits"]
        if "scale" in node.params:
            typ("scale_t", "scale")
            if khot("scale"):
                func, kinds = f"{node.op}_khot", ["wbits", "scale_dsign", "scale_dshift"]
            else:
                func, kinds = f"{node.op}_scale", ["wbits", "scale"]
    elif node.op in ("threshold", "thermometer"):
        typ("threshold_t", "threshold")
        c = x.shape[0]
        n_in = c if stream else int(math.prod(x.shape))
        ints += [("n_chan", c), ("n_spatial", n_in // c)]
        if node.op == "threshold":
            typ("dir_t", "dir")
            kinds = ["threshold", "direction"]
            ints += [("unroll", _unroll(n_in // c, reuse)),
                     ("chan_unroll", _unroll(c, reuse) if stream else 1)]
        else:
            levels = int(a["levels"])
            kinds = ["thresholds"]
            ints += [("levels", levels), ("unroll", _unroll(n_in, reuse, levels))]
    elif node.op == "relu":
        ints += [("n", n), ("unroll", _unroll(n, reuse))]
    elif node.op == "hardtanh":
        typ("clamp_t", "clamp")
        ints += [("n", n), ("min_raw", int(a["min_raw"])),
                 ("max_raw", int(a["max_raw"])), ("unroll", _unroll(n, reuse))]
    elif node.op == "add":
        types = [("in0_t", tname[node.inputs[0]]), ("in1_t", tname[node.inputs[1]]),
                 ("out_t", tname[node.output])]
        typ("acc_t", "acc")
        ints += [("n", n), ("unroll", _unroll(n, reuse))]
    elif node.op in ("maxpool2d", "avgpool2d"):
        (kh, kw), (sh, sw) = pair(a["kernel"]), pair(a["stride"])
        ints += [
            ("chan", x.shape[0]), ("in_h", x.shape[1]), ("in_w", x.shape[2]),
            ("out_h", out.shape[1]), ("out_w", out.shape[2]), ("k_h", kh), ("k_w", kw),
            ("stride_h", sh), ("stride_w", sw)]
        # average pooling has no padding or dilation: the window walk is shared (qfx_layers.h)
        (ph, pw), (dh, dw) = ((pair(a["padding"]), pair(a["dilation"]))
                              if node.op == "maxpool2d" else ((0, 0), (1, 1)))
        ints += [("pad_h", ph), ("pad_w", pw), ("dil_h", dh), ("dil_w", dw)]
        if node.op == "maxpool2d":
            types = [("in_t", tname[x.name])]
        else:
            typ("sum_t", "sum")
            typ("acc_t", "acc")
            if "recip" in node.params:
                typ("recip_t", "recip")
                func, kinds = "avgpool2d_recip", ["recip"]
            else:
                func = "avgpool2d_shift"
                ints.append(("shift", int(a["shift"])))
        ints.append(("unroll", _unroll(n, reuse, kh * kw)))
    if stream and node.op not in _WINDOW_OPS:
        ints += [("n_pixels", pixels), ("px_in", c_in), ("px_out", c_out)]
    ints.append(("reuse", reuse))
    return {"name": name, "node": node.name, "op": node.op, "func": func, "types": types,
            "ints": ints, "param_kinds": kinds}


# ====================================================================== vectors
def _port_raw(vectors: Any, graph: Graph) -> list[np.ndarray]:
    """Raw mantissas (in each graph input edge's type) of float test vectors."""
    xs = list(vectors) if isinstance(vectors, (list, tuple)) else [vectors]
    if len(xs) != len(graph.inputs):
        raise ValueError(f"the graph has {len(graph.inputs)} input(s); test_vectors gives "
                         f"{len(xs)}")
    raws = []
    for name, v in zip(graph.inputs, xs, strict=True):
        arr = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v,
                         dtype=np.float64)
        e = graph.edges[name]
        if arr.shape[1:] != tuple(e.shape):
            raise ValueError(f"test vectors for input {name!r} must have shape (samples, "
                             f"{', '.join(map(str, e.shape))}), got {arr.shape}")
        raws.append(e.type.to_int(arr))
    return raws


def _vectors(graph: Graph, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
    raws = _port_raw(vectors, graph)
    values = [graph.edges[n].type.from_int(r) for n, r in zip(graph.inputs, raws, strict=True)]
    res = run_graph(graph, values)
    n = raws[0].shape[0]
    inp = np.concatenate([r.reshape(n, -1) for r in raws], axis=1)
    exp = np.concatenate([r.reshape(n, -1) for r in res.raw], axis=1)
    return inp.astype(np.int64), exp.astype(np.int64)


# ====================================================================== export
def export_firmware(graph: Graph, out_dir: str | os.PathLike[str], *,
                    project_name: str = "qfx_model", io: str = "parallel",
                    reuse: ReuseSpec = 1,
                    force: bool = False, test_vectors: np.ndarray | Sequence[Any] | None = None,
                    axis_width: int | None = None) -> HLSProject:
    """Write the HLS firmware, testbench and (optionally) test vectors of a frozen graph.

    Args:
        graph: the frozen integer graph (``qfx.freeze``); node and edge names must be C++
            identifiers.
        out_dir: the project folder to create (refused if it exists, unless ``force``).
        project_name: C++ identifier; the top function's name and the files' stem.
        io: ``"parallel"``: arrays between layers that run one after another, each folded by
            its reuse factor (small MLPs and CNNs); ``"stream"``: a DATAFLOW pipeline with a
            FIFO of pixels on every edge and line buffers in the convolution and pooling layers
            (CNNs: the layers overlap, and no layer holds a whole feature map; see
            ``qfx_stream.h``). Both compute the same bits; the stream top function takes
            ``hls::stream`` ports and its AXI-Stream wrapper sends each port pixel by pixel
            (channels innermost, :func:`qfx.backends.hls.layout.wire_order`).
        reuse: multiplications per multiplier (>= 1); sets the unroll factors of each layer,
            never beyond 4096 iterations of a loop. An int applies to every layer; a mapping
            ``{node_name: reuse}`` with an optional ``"*"`` default (1 when absent) folds each
            layer by its own factor (``{"fc": 1, "*": 32}``); unknown node names are refused
            with the list of valid ones. Reuse never changes the arithmetic, only the unroll
            factors (recorded in each config struct's ``reuse`` member and in
            ``project.json``'s ``reuse_per_layer``); ``HLSProject.reuse`` is the default.
        force: replace an existing ``out_dir``.
        test_vectors: float inputs, shape ``(samples, *input_shape)`` (a list for several graph
            inputs). They are represented in the graph input edge's type (its rounding and
            overflow) and written to ``tb/inputs.txt``; ``tb/expected.txt`` holds the exact
            executor's raw outputs for exactly those values.
        axis_width: data width in bits of the AXI-Stream words (default: the smallest of 8, 16,
            32, 64 that holds every port's raw bits).

    Returns:
        The :class:`HLSProject` describing what was written.

    Example:
        >>> import qfx, torch, tempfile, os
        >>> from qfx.nn import QInput, QLinear
        >>> net = torch.nn.Sequential(QInput(8), QLinear(4, 2))
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(16, 4))
        >>> prj = export_firmware(qfx.freeze(net, torch.randn(1, 4)),
        ...                       os.path.join(tempfile.mkdtemp(), "tiny"), project_name="tiny")
        >>> prj.top, prj.axis_top, prj.axis_width
        ('tiny', 'tiny_axis', 8)
    """
    _check_identifier(project_name, "project_name")
    if io not in _IO_MODES:
        raise ValueError(f"io={io!r} is not an architecture the firmware writer knows; use one "
                         f"of {', '.join(_IO_MODES)}")
    reuse = normalize_reuse(reuse)
    _validate(graph)
    resolve_reuse(graph, reuse)  # unknown node names: refused before anything is written
    target = Path(out_dir).expanduser().absolute()
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass force=True to replace it")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")

    plan = _plan(graph, project_name, reuse, axis_width, io)
    vectors = _vectors(graph, test_vectors) if test_vectors is not None else None
    files = _render(plan, vectors is not None)

    with staging_dir(target) as stage:
        work = stage / "project"
        _write_tree(_project(work, plan, graph, io, files, vectors is not None), files, vectors,
                    plan.context["reuse_per_layer"])
        swap_into_place(work, target)
    return _project(target, plan, graph, io, files, vectors is not None)


def _project(root: Path, plan: _Plan, graph: Graph, io: str, files: dict[str, str],
             have_vectors: bool) -> HLSProject:
    ctx = plan.context
    tb = root / "tb"
    rel = [*files, MANIFEST_NAME, MODEL_NAME]
    if have_vectors:
        rel += ["tb/inputs.txt", "tb/expected.txt"]
    reuse = ctx["reuse"]
    return HLSProject(
        root=root, project_name=ctx["project"], top=ctx["top"], axis_top=ctx["axis_top"],
        namespace=ctx["ns"], io=io,
        reuse=reuse.default if isinstance(reuse, LayerReuse) else int(reuse),
        axis_width=ctx["axis_width"],
        graph=graph, inputs=plan.inputs, outputs=plan.outputs,
        files=tuple(sorted(root / r for r in rel)),
        input_vectors=tb / "inputs.txt" if have_vectors else None,
        expected_vectors=tb / "expected.txt" if have_vectors else None,
    )


def _render(plan: _Plan, have_vectors: bool) -> dict[str, str]:
    """Relative path -> file text, for every template-generated and static file."""
    root = templates_dir()
    env = _environment(root)
    ctx = dict(plan.context, have_vectors=have_vectors)
    project = ctx["project"]
    out: dict[str, str] = {}
    stream = ctx["io"] == "stream"
    for name in (*_STATIC_FIRMWARE, *(("qfx_stream.h",) if stream else ())):
        out[f"firmware/{name}"] = (root / "firmware" / name).read_text(encoding="utf-8")
    out["firmware/parameters.h"] = env.get_template("firmware/parameters.h.j2").render(ctx)
    for p in plan.params:
        out[f"firmware/weights/{p['file']}"] = env.get_template(
            "firmware/weights.h.j2").render(ctx, p=p)
    arch = "_stream" if stream else ""
    for tmpl, dst in ((f"firmware/top{arch}.h.j2", f"{project}.h"),
                      (f"firmware/top{arch}.cpp.j2", f"{project}.cpp"),
                      ("firmware/axis.h.j2", f"{project}_axis.h"),
                      (f"firmware/axis{arch}.cpp.j2", f"{project}_axis.cpp")):
        out[f"firmware/{dst}"] = env.get_template(tmpl).render(ctx)
    out[f"tb/tb_{project}.cpp"] = env.get_template("tb/tb.cpp.j2").render(ctx)
    return out


def _write_tree(prj: HLSProject, files: dict[str, str],
                vectors: tuple[np.ndarray, np.ndarray] | None,
                reuse_per_layer: Mapping[str, int]) -> None:
    for rel, text in files.items():
        path = prj.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if vectors is not None:
        inp, exp = vectors
        in_desc = ", ".join(f"{p.edge}: {p.type.cpp()} x {p.size}" for p in prj.inputs)
        out_desc = ", ".join(f"{p.edge}: {p.type.cpp()} x {p.size}" for p in prj.outputs)
        write_vectors(prj.input_vectors, inp, [f"inputs (raw mantissas): {in_desc}"])
        write_vectors(prj.expected_vectors, exp,
                      [f"expected outputs of the exact executor (raw mantissas): {out_desc}"])
    save_graph(prj.graph, prj.root / MODEL_NAME)
    manifest = dict(prj.manifest(), reuse_per_layer=dict(reuse_per_layer))
    (prj.root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n",
                                          encoding="utf-8")
