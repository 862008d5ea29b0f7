"""The HLS backend's typed plan of one graph: what the firmware writer renders and the resource
estimate reads.

Two levels:

* :func:`schedule` (no C++ names): each node's HLS rule (:mod:`.rules`) and reuse factor, the
  edges that share an array (a flatten's output is its input's NCHW array), and for
  ``io="stream"`` the DATAFLOW routing (:func:`route_streams`: every FIFO with its depth, the
  clone processes) and each window layer's line buffer. The estimate works from this.
* :func:`build_plan`: the schedule plus every generated identifier (checked unique), the
  typedef of each edge and typed node attribute, the constant arrays, each layer's config
  struct, the ports and arrays of the top function. :meth:`HLSPlan.context` is the Jinja
  context of ``hls_templates/``.

The FIFO rule (one place): each edge is written by its producer into one stream of depth 2 (the
input port for a graph input, the output port for a graph output that nothing else reads, else a
local stream) and read by each reader from a stream of its own: an edge with several readers
(the output port counts) is copied by a chain of ``clone`` processes, and the streams that leave
a clone are as deep as the edge has pixels (a reader may lag the other by the whole tensor: a
residual branch behind a line buffer; a shallower FIFO could deadlock the DATAFLOW region).

Example:
    >>> from qfx.fixed.fixed_type import FixedType
    >>> from qfx.ir.graph import Edge, Graph, Node
    >>> g = Graph(inputs=["x"], outputs=["y", "z"])
    >>> for e in ("x", "y", "z"):
    ...     g.add_edge(Edge(e, (4,), FixedType(8, 3)))
    >>> g.add_node(Node("r", "relu", ["x"], "y")); g.add_node(Node("s", "relu", ["y"], "z"))
    >>> for f in route_streams(g).fifos:
    ...     print(f.edge, f.depth, f.clone, f.port)
    x 2 False in
    y 2 False None
    y 1 True None
    y 1 True out
    z 2 False out
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qfx.backends.hls.costmodel import window_rows
from qfx.backends.hls.layout import default_axis_width, edge_pixels
from qfx.backends.hls.project import PortInfo
from qfx.backends.hls.reuse import LayerReuse, resolve_reuse
from qfx.backends.hls.rules import HLSRule, LayerConfig, rule
from qfx.fixed.fixed_type import FixedType
from qfx.ir.graph import Graph, Node, sanitize_identifier
from qfx.ir.ops import spec
from qfx.ir.verify import check_identifier

__all__ = ["AXIS_WIDTHS", "Constant", "EdgePlan", "Fifo", "HLSPlan", "LayerPlan", "LineBuffer",
           "Names", "Process", "Schedule", "StreamRoute", "build_plan", "route_streams",
           "schedule"]

AXIS_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
#: The depth (pixels) of a stream that leaves a producer.
FIFO_DEPTH = 2
_ROW = 16  # integer literals per line in the weight headers
# IR attr -> suffix of the per-node typedef
_TYPE_ATTRS = (("weight_type", "weight"), ("bias_type", "bias"), ("acc_type", "acc"),
               ("scale_type", "scale"), ("shift_type", "shift"), ("clamp_type", "clamp"),
               ("sum_type", "sum"), ("recip_type", "recip"), ("threshold_type", "threshold"))
_PARAM_SUFFIX = {"weight": "w", "bias": "b", "scale": "scale", "shift": "shift", "recip": "recip",
                 "weight_dsign": "w_dsign", "weight_dshift": "w_dshift",
                 "scale_dsign": "scale_dsign", "scale_dshift": "scale_dshift",
                 "wbits": "wbits", "threshold": "thr", "thresholds": "thr", "direction": "dir",
                 "table": "table", "exp_table": "exp_table", "recip_table": "recip_table",
                 "weight_shift": "w_shift", "scale_shift": "scale_sshift"}


class Names:
    """Allocates the C++ identifiers of one project; refuses duplicates."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        check_identifier(name, "generated name")
        if name in self.used:
            raise ValueError(f"two generated C++ names collide: {name!r}; rename the IR node or "
                             "edge (or the project) that produces it")
        self.used.add(name)
        return name


