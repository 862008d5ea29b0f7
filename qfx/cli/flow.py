"""Subcommands on trained or frozen models and flows: ``qfx freeze``, ``qfx info``,
``qfx flow run`` and ``qfx flow list``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _freeze(args: argparse.Namespace) -> int:
    from qfx.atomic import check_replaceable_file
    from qfx.flows.loading import load_frozen
    from qfx.ir.serialize import save_graph

    out = Path(args.output) if args.output else Path(args.model).with_suffix(".qfx.npz")
    check_replaceable_file(out, force=args.force)  # only a frozen model qfx wrote
    graph = load_frozen(args.model, data_root=args.data_root,
                        fold_thresholds=args.fold_thresholds)
    save_graph(graph, out)
    print(graph.summary())
    print(f"frozen model written to {out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from qfx.flows.loading import load_frozen

    graph = load_frozen(args.model, data_root=args.data_root)
    print(graph.summary())
    return 0


def _flow_path(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    from qfx.package_data import resource_dir

    shipped = resource_dir("flows")
    for candidate in (shipped / name, shipped / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in shipped.glob("*.yaml")))
    raise FileNotFoundError(f"no flow file {name!r}; shipped flows: {known}")


def _flow_run(args: argparse.Namespace) -> int:
    from qfx.flows.flow import run_flow

    result = run_flow(_flow_path(args.flow), out_dir=args.out, junit=args.junit,
                      skip=tuple(args.skip or ()), resume=args.resume,
                      progress=not args.no_progress, epochs=args.epochs,
                      data_root=args.data_root)
    for c in result.criteria:
        print(f"  {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.message}")
    print(f"report: {result.report}" + (f"  junit: {result.junit}" if result.junit else ""))
    if result.ok:
        print(f"flow {result.name}: PASS")
        return 0
    print(f"flow {result.name}: FAIL: {result.reason}")
    return 1


def _flow_list(args: argparse.Namespace) -> int:
    import yaml

    from qfx.package_data import resource_dir

    for path in sorted(resource_dir("flows").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        lines = str(doc.get("description", "")).strip().splitlines()
        print(f"{path.stem:28s} {lines[0] if lines else ''}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``freeze``, ``info`` and ``flow`` to the ``qfx`` command line."""
    p = subparsers.add_parser("freeze", help="freeze a training checkpoint into an exact "
                              "integer graph (.qfx.npz)")
    p.add_argument("model", help="checkpoint.npz written by `qfx train` (with its .json)")
    p.add_argument("-o", "--output", help="output file (default: MODEL with .qfx.npz)")
    p.add_argument("--data-root", help="dataset folder, if it moved since training")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--fold-thresholds", action="store_true",
                   help="fold each BatchNorm + QReLU/QHardTanh into one multithreshold node "
                        "(integer comparisons, no multiplier; the same outputs)")
    p.set_defaults(func=_freeze)
    p = subparsers.add_parser("info", help="print a model's layers and fixed-point formats")
    p.add_argument("model", help="a frozen .qfx.npz or a training checkpoint")
    p.add_argument("--data-root", help="dataset folder, if it moved since training")
    p.set_defaults(func=_info)
    flow = subparsers.add_parser("flow", help="run declarative flows (train -> freeze -> "
                                 "export -> csim -> report)")
    fsub = flow.add_subparsers(dest="flow_command", metavar="FLOW_COMMAND")
    r = fsub.add_parser("run", help="run a flow YAML; exit 0 when every criterion passes")
    r.add_argument("flow", help="flow YAML file, or the name of a shipped flow")
    r.add_argument("--out", help="output folder (default: the flow's out_dir or runs/NAME)")
    r.add_argument("--junit", help="also write JUnit XML here (for CI)")
    r.add_argument("--skip", nargs="+", metavar="STAGE", help="stages not to run")
    r.add_argument("--resume", action="store_true",
                   help="reuse the training checkpoint in the output folder")
    r.add_argument("--epochs", type=int, help="override the training epochs")
    r.add_argument("--data-root", help="dataset folder (e.g. for CIFAR-10)")
    r.add_argument("--no-progress", action="store_true", help="no progress output")
    r.set_defaults(func=_flow_run)
    ls = fsub.add_parser("list", help="list the flows shipped with qfx")
    ls.set_defaults(func=_flow_list)
    flow.set_defaults(func=lambda a: (flow.print_help(), 2)[1])
