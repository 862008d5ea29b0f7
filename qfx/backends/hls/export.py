"""`export_hls`: a complete Vitis HLS / Vivado project for a board from a frozen graph.

One call turns a frozen :class:`~qfx.ir.graph.Graph` into::

    <out_dir>/
      firmware/, tb/, project.json, model.qfx.npz   export_firmware: C++, testbench, vectors
      build_prj.tcl      Vitis/Vivado HLS: csim, csynth, cosim, IP export of <project>_axis
      vivado_bd.tcl      Vivado block design for the board (PS, AXI DMA, the IP), bitstream
      driver.py          PYNQ driver (numpy packing; pynq imported lazily)
      report.md/.json/.png   per-layer types, parallelism, resource/latency ESTIMATE vs budget
      README.md          how to run C simulation, synthesis, the bitstream and the driver

The backend sees graphs only: :func:`qfx.export_hls` (:func:`qfx.flows.api.export_hls`) also
takes a qfx model with an example input, a ``.qfx.npz``, a training checkpoint or an ONNX file,
turns it into a graph and calls this function.

Before anything is written, the design's resources are estimated
(:func:`qfx.backends.hls.estimate.estimate_resources`) against the board's budget: with
``on_budget="error"`` an estimate over budget raises a ``ValueError`` naming what exceeds
(``"DSP 412 > 360 on ultra96v2 (estimate)"``), with ``"warn"`` the project is written and a
:class:`ResourceBudgetWarning` issued, with ``"ignore"`` nothing is said.

Atomic: everything is rendered into ONE temporary folder next to ``out_dir`` and renamed into
place at the end, so a failure anywhere leaves no directory; an existing ``out_dir`` is only
replaced with ``force=True``. Every name that reaches C++/Tcl/Python is an identifier (the IR
sanitizes module paths; the templates only receive identifiers, numbers, type spellings and
Python literals written by a checked filter).

Example:
    >>> import qfx, torch, tempfile, os
    >>> from qfx.nn import QInput, QLinear, QReLU
    >>> net = torch.nn.Sequential(QInput(8), QLinear(6, 4), QReLU(), QLinear(4, 3))
    >>> with qfx.calibration(net):
    ...     _ = net(torch.randn(64, 6))
    >>> graph = qfx.freeze(net.eval(), torch.randn(1, 6))
    >>> prj = export_hls(graph, os.path.join(tempfile.mkdtemp(), "mlp"), board="ultra96",
    ...                  project_name="mlp", test_vectors=torch.randn(4, 6))
    >>> prj.axis_top, prj.board.name, prj.report.fits
    ('mlp_axis', 'ultra96v2', True)
    >>> sorted(p.name for p in prj.root.iterdir() if p.is_file())  # doctest: +NORMALIZE_WHITESPACE
    ['README.md', 'build_prj.tcl', 'driver.py', 'model.qfx.npz', 'project.json', 'report.json',
     'report.md', 'report.png', 'vivado_bd.tcl']
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qfx.atomic import check_replaceable, staging_dir, swap_into_place
from qfx.backends.hls.autofold import AUTO, FoldResult, autofold, check_reuse_bounds
from qfx.backends.hls.boards import Board, load_board
from qfx.backends.hls.estimate import ResourceReport, estimate_resources
from qfx.backends.hls.project import MANIFEST_NAME, HLSProject
from qfx.backends.hls.report import REPORT_FILES, text_environment, write_report
from qfx.backends.hls.reuse import (
    DEFAULT_REUSE_KEY,
    LayerReuse,
    ReuseSpec,
    normalize_reuse,
    resolve_reuse,
)
from qfx.backends.hls.tcl import (
    clock_period_ns,
    hls_project_dir,
    render_block_design_tcl,
    render_build_tcl,
)
from qfx.backends.hls.writer import IO_MODES, export_firmware
from qfx.ir.graph import Graph
from qfx.ir.verify import check_identifier

__all__ = ["BUDGET_POLICIES", "DEFAULT_RANDOM_SAMPLES", "ExportOptions", "ExportedProject",
           "ResourceBudgetWarning", "check_export_options", "check_reuse_options", "export_hls",
           "random_test_vectors",
           "suggest_reuse"]

#: What ``on_budget`` accepts.
BUDGET_POLICIES = ("error", "warn", "ignore")
#: Test vectors drawn when a graph or file is exported without any.
DEFAULT_RANDOM_SAMPLES = 8
#: Block-design names (``vivado_bd.tcl``): the DMA cell and the IP cell suffix.
DMA_CELL = "axi_dma_0"
_TB_ARGS = ("inputs.txt", "outputs.txt", "expected.txt")
_EXTRA_FILES = ("build_prj.tcl", "vivado_bd.tcl", "driver.py", "README.md",
                *REPORT_FILES.values())


class ResourceBudgetWarning(UserWarning):
    """The resource estimate exceeds the board's budget (export with ``on_budget="warn"``)."""


