"""``reuse="auto"``: choose every layer's reuse factor so that the design fits the board's budget
at the best throughput (FINN's folding, on qfx's own estimate).

The search works on the very model the writer and the estimate use (one model of the
hardware): each layer's folding is its HLS rule's ``shape`` / ``stream_shape``
(:mod:`qfx.backends.hls.rules`) and its resources and cycles are
:meth:`qfx.backends.hls.estimate.EstimateModel.row`; the chosen design is checked at the end
with the full :meth:`~qfx.backends.hls.estimate.EstimateModel.report`.

Candidates per layer: a layer's folding depends on its reuse ``r`` only through
``ceil(S / r)`` (``S``, the layer's *span*: at ``r >= S`` it is fully folded, one unit), so
only the breakpoints of ``ceil(S / r)`` can change it; of the settings with the same busy
cycles the one with the fewest parallel units is kept, written as the smallest reuse that
gives it (lowering it by one changes the fold).

* ``io="stream"`` (DATAFLOW): the interval is the busiest process (or the AXI-Stream words).
  For an interval ``T`` the cheapest design folds every layer as far as ``T`` allows (no layer
  gets more multipliers than the slowest can use: FINN's balance); the smallest ``T`` whose
  design fits is found by bisection.
* ``io="parallel"``: the latency is the sum of the layers'. From the most folded design, the
  layer whose next step buys the most cycles per unit of budget (the sum over resources of
  the added use / the budget) is unfolded while the design fits.
* ``target_fps`` / ``target_latency_us``: the cheapest design that reaches the target, or a
  ``ValueError`` naming the bottleneck layer and the best reachable figure.

Every design ends in a local check: no layer's reuse can be lowered (one candidate more
parallel) while the design still fits and the objective (interval for stream, latency for
parallel) improves.

Example:
    >>> import qfx, torch
    >>> from qfx.nn import QInput, QLinear
    >>> net = torch.nn.Sequential(QInput(8), QLinear(64, 32), QLinear(32, 10))
    >>> with qfx.calibration(net):
    ...     _ = net(torch.randn(64, 64))
    >>> g = qfx.freeze(net.eval(), torch.randn(1, 64))
    >>> fold = autofold(g, "ultra96")
    >>> fold.report.fits, sorted(fold.bound.values())[0] in BOUNDS
    (True, True)
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qfx.backends.hls.boards import Board, load_board
from qfx.backends.hls.budget import RESOURCE_NAMES, ResourceBudget, ResourceEstimate
from qfx.backends.hls.costmodel import Shape, ceil_div
from qfx.backends.hls.estimate import EstimateModel, LayerEstimate, ResourceReport
from qfx.backends.hls.reuse import DEFAULT_REUSE_KEY, MAX_REUSE, MAX_UNROLL, LayerReuse
from qfx.ir.graph import Graph

__all__ = ["AUTO", "BOUNDS", "Candidate", "DesignPoint", "FoldResult", "autofold",
           "check_reuse_bounds", "layer_candidates", "most_folded", "reuse_span"]

#: The ``reuse`` value that asks for the search.
AUTO = "auto"
#: What can bind a layer's reuse (``FoldResult.bound``).
BOUNDS = ("budget", "balance", "io", "target", "unroll limit", "layer size", "manual")
_BIG = 1 << 40


# ====================================================================== candidates
@dataclass(frozen=True)
class Candidate:
    """One folding of a layer: the smallest ``reuse`` that gives it, its folding ``shape`` and
    its busy ``cycles`` (the estimate's per-layer cycles)."""

    reuse: int
    cycles: int
    shape: Shape


def reuse_span(model: EstimateModel, name: str) -> int:
    """The smallest reuse at which node ``name`` is folded as far as it goes (every larger
    reuse gives the same design): the most any reuse of this layer can usefully be."""
    last = model.shape(name, _BIG)
    lo, hi = 1, _BIG
    if model.shape(name, 1) == last:
        return 1
    while lo < hi:  # the fold is monotone in the reuse
        mid = (lo + hi) // 2
        if model.shape(name, mid) == last:
            hi = mid
        else:
            lo = mid + 1
    return lo


def most_folded(graph: Graph, *, board: Board | str | None = None, io: str = "parallel",
                reuse: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Every node's reuse in the most folded design (its :func:`reuse_span`): the least any
    reuse makes of these formats, the design ``"auto"`` starts its search from. ``reuse``:
    a ``{node: reuse, "*": ...}`` mapping whose integer entries are kept (``"auto"`` entries
    and nodes it does not name are folded).

    Example:
        >>> import qfx, torch
        >>> from qfx.nn import QInput, QLinear
        >>> net = torch.nn.Sequential(QInput(8), QLinear(64, 32))
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(64, 64))
        >>> most_folded(qfx.freeze(net.eval(), torch.randn(1, 64)))["n_0"]  # 64 cycles a row
        64
    """
    model = EstimateModel(graph, board=board, io=io)
    given = dict(reuse or {})
    default = given.pop(DEFAULT_REUSE_KEY, AUTO)
    out = {}
    for node in graph.nodes:
        r = given.get(node.name, default)
        out[node.name] = r if isinstance(r, int) else reuse_span(model, node.name)
    return out


def _depth(model: EstimateModel, name: str, reuse: int) -> tuple[int, LayerEstimate]:
    """The layer's pipeline depth (independent of the reuse) from its row at ``reuse``."""
    sh = model.shape(name, reuse)
    row = model.row(name, reuse, shape=sh)
    if not sh.inner or not sh.outer:
        return 0, row
    return (row.latency_cycles - sh.extra) // sh.outer - sh.inner, row


def layer_candidates(model: EstimateModel, name: str) -> list[Candidate]:
    """The foldings of node ``name`` worth considering, most folded first (see the module
    docstring): one per distinct busy-cycle count, the one with the fewest parallel units."""
    span = reuse_span(model, name)
    depth, _ = _depth(model, name, span)
    entries: list[tuple[int, Shape]] = []  # (first reuse of the shape, shape), ascending
    r = 1
    first = max(1, ceil_div(span, MAX_UNROLL))  # below: capped at the unroll limit
    while r <= span:
        sh = model.shape(name, r)
        if not entries or entries[-1][1] != sh:
            entries.append((r, sh))
        if r < first:
            r = first
            continue
        q = ceil_div(span, r)
        r = ceil_div(span, q - 1) if q > 1 else span + 1
    by_cycles: dict[int, tuple[int, Shape]] = {}
    for r0, sh in entries:  # cycles grow with the reuse: the last of each count is cheapest
        by_cycles[sh.cycles(depth)] = (r0, sh)
    cands = [Candidate(r0, cyc, sh) for cyc, (r0, sh) in by_cycles.items()]
    return sorted(cands, key=lambda c: -c.reuse)


def check_reuse_bounds(graph: Graph, reuse: int | Mapping[str, int], io: str = "parallel"
                       ) -> None:
    """Refuse a numeric reuse that no layer can use: beyond :data:`MAX_REUSE`, or above every
    layer's span (an int), or above its own layer's span (a per-layer value). One line.

    Example:
        >>> check_reuse_bounds(Graph(), 10**12)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: reuse=1000000000000 is beyond the largest reuse qfx writes (2147483647)
    """
    values = reuse.values() if isinstance(reuse, Mapping) else [reuse]
    for v in values:
        if isinstance(v, int) and v > MAX_REUSE:
            raise ValueError(f"reuse={v} is beyond the largest reuse qfx writes ({MAX_REUSE})")
    model = EstimateModel(graph, io=io)
    spans = {n.name: reuse_span(model, n.name) for n in graph.nodes}
    if not spans:
        return
    if isinstance(reuse, Mapping):
        for k, v in reuse.items():
            if k != DEFAULT_REUSE_KEY and k in spans and v > max(spans[k], 1):
                raise ValueError(f"reuse[{k!r}]={v} is more than layer {k} can use: it is fully "
                                 f"folded (one unit) at reuse {spans[k]}")
        default = reuse.get(DEFAULT_REUSE_KEY, 1)
    else:
        default = reuse
    top = max(spans, key=lambda k: spans[k])
    if default > spans[top]:
        raise ValueError(f"reuse={default} is more than any layer of this model can use: every "
                         f"layer is fully folded at reuse {spans[top]} (layer {top}, io={io})")


# ====================================================================== results
@dataclass(frozen=True)
class DesignPoint:
    """One design the search looked at (for the report's plot)."""

    fps: float | None
    lut: int
    dsp: int
    fits: bool
    chosen: bool = False


@dataclass
class FoldResult:
    """The chosen per-layer reuse (``reuse``, a :class:`LayerReuse`), its full estimate
    (``report``), what bound each layer (``bound``: one of :data:`BOUNDS`, ``detail``: the
    sentence), the budget fraction and target, a few designs for the plot (``points``) and the
    search's wall time in seconds."""

    reuse: LayerReuse
    report: ResourceReport
    bound: dict[str, str]
    detail: dict[str, str]
    budget_fraction: float
    target: str | None
    points: list[DesignPoint] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``report.json``'s ``autofold`` section."""
        total = self.report.total.as_dict()
        budget = self.report.budget.as_dict() if self.report.budget is not None else {}
        layers = []
        for row in self.report.layers:
            if row.reuse is None:
                continue
            share = {k.lower(): (round(getattr(row, k.lower()) / total[k], 4) if total[k] else 0.0)
                     for k in ("LUT", "FF", "DSP", "BRAM18K")}
            layers.append({"node": row.node, "reuse": row.reuse, "cycles": row.latency_cycles,
                           "share": share, "bound": self.bound.get(row.node, "-"),
                           "why": self.detail.get(row.node, "")})
        return {"budget_fraction": self.budget_fraction, "target": self.target,
                "search_seconds": round(self.seconds, 4),
                "budget": {k.lower(): math.floor(v * self.budget_fraction)
                           for k, v in budget.items()},
                "layers": layers,
                "candidates": [{"fps": p.fps, "lut": p.lut, "dsp": p.dsp, "fits": p.fits,
                                "chosen": p.chosen} for p in self.points]}


# ====================================================================== the search
_RES = tuple(k.lower() for k in RESOURCE_NAMES)


def _vec(e: ResourceEstimate) -> tuple[int, ...]:
    return tuple(getattr(e, k) for k in _RES)


class _Search:
    def __init__(self, model: EstimateModel, budget: ResourceBudget,
                 fixed: Mapping[str, int]) -> None:
        self.m, self.budget, self.graph = model, _vec_budget(budget), model.graph
        self.budget_name = budget.name
        self.names = [n.name for n in self.graph.nodes]
        self.fixed = dict(fixed)
        self.cands: dict[str, list[Candidate]] = {}
        for n in self.names:
            if n in fixed:
                sh = model.shape(n, fixed[n])
                depth, _ = _depth(model, n, fixed[n])
                self.cands[n] = [Candidate(fixed[n], sh.cycles(depth), sh)]
            else:
                self.cands[n] = layer_candidates(model, n)
        self._rows: dict[tuple[str, int], tuple[int, ...]] = {}
        self._arr: dict[tuple[str, int], tuple[int, ...]] = {}
        self.alias = model.schedule.alias
        self.readers: dict[str, list[tuple[str, str]]] = {}  # base edge -> (node, input edge)
        for node in self.graph.nodes:
            for e in node.inputs:
                self.readers.setdefault(self.alias.get(e, e), []).append((node.name, e))
        self.producer = {n.output: n.name for n in self.graph.nodes
                         if not model.schedule.rules[n.name].aliases}
        self.axis = _vec(model.axis_row().estimate)
        self.axis_cycles = model.axis_row().latency_cycles
        words_in = sum(int(math.prod(self.graph.edges[i].shape)) for i in self.graph.inputs)
        words_out = sum(int(math.prod(self.graph.edges[o].shape)) for o in self.graph.outputs)
        self.io_words = max(words_in, words_out)

    # ---------------------------------------------------------------- costs
    def row(self, name: str, i: int) -> tuple[int, ...]:
        key = (name, i)
        if key not in self._rows:
            c = self.cands[name][i]
            self._rows[key] = _vec(self.m.row(name, c.reuse, shape=c.shape).estimate)
        return self._rows[key]

    def arr(self, edge: str, banks: int) -> tuple[int, ...]:
        key = (edge, banks)
        if key not in self._arr:
            self._arr[key] = _vec(self.m.array(edge, banks))
        return self._arr[key]

    def _edge_fix(self, edge: str, choice: Mapping[str, int]) -> tuple[int, ...]:
        """The array correction of a (base) edge: banks for its readers beyond its writer's."""
        prod = self.producer.get(edge)
        write = (max(self.cands[prod][choice[prod]].shape.write_lanes, 1) if prod is not None
                 else 1)
        read = 1
        for node, e in self.readers.get(edge, ()):
            read = max(read, self.cands[node][choice[node]].shape.read_lanes.get(e, 1))
        if read <= write:
            return (0,) * len(_RES)
        return _sub(self.arr(edge, read), self.arr(edge, write))

    def _edges_of(self, name: str) -> set[str]:
        node = self.m.nodes[name]
        out = {self.alias.get(e, e) for e in node.inputs}
        if node.output in self.producer:
            out.add(node.output)
        return out

    def total(self, choice: Mapping[str, int]) -> tuple[int, ...]:
        tot = self.axis
        for n in self.names:
            tot = _add(tot, self.row(n, choice[n]))
        if not self.m.stream:
            for e in {*self.producer, *self.graph.inputs}:
                tot = _add(tot, self._edge_fix(e, choice))
        return tot

    def delta(self, choice: dict[str, int], name: str, i: int) -> tuple[int, ...]:
        """The change of the total when ``name`` moves to candidate ``i``."""
        d = _sub(self.row(name, i), self.row(name, choice[name]))
        if self.m.stream:
            return d
        edges = self._edges_of(name)
        before = [self._edge_fix(e, choice) for e in edges]
        old, choice[name] = choice[name], i
        after = [self._edge_fix(e, choice) for e in edges]
        choice[name] = old
        for b, a in zip(before, after, strict=True):
            d = _add(d, _sub(a, b))
        return d

    def fits(self, tot: tuple[int, ...]) -> bool:
        return all(u <= b for u, b in zip(tot, self.budget, strict=True))

    def cycles(self, name: str, i: int) -> int:
        return self.cands[name][i].cycles

    def objective(self, choice: Mapping[str, int]) -> int:
        if self.m.stream:
            return max([self.io_words, *(self.cycles(n, choice[n]) for n in self.names)])
        return self.axis_cycles + sum(self.cycles(n, choice[n]) for n in self.names)

    # ---------------------------------------------------------------- stream
    def at_interval(self, t: int) -> dict[str, int] | None:
        """Each layer folded as far as interval ``t`` allows (None: a layer cannot reach it)."""
        out = {}
        for n in self.names:
            cs = self.cands[n]
            i = next((k for k, c in enumerate(cs) if c.cycles <= t), None)
            if i is None:
                return None
            out[n] = i
        return out

    def interval_levels(self) -> list[int]:
        levels = {c.cycles for cs in self.cands.values() for c in cs}
        return sorted(t for t in {self.io_words, *levels} if t >= self.io_words)

    # ---------------------------------------------------------------- local check
    def improve(self, choice: dict[str, int], limit: int | None = None) -> dict[str, int]:
        """Lower single layers' reuse while the design fits and the objective improves (and,
        with ``limit``, stop as soon as the objective is within it)."""
        tot = self.total(choice)
        changed = True
        while changed:
            changed = False
            best = self.objective(choice)
            if limit is not None and best <= limit:
                break
            for n in self.names:
                i = choice[n] + 1
                if i >= len(self.cands[n]):
                    continue
                d = self.delta(choice, n, i)
                new = _add(tot, d)
                old, choice[n] = choice[n], i
                if self.fits(new) and self.objective(choice) < best:
                    tot, changed = new, True
                    break
                choice[n] = old
        return choice


def _vec_budget(b: ResourceBudget) -> tuple[int, ...]:
    return tuple(getattr(b, k) for k in _RES)


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _sub(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x - y for x, y in zip(a, b, strict=True))


def _weight(d: tuple[int, ...], budget: tuple[int, ...]) -> float:
    w = 0.0
    for x, b in zip(d, budget, strict=True):
        if x > 0:
            w += math.inf if b == 0 else x / b
        elif b:
            w += x / b
    return w


def _greedy_parallel(s: _Search, choice: dict[str, int], limit: int | None,
                     points: list[tuple[dict[str, int], tuple[int, ...]]]) -> dict[str, int]:
    """Unfold the layer with the most cycles per budget used while the design fits."""
    import heapq

    tot = s.total(choice)
    heap: list[tuple[float, int, str]] = []
    version = dict.fromkeys(s.names, 0)

    def push(n: str) -> None:
        i = choice[n] + 1
        if i >= len(s.cands[n]):
            return
        gain = s.cycles(n, choice[n]) - s.cycles(n, i)
        w = _weight(s.delta(choice, n, i), s.budget)
        ratio = math.inf if w <= 0 else gain / w
        version[n] += 1
        heapq.heappush(heap, (-ratio, version[n], n))

    for n in s.names:
        push(n)
    done: set[str] = set()
    steps = 0
    while heap:
        if limit is not None and s.objective(choice) <= limit:
            break
        _, ver, n = heapq.heappop(heap)
        if ver != version[n] or n in done:
            continue
        i = choice[n] + 1
        new = _add(tot, s.delta(choice, n, i))
        if not s.fits(new):
            done.add(n)
            continue
        choice[n], tot = i, new
        steps += 1
        if steps % 16 == 0:
            points.append((dict(choice), tot))
        for m in {n, *(x for e in s._edges_of(n) for x in _neighbours(s, e))}:
            if m not in done:
                push(m)
    return choice


def _neighbours(s: _Search, edge: str) -> list[str]:
    out = [node for node, _ in s.readers.get(edge, ())]
    if edge in s.producer:
        out.append(s.producer[edge])
    return out


def autofold(graph: Graph, board: Board | str, *, io: str = "parallel",
             clock_mhz: float | None = None, budget: float = 1.0,
             target_fps: float | None = None, target_latency_us: float | None = None,
             fixed: Mapping[str, int] | None = None) -> FoldResult:
    """Choose every layer's reuse factor (see the module docstring).

    Args:
        graph: the frozen graph.
        board: the board whose resources are the budget (and whose clock converts cycles).
        io: ``"parallel"`` (minimise the latency) or ``"stream"`` (minimise the interval).
        clock_mhz: the clock (``None``: the board's).
        budget: the fraction of the board's resources the design may use, in (0, 1]
            (``0.8`` keeps 20 % headroom for routing).
        target_fps / target_latency_us: instead of the fastest design, the cheapest that
            reaches this throughput (inferences per second) or latency (at most one of them).
        fixed: ``{node: reuse}`` of layers the user set by hand (they keep it).

    Raises:
        ValueError: no design fits the budget, the target cannot be reached (the message names
            the bottleneck layer and the best reachable figure), or bad arguments.
    """
    t0 = time.perf_counter()
    if target_fps is not None and target_latency_us is not None:
        raise ValueError("give target_fps or target_latency_us, not both")
    for what, v in (("target_fps", target_fps), ("target_latency_us", target_latency_us)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v) or v <= 0):
            raise ValueError(f"{what} must be a positive number, got {v!r}")
    brd = load_board(board)
    bud = ResourceBudget.from_board(brd, budget)
    model = EstimateModel(graph, board=brd, clock_mhz=clock_mhz, io=io)
    clock = model.clock_mhz or brd.clock_mhz
    s = _Search(model, bud, fixed or {})
    names = s.names
    most_folded = dict.fromkeys(names, 0)
    if not s.fits(s.total(most_folded)):
        over = ResourceEstimate(**dict(zip(_RES, s.total(most_folded), strict=True)))
        raise ValueError(f"no reuse makes the design fit {bud.name} (estimate, io={io}): even "
                         f"with every layer folded as far as it goes, "
                         f"{'; '.join(over.over_budget(bud))}"
                         + ("; the layers set by hand keep their reuse" if fixed else ""))
    limit = None
    target = None
    if target_fps is not None:
        limit = math.floor(clock * 1e6 / target_fps)
        target = f"{target_fps:g} inferences/s"
    elif target_latency_us is not None:
        limit = math.floor(target_latency_us * clock)
        target = f"{target_latency_us:g} µs latency"
    if limit is not None and io == "stream" and target_latency_us is not None:
        raise ValueError("target_latency_us applies to io='parallel' (a streaming design's "
                         "interval is set with target_fps)")

    points: list[tuple[dict[str, int], tuple[int, ...]]] = []
    if model.stream:
        levels = s.interval_levels()
        lo, hi = 0, len(levels) - 1
        feasible = [i for i in range(len(levels)) if s.at_interval(levels[i]) is not None]
        lo = feasible[0]

        def ok(k: int) -> bool:
            ch = s.at_interval(levels[k])
            if ch is None:
                return False
            tot = s.total(ch)
            points.append((ch, tot))
            return s.fits(tot)

        if limit is not None:
            k = bisect.bisect_right(levels, limit) - 1
            ch = s.at_interval(levels[k]) if k >= 0 else None
            if ch is not None and s.fits(s.total(ch)):
                choice = ch
            else:
                _unreachable(s, model, clock, target or "", limit, lo, levels, ok)
        else:
            while lo < hi:
                mid = (lo + hi) // 2
                if ok(mid):
                    hi = mid
                else:
                    lo = mid + 1
            choice = s.at_interval(levels[lo]) or most_folded
            choice = s.improve(choice)
    else:
        choice = _greedy_parallel(s, dict(most_folded), limit, points)
        if limit is None:
            choice = s.improve(choice)
        elif s.objective(choice) > limit:
            _unreachable(s, model, clock, target or "", limit, 0, [], None)
    points.append((dict(choice), s.total(choice)))

    per = {n: s.cands[n][choice[n]].reuse for n in names}
    default = Counter(per.values()).most_common(1)[0][0] if per else 1
    reuse = LayerReuse({n: r for n, r in per.items() if r != default})
    reuse[DEFAULT_REUSE_KEY] = default
    report = model.report(reuse)
    if not report.total.fits(bud):  # the search's sum is the estimate's: a bug otherwise
        raise RuntimeError(f"autofold chose a design over {bud.name}: "
                           f"{report.total.over_budget(bud)}")
    bound, detail = _bounds(s, choice, bud, limit, io)
    plot = _points(points, clock, s, choice)
    return FoldResult(reuse, report, bound, detail, float(budget), target, plot,
                      time.perf_counter() - t0)