# ====================================================================== streams
@dataclass(eq=False)
class Fifo:
    """One stream of the DATAFLOW region: the ``edge`` it carries, its ``depth`` in pixels,
    ``clone``: written by a clone process; ``port``: ``"in"`` / ``"out"`` when it is the top
    function's port, else ``None`` (a local stream named ``s_<edge><suffix>``); ``name``: its
    C++ name once the plan is named."""

    edge: str
    depth: int
    clone: bool
    port: str | None = None
    suffix: str = ""
    name: str = ""


@dataclass(frozen=True)
class Process:
    """One process of the streaming body, in order: a node's layer (``node``) or a ``clone``
    of ``edge``; it reads ``xs`` and writes ``ys``."""

    kind: str
    edge: str
    xs: tuple[Fifo, ...]
    ys: tuple[Fifo, ...]
    node: Node | None = None


@dataclass
class StreamRoute:
    """Every FIFO (in creation order) and process of the streaming design; ``problems``: why
    the graph cannot be streamed (empty when it can)."""

    fifos: list[Fifo] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def of_edge(self, edge: str) -> list[Fifo]:
        """The FIFOs that carry ``edge``."""
        return [f for f in self.fifos if f.edge == edge]


def route_streams(graph: Graph) -> StreamRoute:
    """Route every edge of ``graph`` through FIFOs (the rule in the module docstring)."""
    route = StreamRoute()
    readers: dict[str, list[tuple[str, int]]] = {e: [] for e in graph.edges}
    for node in graph.nodes:
        for k, e in enumerate(node.inputs):
            readers[e].append((node.name, k))
    source: dict[str, Fifo] = {}  # edge -> the stream its producer writes
    read_from: dict[tuple[str, int], Fifo] = {}  # (node, input index) -> stream

    def fifo(edge: str, depth: int, clone: bool, port: str | None = None,
             suffix: str = "") -> Fifo:
        f = Fifo(edge, depth, clone, port, suffix)
        route.fifos.append(f)
        return f

    def fan_out(edge: str) -> None:
        """Route ``edge`` from its source stream to every reader (clones when > 1)."""
        dests: list[tuple[str, int] | None] = [*readers[edge]]
        if edge in graph.outputs:
            dests.append(None)  # the output port
        if not dests:
            route.problems.append(f"io='stream': edge {edge!r} is never read; a streaming "
                                  "design cannot leave a stream unread")
        if edge in graph.inputs and edge in graph.outputs:
            route.problems.append(f"io='stream': graph input {edge!r} is also a graph output")
        if len(dests) == 1 and dests[0] is not None:
            read_from[dests[0]] = source[edge]
        if len(dests) <= 1:
            return
        depth = edge_pixels(graph.edges[edge].shape)[1]

        def stream_for(dest: tuple[str, int] | None, i: int) -> Fifo:
            if dest is None:
                return fifo(edge, depth, True, "out")
            read_from[dest] = fifo(edge, depth, True, suffix=f"_r{i}")
            return read_from[dest]

        src = source[edge]
        for i, dest in enumerate(dests[:-1]):
            a = stream_for(dest, i)
            last = i == len(dests) - 2
            b = stream_for(dests[-1], i + 1) if last else fifo(edge, depth, True,
                                                               suffix=f"_c{i}")
            route.processes.append(Process("clone", edge, (src,), (a, b)))
            src = b

    for e in graph.inputs:
        source[e] = fifo(e, FIFO_DEPTH, False, "in")
        fan_out(e)
    for node in graph.nodes:
        y = node.output
        only_port = y in graph.outputs and not readers[y]
        source[y] = fifo(y, FIFO_DEPTH, False, "out" if only_port else None)
        xs = tuple(read_from[(node.name, k)] for k in range(len(node.inputs)))
        route.processes.append(Process("node", y, xs, (source[y],), node))
        fan_out(y)
    return route


@dataclass(frozen=True)
class LineBuffer:
    """A streamed window layer's line buffer: ``rows`` rows of ``width`` pixels of ``chan``
    values; ``first_rows``: the input rows read before its first output row."""

    rows: int
    first_rows: int
    width: int
    chan: int


# ====================================================================== schedule
@dataclass
class Schedule:
    """The name-free plan of a graph (see the module docstring); ``rules`` maps each node
    with an HLS layer to its rule."""

    graph: Graph
    io: str
    reuse: int | LayerReuse
    per_node: dict[str, int]
    rules: dict[str, HLSRule]
    alias: dict[str, str]
    route: StreamRoute | None
    line_buffers: dict[str, LineBuffer]

    @property
    def stream(self) -> bool:
        return self.io == "stream"