@dataclass
class ExportedProject(HLSProject):
    """An :class:`HLSProject` written by :func:`export_hls`, with its board, clock and resource
    estimate (``report``, a :class:`~qfx.backends.hls.estimate.ResourceReport`).

    Example:
        >>> ExportedProject.__mro__[1].__name__
        'HLSProject'
    """

    board: Board | None = None
    clock_mhz: float | None = None
    report: ResourceReport | None = None

    @property
    def build_tcl(self) -> Path:
        return self.root / "build_prj.tcl"

    @property
    def block_design_tcl(self) -> Path:
        return self.root / "vivado_bd.tcl"

    @property
    def driver(self) -> Path:
        return self.root / "driver.py"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def report_files(self) -> dict[str, Path]:
        """``report.md``, ``report.json`` and ``report.png`` keyed ``md``/``json``/``png``."""
        return {k: self.root / v for k, v in REPORT_FILES.items()}


# ====================================================================== inputs
def random_test_vectors(graph: Graph, samples: int = DEFAULT_RANDOM_SAMPLES, *,
                        seed: int = 0) -> list[np.ndarray]:
    """Pseudo-random float inputs for every graph input: uniform over the input type's range
    widened by an eighth on each side (so the input cast's rounding and overflow are exercised
    too), shape ``(samples, *shape)`` each.

    Example:
        >>> from qfx.ir.graph import Edge
        >>> from qfx.fixed.fixed_type import FixedType
        >>> g = Graph(inputs=["x"], outputs=["x"])
        >>> g.add_edge(Edge("x", (3,), FixedType(8, 3)))
        >>> [v.shape for v in random_test_vectors(g, 5)]
        [(5, 3)]
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    rng = np.random.default_rng(seed)
    out = []
    for name in graph.inputs:
        e = graph.edges[name]
        span = e.type.max - e.type.min
        lo, hi = e.type.min - span / 8, e.type.max + span / 8
        out.append(rng.uniform(lo, hi, size=(samples, *e.shape)))
    return out


def _vectors(graph: Graph, test_vectors: Any) -> Any:
    if test_vectors is None:
        return random_test_vectors(graph)
    if isinstance(test_vectors, bool):
        raise ValueError("test_vectors must be arrays, a number of random samples, or None")
    if isinstance(test_vectors, int):
        return random_test_vectors(graph, test_vectors)
    return test_vectors


def suggest_reuse(graph: Graph, board: Board | str, *, start: int = 1,
                  limit: int = 1 << 16, overrides: Mapping[str, int] | None = None,
                  io: str = "parallel") -> int | None:
    """The smallest power-of-two multiple of ``start`` (up to ``limit``) whose estimate fits
    ``board``; ``None`` if none does. With ``overrides`` (``{node_name: reuse}``) those layers
    keep their factor and the suggestion is the ``"*"`` default of the others.

    Example:
        >>> suggest_reuse(Graph(), "ultra96")
        1
    """
    brd = load_board(board)
    fixed = dict(overrides or {})
    fixed.pop(DEFAULT_REUSE_KEY, None)
    reuse = max(1, int(start))
    while reuse <= limit:
        spec: ReuseSpec = {**fixed, DEFAULT_REUSE_KEY: reuse} if fixed else reuse
        if estimate_resources(graph, reuse=spec, board=brd, io=io).fits:
            return reuse
        reuse *= 2
    return None


def _budget_advice(graph: Graph, board: Board, reuse: int | LayerReuse, io: str) -> str:
    """What to change when the estimate at ``reuse`` exceeds ``board``."""
    if isinstance(reuse, int):
        hint = suggest_reuse(graph, board, start=reuse * 2, io=io)
        return (f"reuse={hint} fits (estimate)" if hint is not None
                else "no reuse factor makes it fit (estimate)")
    over = reuse.overrides
    hint = suggest_reuse(graph, board, start=reuse.default * 2, overrides=over, io=io)
    if hint is not None:
        return f"reuse={dict(over, **{DEFAULT_REUSE_KEY: hint})!r} fits (estimate)"
    named = ", ".join(f"{k}={v}" for k, v in over.items())
    return (f"no default reuse ({DEFAULT_REUSE_KEY!r}) makes it fit while {named} keep their "
            "reuse (estimate); raise those layers' reuse")


# ====================================================================== export
@dataclass(frozen=True)
class ExportOptions:
    """The checked settings of an export (:func:`check_export_options`): ``reuse`` is
    ``"auto"``, an int or a :class:`LayerReuse` (``auto_default``: its ``"*"`` was ``"auto"``:
    the layers it does not name are chosen by the search)."""

    board: Board
    clock_mhz: float
    target: Path
    reuse: int | LayerReuse | str
    auto_default: bool = False
    budget: float = 1.0
    target_fps: float | None = None
    target_latency_us: float | None = None

    @property
    def auto(self) -> bool:
        """True when the search chooses (some) layers' reuse."""
        return self.reuse == AUTO or self.auto_default