def _unreachable(s: _Search, model: EstimateModel, clock: float, target: str, limit: int,
                 lo: int, levels: list[int], ok: Any) -> None:
    """Raise the error of a target the board cannot reach."""
    if model.stream and s.io_words > limit:
        raise ValueError(f"cannot reach {target}: the AXI-Stream input/output alone takes "
                         f"{s.io_words} cycles per inference (one word per cycle), at most "
                         f"{clock * 1e6 / s.io_words:,.0f} inferences/s at {clock:g} MHz "
                         "(estimate)")
    fastest = {n: len(s.cands[n]) - 1 for n in s.names}
    if model.stream:
        slow = max(s.names, key=lambda n: s.cycles(n, fastest[n]))
        if s.cycles(slow, fastest[slow]) > limit:
            c = s.cycles(slow, fastest[slow])
            raise ValueError(f"cannot reach {target}: layer {slow} needs at least {c} cycles per "
                             f"inference even fully unrolled (at most {clock * 1e6 / c:,.0f} "
                             f"inferences/s at {clock:g} MHz, estimate)")
        hi = len(levels) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid + 1
        best = s.at_interval(levels[lo]) or dict.fromkeys(s.names, 0)
        t = s.objective(best)
        slow = max(s.names, key=lambda n: s.cycles(n, best[n]))
        raise ValueError(f"{s.budget_name} cannot "
                         f"reach {target} (estimate): the best design that fits runs "
                         f"{clock * 1e6 / t:,.0f} inferences/s (interval {t} cycles), its "
                         f"bottleneck is layer {slow} ({s.cycles(slow, best[slow])} cycles)")
    best = _greedy_parallel(s, dict.fromkeys(s.names, 0), None, [])
    lat = s.objective(best)
    slow = max(s.names, key=lambda n: s.cycles(n, best[n]))
    raise ValueError(f"{s.budget_name} cannot reach {target} (estimate): the best design that fits "
                     f"has a latency of {lat} cycles ({lat / clock:,.3f} µs, "
                     f"{clock * 1e6 / lat:,.0f} inferences/s at {clock:g} MHz); its bottleneck "
                     f"is layer {slow} ({s.cycles(slow, best[slow])} cycles)")