def schedule(graph: Graph, reuse: int | LayerReuse, io: str = "parallel") -> Schedule:
    """The name-free plan of ``graph`` (nodes without an HLS rule are left out of ``rules``)."""
    stream = io == "stream"
    rules = {n.name: r for n in graph.nodes if (r := rule(n.op)) is not None}
    alias: dict[str, str] = {}
    buffers: dict[str, LineBuffer] = {}
    for node in graph.nodes:
        r = rules.get(node.name)
        if r is not None and r.aliases:
            alias[node.output] = alias.get(node.inputs[0], node.inputs[0])
        if stream and spec(node.op).window:
            rows, first = window_rows(graph, node)
            shape = graph.edges[node.inputs[0]].shape
            buffers[node.name] = LineBuffer(rows, first, int(shape[-1]), int(shape[0]))
    return Schedule(graph, io, reuse, resolve_reuse(graph, reuse), rules, alias,
                    route_streams(graph) if stream else None, buffers)


# ====================================================================== the named plan
@dataclass
class EdgePlan:
    """An edge's typedef (``name``, its ``cpp`` spelling) and, streamed, its pixel type."""

    edge: str
    typedef: str
    cpp: str
    shape: tuple[int, ...]
    pixel: str | None = None
    chan: int = 0
    pixels: int = 0


@dataclass
class TypeDef:
    name: str
    cpp: str
    note: str


@dataclass
class Constant:
    """One constant array (its own header): raw values of ``type`` declared as ``typedef``."""

    array: str
    node: Node
    kind: str
    typedef: str
    type: FixedType
    layout: str
    raw: np.ndarray

    def context(self) -> dict[str, Any]:
        flat = [int(v) for v in np.asarray(self.raw, dtype=np.int64).ravel()]
        return {"array": self.array, "file": f"{self.array}.h", "node": self.node.name,
                "op": self.node.op, "kind": self.kind, "type": self.typedef,
                "cpp": self.type.cpp(), "frac": self.type.frac_bits, "count": len(flat),
                "layout": self.layout,
                "rows": [flat[i:i + _ROW] for i in range(0, len(flat), _ROW)]}


@dataclass
class LayerPlan:
    """One layer: its config struct (``config``: name; ``types``: member typedefs; ``ints``:
    integer members, unroll factors included), the function it calls and its constants."""

    node: Node
    config: str
    func: str
    types: list[tuple[str, str]]
    ints: list[tuple[str, int]]
    params: list[str]
    param_kinds: list[str]
    reuse: int

    @property
    def unroll(self) -> dict[str, int]:
        """The unroll factors of the config (``unroll``, ``red_unroll``, ...)."""
        return {k: v for k, v in self.ints if "unroll" in k}

    def context(self) -> dict[str, Any]:
        return {"name": self.config, "node": self.node.name, "op": self.node.op,
                "func": self.func, "types": self.types, "ints": self.ints,
                "param_kinds": self.param_kinds}