def check_reuse_options(reuse: Any, budget: Any, target_fps: Any, target_latency_us: Any
                        ) -> tuple[int | LayerReuse | str, bool]:
    """``reuse`` checked (``"auto"``, an int, or a mapping whose ``"*"`` may be ``"auto"``)
    and whether its default is chosen by the search."""
    if (isinstance(budget, bool) or not isinstance(budget, (int, float))
            or not math.isfinite(budget) or not 0 < budget <= 1):
        raise ValueError(f"budget must be a fraction of the board in (0, 1], e.g. 0.8, got "
                         f"{budget!r}")
    for what, v in (("target_fps", target_fps), ("target_latency_us", target_latency_us)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v) or v <= 0):
            raise ValueError(f"{what} must be a positive number, got {v!r}")
    if target_fps is not None and target_latency_us is not None:
        raise ValueError("give target_fps or target_latency_us, not both")
    if isinstance(reuse, str):
        if reuse != AUTO:
            raise ValueError(f"reuse must be {AUTO!r}, an integer >= 1 or a mapping "
                             f"{{node_name: integer}}, got {reuse!r}")
        return AUTO, True
    auto_default = isinstance(reuse, Mapping) and reuse.get(DEFAULT_REUSE_KEY) == AUTO
    if auto_default:
        reuse = {k: v for k, v in reuse.items() if k != DEFAULT_REUSE_KEY}
    checked = normalize_reuse(reuse)
    if not auto_default and (target_fps is not None or target_latency_us is not None):
        raise ValueError("target_fps / target_latency_us choose the reuse: use reuse='auto' "
                         "(--reuse auto), not a reuse set by hand")
    return checked, auto_default