def _bounds(s: _Search, choice: dict[str, int], bud: ResourceBudget, limit: int | None,
            io: str) -> tuple[dict[str, str], dict[str, str]]:
    """What bound each layer's reuse, and why, in words."""
    bound: dict[str, str] = {}
    detail: dict[str, str] = {}
    obj = s.objective(choice)
    busiest = max(s.names, key=lambda n: s.cycles(n, choice[n])) if s.names else ""
    tot = s.total(choice)
    for n in s.names:
        cs, i = s.cands[n], choice[n]
        if n in s.fixed:
            bound[n], detail[n] = "manual", "set by hand"
        elif i == len(cs) - 1:
            if cs[i].shape.parallel == 0:
                bound[n] = "layer size"
                detail[n] = "no hardware to fold"
            elif cs[i].shape.parallel < reuse_span(s.m, n):
                bound[n] = "unroll limit"
                detail[n] = f"at Vivado's {MAX_UNROLL} unroll limit"
            else:
                bound[n] = "layer size"
                detail[n] = "fully parallel: the layer has no more work to unroll"
        elif limit is not None:
            bound[n], detail[n] = "target", "folded as far as the target allows"
        elif io == "stream" and s.cycles(n, i) < obj or s.cycles(n, i) == 0:
            if obj == s.io_words and s.io_words >= s.cycles(busiest, choice[busiest]):
                bound[n] = "io"
                detail[n] = (f"folded to the AXI-Stream words ({s.io_words} cycles per "
                             "inference): more parallelism gains nothing")
            else:
                bound[n] = "balance"
                detail[n] = (f"folded to the busiest process ({busiest}, {obj} cycles): more "
                             "parallelism gains nothing")
        else:
            new = _add(tot, s.delta(choice, n, i + 1))
            over = [name for name, u, b in zip(RESOURCE_NAMES, new, s.budget, strict=True)
                    if u > b]
            if over:
                bound[n] = "budget"
                detail[n] = f"one step more parallel exceeds {bud.name}: {', '.join(over)}"
            else:
                bound[n] = "balance"
                detail[n] = (f"as busy as the busiest process ({obj} cycles): unfolding it "
                             "alone gains nothing")
    return bound, detail


def _points(points: list[tuple[dict[str, int], tuple[int, ...]]], clock: float, s: _Search,
            choice: dict[str, int]) -> list[DesignPoint]:
    seen: dict[tuple[int, ...], DesignPoint] = {}
    for ch, tot in points:
        obj = s.objective(ch)
        key = (obj, *tot)
        seen[key] = DesignPoint(clock * 1e6 / obj if obj else None, tot[0], tot[2], s.fits(tot),
                                ch == choice)
    pts = list(seen.values())
    chosen = [p for p in pts if p.chosen]
    others = [p for p in pts if not p.chosen]
    if len(others) > 11:  # a few, spread over the range
        step = len(others) / 11
        others = [others[int(k * step)] for k in range(11)]
    return others + chosen[-1:]

