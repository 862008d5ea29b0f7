"""Channel pruning: drop the channels a graph provably does not need, exactly.

A channel is index c of axis 0 of an edge (a feature of a 1-D edge). The pass

1. proves constant channels, in execution order: an output channel whose sources
   (:meth:`~qfx.ir.ops.OpSpec.channel_sources`: for a dense/conv row, the input channels it has a
   nonzero weight on) are all constant is computed once on a probe input with the node's own
   ``execute`` and output cast; where it holds one value at every position it is a constant
   (a learned-width channel of width 0: zero weights, so the layer's output is its cast bias,
   or a BatchNorm scale of width 0, so the channel is its shift whatever its input; then
   through activations, pooling, ...);
2. groups channels that must go together (:meth:`~qfx.ir.ops.OpSpec.channel_ties`: a
   BatchNorm's, activation's, pool's or add's channel c with its inputs' channel c, a concat's
   channel with its input's, a flatten's features with their channel, a depthwise
   convolution's output with its input);
3. drops every group in which each channel consumed by a weighted op (whose input channels
   are in no tie) is absorbed by it (:meth:`~qfx.ir.ops.OpSpec.absorbs`): all its weights on
   the channel are 0, or the channel is a constant and its contribution ``w * c`` is folded
   into the consumer's bias, exactly, on the accumulator's grid (a convolution with zero
   padding folds only a constant 0: at the border it reads the padding, not the constant).
   No channel of a graph input or output, and never the last channel of an edge, is dropped.

Each op rewrites itself (:meth:`~qfx.ir.ops.OpSpec.drop_channels`); the pass repeats until
nothing changes (a row that fed only dropped channels may then be unused) and verifies the
result. Every kept value is computed exactly as before: the executor's outputs are unchanged,
bit for bit, and the accumulators keep their (still sufficient) formats.

Example:
    >>> import numpy as np
    >>> from qfx.fixed.fixed_type import FixedType
    >>> from qfx.ir.graph import Edge, Graph, Node
    >>> g = Graph(inputs=["x"], outputs=["y"])
    >>> t = FixedType(8, 4)
    >>> for name, n in (("x", 3), ("q", 3), ("h", 2), ("y", 1)):
    ...     g.add_edge(Edge(name, (n,), t))
    >>> g.add_node(Node("q", "input", ["x"], "q"))
    >>> g.add_node(Node("h", "dense", ["q"], "h", {"weight_type": t, "acc_type": FixedType(20, 12)},
    ...                 {"weight": np.array([[1, 2, 3], [0, 0, 0]])}))
    >>> g.add_node(Node("y", "dense", ["h"], "y", {"weight_type": t, "acc_type": FixedType(20, 12)},
    ...                 {"weight": np.array([[5, 7]])}))
    >>> pruned = prune_channels(g)
    >>> pruned.edges["h"].shape, pruned.node("y").params["weight"].tolist()
    ((1,), [[5]])
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

import torch

from qfx.ir.graph import Edge, Graph, Node
from qfx.ir.ops import spec
from qfx.ir.verify import verify

__all__ = ["channel_constants", "prune_channels"]

Pair = tuple[str, int]  # (edge, channel)


def channel_constants(graph: Graph) -> dict[str, dict[int, int]]:
    """Per edge, its provably constant channels and their raw values (in the edge's type).

    Example:
        >>> channel_constants(Graph())
        {}
    """
    consts: dict[str, dict[int, int]] = {}
    for node in graph.nodes:
        ins = [graph.edges[i] for i in node.inputs]
        consts[node.output] = _node_constants(node, ins, graph.edges[node.output],
                                              [consts.get(i, {}) for i in node.inputs])
    return consts


def _node_constants(node: Node, ins: Sequence[Edge], out: Edge,
                    in_consts: Sequence[dict[int, int]]) -> dict[int, int]:
    op = spec(node.op)
    sources = op.channel_sources(node, ins, out)
    if not sources:
        return {}
    cand = [j for j, src in enumerate(sources) if all(c in in_consts[i] for i, c in src)]
    if not cand:
        return {}
    cpu = torch.device("cpu")
    xs = []
    for e, known in zip(ins, in_consts, strict=True):
        x = torch.zeros((1, *e.shape), dtype=torch.float64)
        for c, v in known.items():
            x[0, c] = e.type.from_int(torch.tensor(v, dtype=torch.int64))
        xs.append(x)
    with torch.no_grad():
        y = op.execute(node, xs, cpu)
        if not op.same_format:  # the executor's one cast
            y = out.type.quantize(y)
        raw = out.type.to_int(y)[0]
    result = {}
    for j in cand:
        v = raw[j].reshape(-1)
        if bool((v == v[0]).all()):
            result[j] = int(v[0])
    return result


class _Groups:
    """Union-find over (edge, channel) pairs, with blocked groups."""

    def __init__(self) -> None:
        self.parent: dict[Pair, Pair] = {}
        self.blocked: set[Pair] = set()

    def find(self, p: Pair) -> Pair:
        root = self.parent.setdefault(p, p)
        while root != self.parent[root]:
            root = self.parent[root]
        while p != root:  # path compression
            self.parent[p], p = root, self.parent[p]
        return root

    def union(self, a: Pair, b: Pair) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def block(self, p: Pair) -> None:
        self.blocked.add(p)

    def removable(self, p: Pair, blocked_roots: set[Pair]) -> bool:
        return self.find(p) not in blocked_roots


def _channels(e: Edge) -> range:
    return range(e.shape[0]) if e.shape else range(0)


def _droppable(graph: Graph, consts: dict[str, dict[int, int]]) -> dict[str, list[int]]:
    """Per edge, the channels the pass may drop."""
    groups = _Groups()
    for name in (*graph.inputs, *graph.outputs):
        for c in _channels(graph.edges[name]):
            groups.block((name, c))
    for node in graph.nodes:
        op = spec(node.op)
        ins = [graph.edges[i] for i in node.inputs]
        out = graph.edges[node.output]
        ties = op.channel_ties(node, ins, out) if out.shape else None
        if ties is None:  # nothing of this node may go
            for e in (*ins, out):
                for c in _channels(e):
                    groups.block((e.name, c))
            continue
        tied = set()
        for j, tie in enumerate(ties):
            groups.find((out.name, j))
            for i, c in tie:
                groups.union((out.name, j), (ins[i].name, c))
                tied.add((i, c))
        for i, e in enumerate(ins):
            for c in _channels(e):
                if (i, c) not in tied and not op.absorbs(node, ins, i, c,
                                                         consts.get(e.name, {}).get(c)):
                    groups.block((e.name, c))
    blocked = {groups.find(p) for p in groups.blocked}
    while True:  # never the last channel of an edge
        emptied = [e for e in graph.edges.values() if e.shape and all(
            groups.removable((e.name, c), blocked) for c in _channels(e))]
        if not emptied:
            break
        blocked.add(groups.find((emptied[0].name, 0)))
    drop = {name: [c for c in _channels(e) if groups.removable((name, c), blocked)]
            for name, e in graph.edges.items()}
    return {k: v for k, v in drop.items() if v}


def _prune_once(graph: Graph) -> bool:
    consts = channel_constants(graph)
    drop = _droppable(graph, consts)
    if not drop:
        return False
    old = dict(graph.edges)
    for node in graph.nodes:
        ins = [old[i] for i in node.inputs]
        drop_in = [{c: consts.get(e.name, {}).get(c) for c in drop.get(e.name, ())}
                   for e in ins]
        drop_out = drop.get(node.output, [])
        if drop_out or any(drop_in):
            spec(node.op).drop_channels(node, ins, drop_in, drop_out)
    for node in graph.nodes:
        ins = [graph.edges[i] for i in node.inputs]
        shape = tuple(spec(node.op).infer_shape(node, ins))
        graph.edges[node.output] = replace(graph.edges[node.output], shape=shape)
    return True


def prune_channels(graph: Graph) -> Graph:
    """A copy of ``graph`` without the channels it provably does not need (see the module
    docstring), verified; ``meta["pruned_channels"]`` counts the channels dropped per edge."""
    g = copy.deepcopy(graph)
    before = {name: e.shape[0] for name, e in g.edges.items() if e.shape}
    while _prune_once(g):
        pass
    dropped = {name: n - g.edges[name].shape[0] for name, n in before.items()
               if g.edges[name].shape[0] != n}
    if dropped:
        g.meta["pruned_channels"] = {**graph.meta.get("pruned_channels", {}), **dropped}
    return verify(g)