def check_export_options(out_dir: str | os.PathLike[str] | None, *,
                         board: Board | str = "ultra96", io: str = "parallel",
                         reuse: ReuseSpec = 1, clock_mhz: float | None = None,
                         force: bool = False, project_name: str = "qfx_model",
                         on_budget: str = "error", budget: float = 1.0,
                         target_fps: float | None = None,
                         target_latency_us: float | None = None) -> ExportOptions:
    """Check the settings of :func:`export_hls` without a graph (so that a caller can refuse
    bad arguments before it freezes or loads a model): the board, the clock, the project name
    and the target folder.

    Example:
        >>> opts = check_export_options("prj", board="pynq-z2")
        >>> opts.board.name, opts.clock_mhz, opts.reuse
        ('pynq-z2', 100.0, 1)
        >>> check_export_options(None)
        Traceback (most recent call last):
        ...
        ValueError: out_dir is required: the folder to write the project into
    """
    if on_budget not in BUDGET_POLICIES:
        raise ValueError(f"on_budget must be one of {', '.join(BUDGET_POLICIES)}, got "
                         f"{on_budget!r}")
    if io not in IO_MODES:
        raise ValueError(f"io={io!r} is not an architecture the HLS writer knows; use one of "
                         f"{', '.join(repr(m) for m in IO_MODES)}")
    checked_reuse, auto_default = check_reuse_options(reuse, budget, target_fps,
                                                      target_latency_us)
    if out_dir is None:
        raise ValueError("out_dir is required: the folder to write the project into")
    check_identifier(project_name, "project_name")
    brd = load_board(board)
    clock = brd.clock_mhz if clock_mhz is None else clock_mhz
    clock_period_ns(clock)  # validates (0, 1000] MHz
    clock = float(clock)
    target = Path(out_dir).expanduser().absolute()
    check_replaceable(target, force=force)  # only a folder qfx wrote, or an empty one
    return ExportOptions(brd, clock, target, checked_reuse, auto_default and checked_reuse != AUTO,
                         float(budget), target_fps, target_latency_us)


