"""``qfx export``: a frozen model, training checkpoint or ONNX model -> a complete HLS project.

::

    qfx export MODEL --board ultra96 -o DIR [--clock MHZ] [--io parallel|stream]
                     [--reuse auto|N] [--reuse-layer NODE=N ...] [--budget F]
                     [--target-fps F | --target-latency-us US] [--force] [--samples N]
                     [--on-budget error|warn|ignore] [--name NAME]

MODEL is a frozen ``.qfx.npz`` (``qfx freeze``), a ``qfx train`` checkpoint (frozen on the
fly) or a QONNX/ONNX model (``.onnx``, imported as ``qfx import`` does). Test vectors for the
testbench: the first N samples of the checkpoint's held-out split, or, for a frozen or ONNX
file, N pseudo-random inputs over the input type's range. The command prints
the resource estimate; errors are one line on stderr with exit status 2 (``qfx.cli``).

``--reuse auto`` (the default) chooses every layer's reuse factor so that the design fits the
board (``--budget 0.8``: 80 % of it) at the best throughput, or, with ``--target-fps`` /
``--target-latency-us``, the cheapest design that reaches the target; the report says what it
chose and what bound each layer. ``--reuse N`` folds every layer by N; ``--reuse-layer
NODE=N`` (repeatable) gives the IR node NODE its own factor, ``--reuse`` staying the default
of the others: ``--reuse 32 --reuse-layer fc=1`` is ``export_hls(..., reuse={"fc": 1, "*":
32})``; with ``--reuse auto`` the layers ``--reuse-layer`` names keep their factor and the
others are chosen. An unknown NODE is an error listing the model's node names.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["parse_reuse", "parse_reuse_layers", "register", "run_export_command"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to an ``argparse`` subparsers object.

    Example:
        >>> parser = argparse.ArgumentParser(prog="qfx")
        >>> _ = register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["export", "m.qfx.npz", "-o", "out", "--reuse", "4"])
        >>> args.board, args.reuse, args.on_budget, args.io
        ('ultra96', '4', 'error', 'parallel')
        >>> parser.parse_args(["export", "m.qfx.npz", "-o", "out"]).reuse
        'auto'
        >>> parser.parse_args(["export", "m.qfx.npz", "-o", "out", "--reuse-layer", "fc=1",
        ...                    "--reuse-layer", "conv_0=64"]).reuse_layer
        ['fc=1', 'conv_0=64']
    """
    p = subparsers.add_parser(
        "export", help="export a frozen model or checkpoint as a Vitis HLS / Vivado project",
        description="Write a complete HLS project for a board: firmware, testbench and vectors, "
                    "build_prj.tcl, vivado_bd.tcl, a PYNQ driver and a resource/latency "
                    "estimate (report.md/.json/.png).")
    p.add_argument("model", metavar="MODEL",
                   help="a frozen .qfx.npz (qfx freeze), a qfx train checkpoint.npz or a "
                        "QONNX/ONNX model (.onnx)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="project folder to create")
    p.add_argument("--board", default="ultra96",
                   help="board name, alias or board YAML file (default: ultra96; see qfx boards)")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="clock in MHz (default: the board's)")
    p.add_argument("--io", choices=("parallel", "stream"), default="parallel",
                   help="architecture: parallel (arrays, layers one after another; default) or "
                        "stream (DATAFLOW: pixel FIFOs and line buffers, the layers overlap)")
    p.add_argument("--reuse", default="auto", metavar="auto|N",
                   help="reuse factor: multiplications per multiplier; auto (default): chosen "
                        "per layer to fit the board at the best throughput; N: every layer "
                        "(the default of the layers --reuse-layer does not name)")
    p.add_argument("--budget", type=float, default=1.0, metavar="F",
                   help="with --reuse auto: the fraction of the board's resources the design "
                        "may use (default: 1.0; e.g. 0.8 keeps 20%% headroom)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-fps", type=float, default=None, metavar="F",
                        help="with --reuse auto: the cheapest design that reaches F "
                             "inferences/s (an error names the bottleneck when it cannot)")
    target.add_argument("--target-latency-us", type=float, default=None, metavar="US",
                        help="with --reuse auto and --io parallel: the cheapest design whose "
                             "latency is at most US microseconds")
    p.add_argument("--reuse-layer", action="append", default=None, metavar="NODE=N",
                   help="reuse factor N for the IR node NODE only (repeatable), e.g. "
                        "--reuse 32 --reuse-layer fc=1")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="test vectors for the testbench (default: 8; a checkpoint's come from "
                        "its held-out split)")
    p.add_argument("--on-budget", choices=("error", "warn", "ignore"), default="error",
                   help="when the estimate exceeds the board: fail (default), warn, or ignore")
    p.add_argument("--name", default="qfx_model",
                   help="project name: a C++ identifier (default: qfx_model)")
    p.add_argument("--data-root", help="dataset folder of a checkpoint, if it moved")
    p.add_argument("--force", action="store_true", help="replace an existing project folder")
    p.add_argument("--format", choices=("hls", "onnx", "qonnx"), default="hls",
                   help="hls: an HLS project (default); onnx: float64 standard-ops ONNX, exact "
                        "in onnxruntime; qonnx: QONNX Quant nodes for FINN/hls4ml (-o is a file)")
    p.add_argument("--backend", choices=("vitis", "hls4ml"), default="vitis",
                   help="for --format hls: qfx's own templates (default) or an hls4ml project "
                        "with every precision set exactly, compiled and checked bit for bit")
    p.set_defaults(func=run_export_command)
    return p


