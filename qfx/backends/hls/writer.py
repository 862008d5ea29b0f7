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

Parallelism: ``reuse`` (multiplications per multiplier) folds every layer
(:mod:`qfx.backends.hls.reuse`: unroll factors, never beyond Vivado's 4096); an int applies to
the whole model, a mapping ``{node_name: reuse, "*": default}`` gives each layer its own factor.
Reuse only changes unroll factors (pragmas), never the arithmetic.

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

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from qfx.atomic import check_replaceable, staging_dir, swap_into_place
from qfx.backends.hls.layout import write_vectors
from qfx.backends.hls.plan import HLSPlan, build_plan
from qfx.backends.hls.project import MANIFEST_NAME, MODEL_NAME, HLSProject
from qfx.backends.hls.reuse import (
    LayerReuse,
    ReuseSpec,
    normalize_reuse,
    resolve_reuse,
)
from qfx.backends.hls.rules import SUPPORTED_OPS
from qfx.ir.executor import run_graph
from qfx.ir.graph import Graph
from qfx.ir.serialize import save_graph
from qfx.ir.verify import IDENTIFIER_RE, check_identifier, verify

# the reuse names are re-exported: qfx.backends.hls.export and qfx.flows import them from here
__all__ = ["IDENTIFIER_RE", "IO_MODES", "SUPPORTED_OPS", "export_firmware", "templates_dir"]

#: The two architectures the writer renders.
IO_MODES = ("parallel", "stream")
_STATIC_FIRMWARE = ("qfx_layers.h", "qfx_axi_sdata.h")


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


# ====================================================================== checks
def _validate(graph: Graph) -> None:
    """Refuse anything the firmware could not compute bit for bit like the executor: the IR's
    own proof (:func:`qfx.ir.verify`), then the ops this backend has layers for."""
    verify(graph)
    for node in graph.nodes:
        if node.op not in SUPPORTED_OPS:
            raise ValueError(f"node {node.name!r}: op {node.op!r} has no HLS layer; supported: "
                             f"{', '.join(SUPPORTED_OPS)}")


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
    check_identifier(project_name, "project_name")
    if io not in IO_MODES:
        raise ValueError(f"io={io!r} is not an architecture the firmware writer knows; use one "
                         f"of {', '.join(IO_MODES)}")
    reuse = normalize_reuse(reuse)
    _validate(graph)
    resolve_reuse(graph, reuse)  # unknown node names: refused before anything is written
    target = Path(out_dir).expanduser().absolute()
    check_replaceable(target, force=force)  # only a folder qfx wrote, or an empty one

    plan = build_plan(graph, project_name, reuse, axis_width, io)
    vectors = _vectors(graph, test_vectors) if test_vectors is not None else None
    files = _render(plan, vectors is not None)

    with staging_dir(target) as stage:
        work = stage / "project"
        _write_tree(_project(work, plan, graph, io, files, vectors is not None), files, vectors,
                    plan.schedule.per_node)
        swap_into_place(work, target)
    return _project(target, plan, graph, io, files, vectors is not None)


def _project(root: Path, plan: HLSPlan, graph: Graph, io: str, files: dict[str, str],
             have_vectors: bool) -> HLSProject:
    tb = root / "tb"
    rel = [*files, MANIFEST_NAME, MODEL_NAME]
    if have_vectors:
        rel += ["tb/inputs.txt", "tb/expected.txt"]
    reuse = plan.schedule.reuse
    return HLSProject(
        root=root, project_name=plan.project, top=plan.top, axis_top=plan.axis_top,
        namespace=plan.ns, io=io,
        reuse=reuse.default if isinstance(reuse, LayerReuse) else int(reuse),
        axis_width=plan.axis_width,
        graph=graph, inputs=plan.inputs, outputs=plan.outputs,
        files=tuple(sorted(root / r for r in rel)),
        input_vectors=tb / "inputs.txt" if have_vectors else None,
        expected_vectors=tb / "expected.txt" if have_vectors else None,
    )


def _render(plan: HLSPlan, have_vectors: bool) -> dict[str, str]:
    """Relative path -> file text, for every template-generated and static file."""
    root = templates_dir()
    env = _environment(root)
    ctx = dict(plan.context(), have_vectors=have_vectors)
    project = ctx["project"]
    out: dict[str, str] = {}
    stream = ctx["io"] == "stream"
    for name in (*_STATIC_FIRMWARE, *(("qfx_stream.h",) if stream else ())):
        out[f"firmware/{name}"] = (root / "firmware" / name).read_text(encoding="utf-8")
    out["firmware/parameters.h"] = env.get_template("firmware/parameters.h.j2").render(ctx)
    for p in ctx["params"]:
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