def export_hls(graph: Graph, out_dir: str | os.PathLike[str] | None = None, *,
               board: Board | str = "ultra96", io: str = "parallel",
               reuse: ReuseSpec | str = 1, clock_mhz: float | None = None,
               force: bool = False, test_vectors: Any = None,
               project_name: str = "qfx_model", on_budget: str = "error",
               budget: float = 1.0, target_fps: float | None = None,
               target_latency_us: float | None = None) -> ExportedProject:
    """Export a complete HLS project of a frozen graph for ``board`` (see the module docstring
    for the files). To export a qfx model, a checkpoint or a file, use :func:`qfx.export_hls`.

    Args:
        graph: a frozen :class:`Graph`.
        out_dir: the project folder to create.
        board: board name/alias, board YAML path, or :class:`Board` (unknown names: an error
            listing the known boards).
        io: ``"parallel"`` (arrays between layers that run one after another: small MLPs and
            CNNs) or ``"stream"`` (a DATAFLOW pipeline with pixel FIFOs and line buffers: CNNs;
            the layers overlap). Both are bit-identical; the estimate models the one chosen.
        reuse: multiplications per multiplier (>= 1): fewer multipliers, more latency. An int
            for every layer, or a mapping ``{node_name: reuse}`` with an optional ``"*"``
            default (1 when absent), e.g. ``{"fc": 1, "*": 32}``: each layer is folded and
            estimated with its own factor (unknown node names: an error listing the valid
            ones). The project's ``reuse`` is the default; ``project.json`` and the report
            list each layer's factor. ``"auto"`` (:mod:`qfx.backends.hls.autofold`): every
            layer's factor is chosen so that the design fits ``budget`` of the board at the
            best throughput (``io="stream"``: the smallest interval, the layers balanced;
            ``io="parallel"``: the smallest latency); ``{"fc": 1, "*": "auto"}`` keeps fc's
            factor and chooses the others'. Numeric factors above what any layer can use are
            refused.
        clock_mhz: target clock (``None``: the board's default).
        force: replace an existing ``out_dir``.
        test_vectors: float inputs ``(samples, *input_shape)`` (a list for several inputs), or
            an int N for N pseudo-random samples (:func:`random_test_vectors`); ``None``:
            :data:`DEFAULT_RANDOM_SAMPLES` random samples. ``tb/expected.txt`` holds the exact
            executor's outputs for them.
        project_name: C++ identifier: the top function and file stem (``<name>_axis`` is the
            AXI-Stream top synthesized for the board).
        on_budget: ``"error"`` (raise when the estimate exceeds the board), ``"warn"`` (write
            the project and warn) or ``"ignore"``.
        budget: with ``reuse="auto"``, the fraction of the board's resources the design may
            use, in (0, 1] (e.g. ``0.8``: 20 % headroom).
        target_fps / target_latency_us: with ``reuse="auto"``, the cheapest design that
            reaches this throughput (inferences/s) or latency (µs, ``io="parallel"``) instead
            of the fastest; a ``ValueError`` names the bottleneck layer and the best
            reachable figure when the board cannot.

    Returns:
        An :class:`ExportedProject` (an :class:`HLSProject` with ``board``, ``clock_mhz`` and
        the resource estimate ``report``).

    Raises:
        ValueError: bad arguments, an unknown board, a graph the writer cannot export, or an
            estimate over budget with ``on_budget="error"``.
        FileExistsError: ``out_dir`` exists and ``force`` is False.
    """
    opts = check_export_options(out_dir, board=board, io=io, reuse=reuse, clock_mhz=clock_mhz,
                                force=force, project_name=project_name, on_budget=on_budget,
                                budget=budget, target_fps=target_fps,
                                target_latency_us=target_latency_us)
    if not isinstance(graph, Graph):
        raise ValueError(f"the HLS backend exports a frozen Graph, not a "
                         f"{type(graph).__name__}; qfx.export_hls also takes a qfx model with "
                         "an example input, or a path")
    brd, clock, target = opts.board, opts.clock_mhz, opts.target
    fold: FoldResult | None = None
    if opts.auto:
        fixed = {} if opts.reuse == AUTO else dict(opts.reuse)
        fixed.pop(DEFAULT_REUSE_KEY, None)
        resolve_reuse(graph, {**fixed, DEFAULT_REUSE_KEY: 1})  # unknown node names
        check_reuse_bounds(graph, fixed, io)
        fold = autofold(graph, brd, io=io, clock_mhz=clock, budget=opts.budget,
                        target_fps=opts.target_fps, target_latency_us=opts.target_latency_us,
                        fixed=fixed)
        reuse: int | LayerReuse = fold.reuse
        report = fold.report
    else:
        assert not isinstance(opts.reuse, str)
        reuse = opts.reuse
        resolve_reuse(graph, reuse)  # unknown node names: an error listing the valid ones
        check_reuse_bounds(graph, reuse, io)
        report = estimate_resources(graph, reuse=reuse, board=brd, clock_mhz=clock, io=io)
    over = report.over_budget()
    budget_msg = ""
    if over and on_budget != "ignore":
        advice = _budget_advice(graph, brd, reuse, io)
        budget_msg = (f"the design does not fit {brd.name} ({brd.part}): {'; '.join(over)}; "
                      f"{advice}")
        if on_budget == "error":
            raise ValueError(f"{budget_msg}; pass on_budget='warn' (--on-budget warn) to export "
                             "anyway")
    vectors = _vectors(graph, test_vectors)

    with staging_dir(target, "export") as stage:
        work = stage / "project"
        fw = export_firmware(graph, work, project_name=project_name, io=io, reuse=reuse,
                             test_vectors=vectors)
        _write_extras(fw, brd, clock, report, fold)
        swap_into_place(work, target)
    if budget_msg:
        warnings.warn(f"{budget_msg}; exported anyway (on_budget='warn')",
                      ResourceBudgetWarning, stacklevel=2)
    loaded = HLSProject.load(target)
    return ExportedProject(**{f.name: getattr(loaded, f.name)
                              for f in dataclasses.fields(HLSProject)},
                           board=brd, clock_mhz=clock, report=report)