def parse_reuse(value: str) -> int | str:
    """``--reuse``: ``"auto"`` or an integer >= 1.

    Example:
        >>> parse_reuse("auto"), parse_reuse("32")
        ('auto', 32)
    """
    if value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"--reuse expects auto or an integer >= 1, got {value!r}") from None
    if n < 1:
        raise ValueError(f"--reuse must be >= 1, got {n}")
    return n


def parse_reuse_layers(items: list[str] | None, default: int | str = 1
                       ) -> int | str | dict[str, int | str]:
    """``--reuse`` and the ``--reuse-layer NODE=N`` items -> the ``reuse`` of ``export_hls``:
    the default itself without items, else ``{NODE: N, ..., "*": default}`` (``"auto"``: the
    layers not named are chosen by the search).

    Example:
        >>> parse_reuse_layers(None, 8), parse_reuse_layers(["fc=1", "conv_0=64"], 32)
        (8, {'fc': 1, 'conv_0': 64, '*': 32})
        >>> parse_reuse_layers(["fc=1"], "auto")
        {'fc': 1, '*': 'auto'}
    """
    if not items:
        return default
    out: dict[str, int | str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"--reuse-layer expects NODE=N (an IR node name and an integer), "
                             f"got {item!r}")
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"--reuse-layer {item}: {value!r} is not an integer") from None
        if n < 1:
            raise ValueError(f"--reuse-layer {item}: the reuse factor must be >= 1")
        if name in out:
            raise ValueError(f"--reuse-layer names {name!r} twice")
        if name == "*":
            raise ValueError("--reuse-layer '*=N': set the default with --reuse N")
        out[name] = n
    out["*"] = default
    return out


def run_export_command(args: argparse.Namespace) -> int:
    """Handler of ``qfx export``: export, print the estimate, return 0.

    Errors are raised as ``ValueError`` / ``FileExistsError`` / ``FileNotFoundError``, which
    ``qfx.cli`` prints as one line with exit status 2 (bad input).
    """
    from qfx.atomic import check_replaceable, check_replaceable_file
    from qfx.backends.hls.export import (
        DEFAULT_RANDOM_SAMPLES,
        ResourceBudgetWarning,
        export_hls,
    )
    from qfx.flows.loading import checkpoint_inputs, load_frozen

    if args.samples is not None and args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    base = parse_reuse(str(args.reuse))
    reuse = parse_reuse_layers(getattr(args, "reuse_layer", None), base)
    target_fps = getattr(args, "target_fps", None)
    target_us = getattr(args, "target_latency_us", None)
    if base != "auto" and (target_fps is not None or target_us is not None):
        raise ValueError("--target-fps / --target-latency-us choose the reuse: drop --reuse N "
                         "(--reuse auto is the default)")
    out = Path(args.output)
    if args.format in ("onnx", "qonnx"):
        check_replaceable_file(out, force=args.force, kind="onnx")
    else:  # only a folder qfx wrote (or an empty one) is replaced, even with --force
        check_replaceable(out, force=args.force)
    path = Path(args.model)
    graph = load_frozen(path, data_root=args.data_root)
    if args.format in ("onnx", "qonnx"):
        from qfx.flows.interop import export_graph_file

        written = export_graph_file(graph, out, fmt=args.format)
        print(f"{args.format.upper()} model written to {written}")
        return 0
    if args.backend == "hls4ml":
        from qfx.flows.interop import export_hls4ml_file

        # built beside `out` and swapped in when complete: an old project survives a failure
        report = export_hls4ml_file(graph, out)
        print(report.summary())
        return 0 if report.bit_exact else 1
    samples = args.samples or DEFAULT_RANDOM_SAMPLES
    vectors: Any = checkpoint_inputs(path, samples, args.data_root)
    if vectors is None:
        vectors = samples
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prj = export_hls(graph, out, board=args.board, io=args.io, reuse=reuse,
                         clock_mhz=args.clock, force=args.force, test_vectors=vectors,
                         project_name=args.name, on_budget=args.on_budget,
                         budget=getattr(args, "budget", 1.0), target_fps=target_fps,
                         target_latency_us=target_us)
    for w in caught:
        if issubclass(w.category, ResourceBudgetWarning):
            print(f"qfx export: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    assert prj.report is not None
    print(prj.report.summary())
    if prj.report.board is not None and base == "auto":
        print(f"reuse auto: {prj.report.reuse} (chosen per layer to fit the board; see "
              "report.md)")
    print(f"HLS project for {prj.report.board.name if prj.report.board else '-'} written to "
          f"{prj.root} (report.md, build_prj.tcl, vivado_bd.tcl, driver.py)")
    return 0