@dataclass
class HLSPlan:
    """Everything the firmware templates need, as names and numbers (see :func:`build_plan`)."""

    schedule: Schedule
    project: str
    top: str
    axis_top: str
    axis_word: str
    ns: str
    axis_width: int
    edges: dict[str, EdgePlan]
    node_types: list[TypeDef]
    constants: list[Constant]
    layers: dict[str, LayerPlan]
    inputs: tuple[PortInfo, ...]
    outputs: tuple[PortInfo, ...]
    arrays: dict[str, str]

    @property
    def io(self) -> str:
        return self.schedule.io

    @property
    def params(self) -> list[dict[str, Any]]:
        return [c.context() for c in self.constants]

    def context(self) -> dict[str, Any]:
        """The Jinja context of the templates."""
        sch, graph = self.schedule, self.schedule.graph
        stream = sch.stream
        edges = self.edges
        locals_ = [] if stream else [
            {"name": self.arrays[n.output], "type": edges[n.output].typedef,
             "size": _size(graph, n.output), "node": n.name}
            for n in graph.nodes if n.name in self.layers]
        steps = [] if stream else [self._step(n) for n in graph.nodes]
        copies = [] if stream else [{"src": self.arrays[p.edge], "dst": p.name,
                                     "type": p.typedef, "size": p.size} for p in self.outputs]
        body, streams = self._stream_body() if stream else ([], [])
        return {
            "project": self.project, "top": self.top, "axis_top": self.axis_top,
            "axis_word": self.axis_word, "ns": self.ns,
            "model": sanitize_identifier(str(graph.meta.get("model", "graph"))),
            "reuse": sch.reuse, "reuse_per_layer": sch.per_node, "axis_width": self.axis_width,
            "edge_types": [{"name": e.typedef, "cpp": e.cpp, "edge": e.edge,
                            "shape": "x".join(map(str, e.shape)) or "scalar"}
                           for e in edges.values()],
            "node_types": [{"name": t.name, "cpp": t.cpp, "note": t.note}
                           for t in self.node_types],
            "configs": [lp.context() for lp in self.layers.values()], "params": self.params,
            "locals": locals_, "steps": steps, "copies": copies,
            "inputs": [self._port(p) for p in self.inputs], "io": sch.io,
            "pixel_types": [{"name": e.pixel, "type": e.typedef, "edge": e.edge,
                             "chan": e.chan, "pixels": e.pixels}
                            for e in edges.values()] if stream else [],
            "body": body, "streams": streams, "outputs": [self._port(p) for p in self.outputs],
            "n_in_total": sum(p.size for p in self.inputs),
            "n_out_total": sum(p.size for p in self.outputs),
        }

    def _step(self, node: Node) -> dict[str, Any]:
        y, size = self.arrays[node.output], _size(self.schedule.graph, node.output)
        lp = self.layers.get(node.name)
        if lp is None:  # an alias: the output is the input's array
            return {"node": node.name, "op": node.op, "alias": True, "y": y, "size": size}
        return {"node": node.name, "op": node.op, "alias": False, "config": lp.config,
                "func": lp.func, "x": [self.arrays[i] for i in node.inputs], "y": y,
                "size": size, "params": lp.params}

    def _port(self, p: PortInfo) -> dict[str, Any]:
        # wire order (layout.wire_order): element j of the port on the AXI-Stream wire is NCHW
        # element (j % wire_chan) * wire_pixels + j // wire_chan
        stream = self.schedule.stream
        chan, pixels = edge_pixels(p.shape) if stream else (1, p.size)
        return {"name": p.name, "edge": p.edge, "type": p.typedef, "cpp": p.type.cpp(),
                "size": p.size, "shape": "x".join(map(str, p.shape)), "width": p.type.width,
                "signed": p.type.signed, "wire_chan": chan, "wire_pixels": pixels,
                "px": self.edges[p.edge].pixel if stream else None}

    def _stream_body(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The DATAFLOW body of the streaming top function: (processes, local streams)."""
        route = self.schedule.route
        assert route is not None

        def px(edge: str) -> dict[str, Any]:
            e = self.edges[edge]
            return {"type": e.typedef, "chan": e.chan, "pixels": e.pixels}

        body: list[dict[str, Any]] = []
        for p in route.processes:
            if p.kind == "clone":
                body.append({"kind": "clone", "x": p.xs[0].name, "a": p.ys[0].name,
                             "b": p.ys[1].name, **px(p.edge)})
                continue
            assert p.node is not None
            node, y = p.node, p.ys[0].name
            lp = self.layers.get(node.name)
            if lp is None:
                body.append({"kind": "flatten", "node": node.name, "x": p.xs[0].name, "y": y,
                             **px(node.inputs[0])})
            else:
                body.append({"kind": "call", "node": node.name, "func": lp.func,
                             "config": lp.config, "x": [f.name for f in p.xs], "y": y,
                             "params": lp.params})
            body.append({"kind": "trace", "node": node.name, "stream": y, **px(p.edge)})
        streams = [{"name": f.name, "px": self.edges[f.edge].pixel, "depth": f.depth,
                    "edge": f.edge} for f in route.fifos if f.port is None]
        return body, streams


def _size(graph: Graph, edge: str) -> int:
    return int(math.prod(graph.edges[edge].shape))


def build_plan(graph: Graph, project_name: str, reuse: int | LayerReuse,
               axis_width: int | None, io: str = "parallel") -> HLSPlan:
    """Name and type everything the firmware of ``graph`` declares (every node must have an HLS
    rule; the writer checks that first)."""
    sch = schedule(graph, reuse, io)
    stream = sch.stream
    names = Names()
    for reserved in ("in_stream", "out_stream", "qfx"):  # names the templates use
        names.take(reserved)
    ns = names.take(f"{project_name}_fw")
    top = names.take(project_name)
    axis_top = names.take(f"{project_name}_axis")
    axis_word = names.take(f"{project_name}_axis_word")

    # ---- typedefs: one per edge (and pixel type), one per typed node attribute
    edges = {e.name: EdgePlan(e.name, names.take(f"{e.name}_t"), e.type.cpp(), tuple(e.shape))
             for e in graph.edges.values()}
    if stream:
        for e in edges.values():
            e.chan, e.pixels = edge_pixels(e.shape)
            e.pixel = names.take(f"{e.edge}_px")
    node_types: list[TypeDef] = []
    ntype: dict[tuple[str, str], str] = {}
    variants = {n.name: sch.rules[n.name].variant(graph, n, sch.per_node.get(n.name, 1), stream)
                for n in graph.nodes}
    kw = {n: {} if v is None else {"variant": v} for n, v in variants.items()}
    for node in graph.nodes:
        extra = sch.rules[node.name].typedefs(node, **kw[node.name])
        typed = [(kind, t, f"{node.op} {attr}") for attr, kind in _TYPE_ATTRS
                 if isinstance(t := node.attrs.get(attr), FixedType)]
        for kind, t, note in [*typed, *extra]:
            ntype[(node.name, kind)] = names.take(f"{node.name}_{kind}_t")
            node_types.append(TypeDef(ntype[(node.name, kind)], t.cpp(), note))

    # ---- constants
    constants: list[Constant] = []
    pname: dict[tuple[str, str], str] = {}
    for node in graph.nodes:
        for c in sch.rules[node.name].constants(node, **kw[node.name]):
            array = names.take(f"{node.name}_{_PARAM_SUFFIX[c.kind]}")
            pname[(node.name, c.kind)] = array
            constants.append(Constant(array, node, c.kind, ntype[(node.name, c.tkind or c.kind)],
                                      c.type, c.layout, c.raw))

    # ---- ports
    def port(edge: str, prefix: str) -> PortInfo:
        e = graph.edges[edge]
        return PortInfo(names.take(f"{prefix}_{edge}"), edge, edges[edge].typedef, e.type,
                        e.shape)

    inputs = tuple(port(e, "in") for e in graph.inputs)
    outputs = tuple(port(e, "out") for e in graph.outputs)

    # ---- arrays (io="parallel") and layers
    arrays: dict[str, str] = {p.edge: p.name for p in inputs}
    layers: dict[str, LayerPlan] = {}
    tname = {e: p.typedef for e, p in edges.items()}
    for node in graph.nodes:
        r = sch.rules[node.name]
        if r.aliases:
            if not stream:
                arrays[node.output] = arrays[node.inputs[0]]
            continue
        if not stream:
            arrays[node.output] = names.take(f"{node.output}_out")
        cfg = LayerConfig(graph, node, sch.per_node[node.name], stream, tname, ntype)
        r.config(cfg)
        if stream and not spec(node.op).window:  # per-pixel layers (qfx_stream.h)
            pixels = edge_pixels(cfg.out.shape)[1]
            cfg.ints += [("n_pixels", pixels), ("px_in", edge_pixels(cfg.x.shape)[0]),
                         ("px_out", cfg.n)]
        cfg.ints.append(("reuse", cfg.reuse))
        layers[node.name] = LayerPlan(
            node, names.take(f"{node.name}_config"), cfg.func, cfg.types, cfg.ints,
            [pname[(node.name, k)] for k in cfg.kinds], cfg.kinds, cfg.reuse)

    widths = [p.type.width for p in (*inputs, *outputs)]
    if axis_width is None:
        axis_width = default_axis_width(widths)
    if axis_width not in AXIS_WIDTHS or axis_width < max(widths):
        raise ValueError(f"axis_width must be one of {AXIS_WIDTHS} and at least the widest "
                         f"port ({max(widths)} bits), got {axis_width}")

    if sch.route is not None:  # name the streams
        if sch.route.problems:
            raise ValueError(sch.route.problems[0])
        port_name = {("in", p.edge): p.name for p in inputs}
        port_name.update({("out", p.edge): p.name for p in outputs})
        for f in sch.route.fifos:
            f.name = (port_name[(f.port, f.edge)] if f.port is not None
                      else names.take(f"s_{f.edge}{f.suffix}"))
    return HLSPlan(sch, project_name, top, axis_top, axis_word, ns, axis_width, edges,
                   node_types, constants, layers, inputs, outputs, arrays)