def _write_extras(prj: HLSProject, board: Board, clock: float, report: ResourceReport,
                  fold: FoldResult | None = None) -> None:
    """build_prj.tcl, vivado_bd.tcl, driver.py, report.*, README.md and the manifest."""
    root = prj.root
    rel = prj.project_name
    tb_sources = [f"tb/tb_{rel}.cpp"]
    if prj.input_vectors is not None and prj.expected_vectors is not None:
        tb_sources += ["tb/inputs.txt", "tb/expected.txt"]
    texts: dict[str, str] = {
        "build_prj.tcl": render_build_tcl(
            prj.project_name, prj.axis_top, board, clock,
            sources=[f"firmware/{rel}_axis.cpp", f"firmware/{rel}.cpp"],
            tb_sources=tb_sources, tb_args=list(_TB_ARGS), include_dirs=["firmware"],
            cflags=["-std=c++14"], tb_cflags=["-std=c++14", "-DQFX_TB_AXIS"],
            csim=prj.input_vectors is not None),
        "vivado_bd.tcl": render_block_design_tcl(
            prj.project_name, prj.axis_top, board, clock, axis_in_width=prj.axis_width,
            axis_out_width=prj.axis_width),
    }
    env = text_environment()
    texts["driver.py"] = env.get_template("driver.py.j2").render(_driver_context(prj))
    texts["README.md"] = env.get_template("README.md.j2").render(
        _readme_context(prj, board, clock, report))
    for name, text in texts.items():
        (root / name).write_text(text, encoding="utf-8")
    written = write_report(report, root, prj, fold=fold)
    # the manifest lists every file of the project, plus what it was exported for
    extra = {*(root / n for n in _EXTRA_FILES), *written.values()}
    manifest = dataclasses.replace(
        prj, files=tuple(sorted({*prj.files, *extra}))).manifest()
    manifest["reuse_per_layer"] = report.layer_reuse
    manifest["export"] = {
        "board": board.name, "part": board.part, "clock_mhz": clock, "reuse": prj.reuse,
        "io": prj.io, "hls_top": prj.axis_top, "fits_estimate": report.fits,
        "estimate": {k.lower(): v for k, v in report.total.as_dict().items()},
        "latency_cycles_estimate": report.latency_cycles,
    }
    if fold is not None:
        manifest["export"]["reuse_auto"] = {"budget": fold.budget_fraction,
                                            "target": fold.target}
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _port_context(p: Any) -> dict[str, Any]:
    t = p.type
    return {"name": p.name, "edge": p.edge, "shape": tuple(int(s) for s in p.shape),
            "cpp": t.cpp(), "width": t.width, "int_bits": t.int_bits, "signed": t.signed,
            "rounding": t.rounding, "overflow": t.overflow, "sat_bits": t.sat_bits}


def _driver_context(prj: HLSProject) -> dict[str, Any]:
    return {
        "project": prj.project_name, "bitfile": f"{prj.project_name}.bit",
        "ip_name": f"{prj.axis_top}_0", "dma_name": DMA_CELL, "axis_width": prj.axis_width,
        "io": prj.io, "inputs": [_port_context(p) for p in prj.inputs],
        "outputs": [_port_context(p) for p in prj.outputs],
    }


def _readme_context(prj: HLSProject, board: Board, clock: float,
                    report: ResourceReport) -> dict[str, Any]:
    t = report.total
    budget = report.budget.as_dict() if report.budget is not None else {}
    used = t.as_dict()
    parts = [f"{k} {used[k]:,} of {budget[k]:,}" for k in ("DSP", "LUT", "FF", "BRAM18K")]
    line = (f"Estimated: {', '.join(parts)}; latency {report.latency_cycles:,} cycles "
            f"({report.latency_us:.3f} µs at {clock:g} MHz); "
            + ("fits the board (estimate)." if report.fits
               else "OVER BUDGET (estimate): " + "; ".join(report.over_budget()) + "."))
    samples = 0
    if prj.input_vectors is not None:
        from qfx.backends.hls.layout import read_vectors

        samples = int(read_vectors(prj.input_vectors).shape[0])
    first = prj.inputs[0]
    return {
        "project": prj.project_name, "top": prj.top, "axis_top": prj.axis_top,
        "axis_width": prj.axis_width, "board": board, "clock_mhz": clock, "io": prj.io,
        "reuse": report.reuse, "model": str(prj.graph.meta.get("model", "graph")),
        "have_vectors": prj.input_vectors is not None, "samples": samples,
        "estimate_line": line, "hls_project": hls_project_dir(prj.project_name),
        "input_shape": ", ".join(str(s) for s in first.shape), "input_type": first.type.cpp(),
    }
