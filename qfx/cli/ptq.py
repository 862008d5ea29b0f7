"""``qfx ptq MODEL.onnx -o MODEL.qfx.npz``: a float model -> a frozen qfx model, no training.

    qfx ptq MODEL.onnx -o OUT.qfx.npz [--bits N | --wbits N --abits N] [--config PTQ.yaml]
        [--calib digits|DIR|FILE.npz|generated|noise] [--calib-samples N] [--eval digits]
        [--board ultra96 [--hls-dir DIR] [--reuse N] [--csim N]] [--force]

The float ONNX model is converted to torch (:mod:`qfx.frontends.onnx_float`), quantised with
HPTQ (:func:`qfx.ptq.hptq`) on the calibration set and frozen. ``--calib``: ``digits`` (the
digits training split: real data), a folder of ``.npy``/``.npz`` arrays or one ``.npz`` file
(real data, or whatever ``kind`` a saved set records), ``generated`` (DGH from the model's
BatchNorm statistics; the set is saved beside the output) or ``noise`` (uniform noise: a
baseline, and labelled as noise everywhere). The markdown report (per-layer formats and
errors, accuracy when labelled data is at hand) is written to ``OUT.ptq.md`` and printed.
With ``--board`` the HLS project is exported too (and C-simulated on ``--csim N`` samples).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "run_ptq_command"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``ptq`` subcommand.

    Example:
        >>> parser = argparse.ArgumentParser(prog="qfx")
        >>> _ = register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["ptq", "m.onnx", "--calib", "noise", "--bits", "6"])
        >>> args.func is run_ptq_command, args.calib, args.bits
        (True, 'noise', 6)
    """
    p = subparsers.add_parser(
        "ptq", help="post-training quantise a float ONNX model (HPTQ) to a frozen qfx model",
        description="Hardware-friendly post-training quantisation of a float ONNX model: "
                    "power-of-two thresholds, BN folding, bias and shift-negative correction; "
                    "calibrated on real data, generated data (DGH) or noise.")
    p.add_argument("model", metavar="MODEL.onnx", help="the float ONNX model")
    p.add_argument("-o", "--output", metavar="OUT.qfx.npz",
                   help="frozen model to write (default: MODEL with .qfx.npz)")
    p.add_argument("--bits", type=int, help="weight and activation width (default 8)")
    p.add_argument("--wbits", type=int, help="weight width (overrides --bits)")
    p.add_argument("--abits", type=int, help="activation width (overrides --bits)")
    p.add_argument("--config", metavar="PTQ.yaml", help="PTQConfig fields as YAML")
    p.add_argument("--calib", default="digits",
                   help="digits | DIR of .npy/.npz | FILE.npz | generated | noise "
                        "(default: digits)")
    p.add_argument("--calib-samples", type=int, default=256,
                   help="samples to use/generate (default 256)")
    p.add_argument("--dgh-iterations", type=int, default=500,
                   help="optimisation steps for --calib generated (default 500)")
    p.add_argument("--eval", choices=("digits", "none"), default=None,
                   help="labelled data to report accuracy on (default: digits test split "
                        "when --calib digits)")
    p.add_argument("--board", help="also export the HLS project for this board")
    p.add_argument("--hls-dir", help="HLS project folder (default: OUT_hls)")
    p.add_argument("--reuse", type=int, default=1, help="HLS reuse factor (default 1)")
    p.add_argument("--csim", type=int, default=0, metavar="N",
                   help="C-simulate the exported project on N calibration samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=run_ptq_command)
    return p


def _default_output(model: Path) -> Path:
    name = model.name[: -len(model.suffix)] if model.suffix else model.name
    return model.with_name(f"{name}.qfx.npz")


def _input_shape(path: Path) -> tuple[int, ...]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"{path}: the input shape {dims} is not fully known (needed to make "
                         "calibration data)")
    return tuple(dims)


def _load_dir(path: Path) -> tuple[Any, str]:
    import numpy as np
    import torch

    from qfx.ptq.dgh import load_calibration_data

    if path.suffix == ".npz" and path.is_file():
        return load_calibration_data(path)
    files = sorted([*path.glob("*.npy"), *path.glob("*.npz")])
    if not files:
        raise FileNotFoundError(f"{path}: no .npy/.npz calibration arrays in this folder")
    arrays = []
    for f in files:
        if f.suffix == ".npy":
            arrays.append(np.load(f, allow_pickle=False))
        else:
            with np.load(f, allow_pickle=False) as z:
                arrays.append(z["x"] if "x" in z else z[z.files[0]])
    return torch.from_numpy(np.concatenate(arrays).astype(np.float32)), "real"


