"""``qfx csim PROJECT_DIR``: C-simulate an exported HLS project and prove it bit-exact.

Exit status: 0 when every output bit equals the software model, 1 on a mismatch (the summary
names the first diverging node), 2 on a usage error, a compile error or a failed simulation (one
line on stderr, no traceback; the main ``qfx --debug`` shows it). By default both arithmetic
paths of the firmware are proven (``--arith both``): the native-integer C-sim path and the
ap_fixed code that synthesis compiles (``-DQFX_AP_ARITH``).

Example:
    >>> parser = argparse.ArgumentParser(prog="qfx")
    >>> _ = register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["csim", "prj", "--samples", "100", "--jobs", "2"])
    >>> args.func is run_csim_command, args.samples, args.jobs, args.opt, args.arith
    (True, 100, 2, '3', 'both')
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qfx.atomic import atomic_write_text

__all__ = ["EXIT_OK", "EXIT_MISMATCH", "EXIT_ERROR", "load_inputs", "main", "register",
           "run_csim_command"]

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_ERROR = 2
EXIT_TOOL = 3


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``csim`` subcommand; its handler is ``args.func(args) -> exit code``.

    Example:
        >>> parser = argparse.ArgumentParser(prog="qfx")
        >>> sub = parser.add_subparsers(dest="command")
        >>> register(sub).prog
        'qfx csim'
    """
    p = subparsers.add_parser(
        "csim", help="C-simulate an exported HLS project and compare its bits with the model",
        description="Compile the exported firmware and testbench unchanged with g++ and the "
                    "ap_types headers (cached by content hash), run them on test vectors and "
                    "compare the raw output bits with the frozen software model. Exit status: "
                    "0 bit-exact, 1 mismatch (the first diverging node is named), 2 error.",
    )
    p.add_argument("project", type=Path, metavar="PROJECT_DIR",
                   help="folder written by the HLS export (with project.json)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--inputs", type=Path, metavar="FILE.npy",
                     help="float model inputs, shape (samples, *input_shape); a .npz with one "
                          "array per graph input (by name, else in order) for several inputs")
    src.add_argument("--samples", type=int, metavar="N",
                     help="random inputs: N(0,1), every other sample x16 to force overflow "
                          "(default: the project's tb/inputs.txt)")
    p.add_argument("--seed", type=int, default=0, help="seed of --samples (default 0)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="parallel processes (default: the usable CPU cores)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="seconds allowed for each compile and for the run (default 600)")
    p.add_argument("--opt", default="3", choices=("0", "1", "2", "3", "s"),
                   help="g++ optimisation level (default 3: -O3)")
    p.add_argument("--arith", default="both", choices=("native", "synth", "both"),
                   help="which firmware arithmetic to prove: native (the native-integer C-sim "
                        "path), synth (-DQFX_AP_ARITH: the ap_fixed code that Vitis "
                        "synthesizes) or both (default)")
    p.add_argument("--synth-samples", type=int, metavar="N",
                   help="with --arith both: prove the synthesis arithmetic on only the first N "
                        "samples (default: all)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="build cache (default $QFX_CACHE_DIR or ~/.cache/qfx/build)")
    p.add_argument("--no-trace", action="store_true",
                   help="on a mismatch, do not rebuild with the per-node trace")
    p.add_argument("--json", type=Path, metavar="OUT",
                   help="also write the report (summary, timings, first mismatches) as JSON")
    p.add_argument("--progress", action="store_true", help="print the stages to stderr")
    p.set_defaults(func=run_csim_command)
    return p


def load_inputs(path: str | os.PathLike[str], graph_inputs: Sequence[str]) -> Any:
    """Float inputs from a ``.npy`` (one graph input) or ``.npz`` (one array per graph input,
    by name when the names match, else in file order); never unpickles.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(p, np.zeros((2, 3)))
        >>> load_inputs(p, ["x"]).shape
        (2, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no inputs file {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:  # object arrays would need pickle
        raise ValueError(f"{path}: cannot load without pickle ({err})") from None
    except OSError as err:
        raise ValueError(f"{path} is not a .npy/.npz file ({err})") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        names = list(data.files)
        if set(graph_inputs) <= set(names):
            arrays = [data[n] for n in graph_inputs]
        else:
            arrays = [data[n] for n in names]
    return arrays[0] if len(arrays) == 1 else arrays


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    atomic_write_text(path.expanduser(), json.dumps(doc, indent=2) + "\n")


def run_csim_command(args: argparse.Namespace) -> int:
    """Run ``qfx csim`` for parsed ``args``; returns 0 (bit-exact), 1 (mismatch) or 2 (error).

    Example:
        >>> run_csim_command(parser.parse_args(["csim", "prj"]))  # doctest: +SKIP
        0
    """
    from qfx.backends.hls.project import HLSProject
    from qfx.csim.harness import CSimError, CSimTimeout, csim
    from qfx.csim.toolchain import CompileError, CompileTimeout

    try:
        if args.samples is not None and args.samples < 1:
            raise ValueError(f"--samples must be >= 1, got {args.samples}")
        if args.synth_samples is not None and args.synth_samples < 1:
            raise ValueError(f"--synth-samples must be >= 1, got {args.synth_samples}")
        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        if not args.timeout > 0:
            raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")
        project = HLSProject.load(args.project)
        inputs = (load_inputs(args.inputs, project.graph.inputs)
                  if args.inputs is not None else None)
        report = csim(project, inputs, samples=args.samples, seed=args.seed, jobs=args.jobs,
                      timeout=args.timeout, trace_on_mismatch=not args.no_trace,
                      opt=f"-O{args.opt}", cache_dir=args.cache_dir, progress=args.progress,
                      arith=args.arith, synth_samples=args.synth_samples)
        if args.json is not None:
            _write_json_atomic(args.json, report.to_dict())
    except (CompileError, CSimError, ValueError, TypeError, FileNotFoundError, RuntimeError,
            OSError, KeyError) as err:
        if getattr(args, "debug", False):
            raise
        lines = str(err).strip().splitlines() or [type(err).__name__]
        print(f"qfx csim: error: {lines[0]}", file=sys.stderr)
        # a compiler or simulation that ran out of time is a tool failure (3); everything
        # else here is the project's or the user's input (2), e.g. a header g++ rejects
        return EXIT_TOOL if isinstance(err, (CompileTimeout, CSimTimeout)) else EXIT_ERROR
    print(report)
    return EXIT_OK if report.bit_exact else EXIT_MISMATCH


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (``python -m qfx.cli.csim PROJECT_DIR ...``).

    Example:
        >>> main(["prj", "--samples", "0"])  # doctest: +SKIP
        2
    """
    parser = argparse.ArgumentParser(prog="qfx")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["csim", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