def run_ptq_command(args: argparse.Namespace) -> int:
    """Handler of ``qfx ptq``; errors are raised and printed by ``qfx.cli`` as one line."""
    import torch

    from qfx.frontends.onnx_float import onnx_to_torch
    from qfx.ir.serialize import save_graph
    from qfx.ptq import PTQConfig, generate_calibration_data, hptq

    model_path = Path(args.model)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such file")
    if model_path.suffix.lower() != ".onnx":
        raise ValueError(f"{model_path}: expected a float .onnx model")
    out = Path(args.output) if args.output else _default_output(model_path)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    if args.calib_samples < 2:
        raise ValueError("--calib-samples must be at least 2")
    values: dict[str, Any] = {}
    if args.config:
        import yaml

        data = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{args.config}: expected a mapping of PTQConfig fields")
        values.update(data)
    if args.bits is not None:
        values["weight_bits"] = values["act_bits"] = args.bits
    if args.wbits is not None:
        values["weight_bits"] = args.wbits
    if args.abits is not None:
        values["act_bits"] = args.abits
    try:
        cfg = PTQConfig.from_dict(values)
    except TypeError as err:
        raise ValueError(f"PTQ configuration: {err}") from None

    float_model = onnx_to_torch(model_path)
    shape = _input_shape(model_path)
    n = args.calib_samples
    eval_data = None
    calib = args.calib
    if calib == "digits":
        from qfx.data import get_dataset

        split = get_dataset("digits")
        x = split.train.tensors[0][:n]
        kind = "real"
        if args.eval != "none":
            eval_data = (split.test.tensors[0], split.test.tensors[1])
    elif calib == "noise":
        gen = torch.Generator().manual_seed(args.seed)
        x, kind = torch.rand((n, *shape), generator=gen), "noise"
    elif calib == "generated":
        saved = out.with_name(out.name.removesuffix(".qfx.npz") + ".generated.npz")
        x = generate_calibration_data(float_model, n, shape, iterations=args.dgh_iterations,
                                      seed=args.seed, save=saved)
        kind = "generated"
        print(f"generated calibration set saved to {saved}")
    else:
        path = Path(calib)
        if not path.exists():
            raise FileNotFoundError(f"--calib {calib}: not digits, generated, noise or an "
                                    "existing folder/.npz file")
        x, kind = _load_dir(path)
        x = x[:n]
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"calibration data has shape {tuple(x.shape[1:])}, the model "
                         f"expects {shape}")
    if args.eval == "digits" and eval_data is None:
        from qfx.data import get_dataset

        split = get_dataset("digits")
        eval_data = (split.test.tensors[0], split.test.tensors[1])
    res = hptq(float_model, x, cfg, calib_kind=kind, eval_data=eval_data)
    written = save_graph(res.graph, out)
    md = res.report.to_markdown()
    report_path = out.with_name(out.name.removesuffix(".qfx.npz") + ".ptq.md")
    extra = ""
    if args.board:
        from qfx.backends.hls.export import export_hls

        hls_dir = Path(args.hls_dir) if args.hls_dir else out.with_name(
            out.name.removesuffix(".qfx.npz") + "_hls")
        project = export_hls(res.graph, hls_dir, board=args.board, reuse=args.reuse,
                             force=args.force, test_vectors=x[:16].numpy(),
                             on_budget="warn")
        extra += (f"\n## HLS export ({args.board})\n\nProject `{project.root}`; estimate "
                  f"fits the board: {project.report.fits}.\n")
        if args.csim > 0:
            from qfx.csim import csim

            rep = csim(project, x[:args.csim])
            extra += (f"\n## C-simulation on {args.csim} {kind} calibration samples\n\n"
                      f"bit-exact: {rep.bit_exact} ({rep.mismatches} mismatches)\n")
            if not rep.bit_exact:
                report_path.write_text(md + extra)
                raise RuntimeError(f"C-simulation is not bit-exact ({rep.mismatches} "
                                   f"mismatches); see {report_path}")
    report_path.write_text(md + extra)
    print(md + extra)
    print(f"frozen model written to {written}; report {report_path}")
    return 0
