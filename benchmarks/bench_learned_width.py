"""Digits accuracy vs. resources: float, fixed widths (4, 6, 8 bits, learned binary point) and
learned widths under several DSP budgets, same split, epochs and seeds; medians over seeds
(issue #16).

* every quantized model is the same ``qfx.zoo.digits_cnn`` converted by ``qfx.quantize_model``
  and trained from scratch with the same optimizer, epochs and seeds;
* learned widths: ``quantization: {bits: 8, learn_widths: true}`` (every width starts at 8 bits)
  trained with :class:`qfx.training.budget.BudgetRegularizer` to a DSP budget (a fraction of
  the Ultra96-V2's 360 DSPs), whose controller measures the export estimate each epoch;
* accuracy is the exact fixed-point accuracy on the held-out split, checked equal (raw output
  for raw output) to the frozen integer graph's; resources are the HLS export estimate of the
  frozen graph on the Ultra96-V2 at ``--reuse`` (io=parallel); EBOPs as HGQ defines them (the
  sum over the products of the operands' widths; a convolution kernel counted once).
* HGQ2 runs only if ``hgq`` (``pip install hgq2 keras``, Keras 3 with the torch backend) is
  importable; otherwise its rows are reported as not run.

Run: ``python -m benchmarks.bench_learned_width [--epochs 30] [--seeds 3] [--reuse 16]
[--budgets 0.4 0.2 0.1] [--png PATH] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import qfx
from qfx.backends.hls.estimate import estimate_resources
from qfx.data import load_digits_split
from qfx.training import train
from qfx.training.budget import BudgetRegularizer
from qfx.zoo import digits_cnn


def _ebops(graph) -> float:
    """HGQ's EBOPs of a frozen graph: per dense/conv weight that is not zero, weight width x
    input width (a convolution kernel counted once, as HGQ2 counts a layer reused per pixel)."""
    total = 0.0
    for node in graph.nodes:
        w_t = node.attrs.get("weight_type")
        if w_t is None or "weight" not in node.params:
            continue
        x_w = graph.edges[node.inputs[0]].type.width
        total += float(np.count_nonzero(node.params["weight"])) * w_t.width * x_w
    return total


def _measure(graph, reuse: int) -> dict[str, float]:
    t = estimate_resources(graph, reuse=reuse, board="ultra96").total
    return {"lut": float(t.lut), "dsp": float(t.dsp), "ff": float(t.ff),
            "bram18k": float(t.bram18k), "ebops": _ebops(graph)}


def _run(kind: str, setting: float | int | None, seed: int, epochs: int, reuse: int,
         split) -> dict[str, float]:
    torch.manual_seed(seed)
    x, y = split.test.tensors
    model = digits_cnn()
    reg = None
    if kind == "fixed":
        model = qfx.quantize_model(model, {"bits": int(setting)}, split.train.tensors[0][:256])
    elif kind == "learned":
        model = qfx.quantize_model(model, {"bits": 8, "learn_widths": True,
                                           "width_granularity": "tensor"},
                                   split.train.tensors[0][:256])
        example = x[:1]

        def measure(m):
            return _measure(qfx.freeze(m.eval(), example), reuse)

        reg = BudgetRegularizer(model, example, {"dsp": 360.0 * float(setting)},
                                measure=measure)
    t0 = time.perf_counter()
    res = train(model, split.train, split.test, epochs=epochs, lr=3e-3, batch_size=32,
                seed=seed, progress=False, plot=False, regularizer=reg)
    row = {"acc": res.final_test_acc, "seconds": time.perf_counter() - t0}
    if kind == "float":
        return row
    model.eval()
    graph = qfx.freeze(model, x[:1])
    out = qfx.run_graph(graph, x)
    with torch.no_grad():
        expected = graph.edges[graph.outputs[0]].type.to_int(model(x)).numpy()
    if not np.array_equal(out.raw[0], expected):
        raise AssertionError(f"{kind} {setting}: the frozen graph != the eval model")
    row["acc"] = float((torch.from_numpy(out.outputs[0]).argmax(1) == y).double().mean())
    row.update(_measure(graph, reuse))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reuse", type=int, default=16)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.4, 0.2, 0.1],
                    help="DSP budgets of the learned-width runs, fractions of 360")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train_set, test_set = load_digits_split()
    split = argparse.Namespace(train=train_set, test=test_set)
    runs = [("float", None)] + [("fixed", b) for b in (4, 6, 8)] + \
        [("learned", b) for b in args.budgets]
    try:
        import hgq  # noqa: F401
        hgq_note = "installed but not wired into this script yet: not run"
    except ImportError:
        hgq_note = "not installed (pip install hgq2 keras): not run"
    rows = []
    print(f"digits_cnn, {args.epochs} epochs, seeds 0..{args.seeds - 1}, Ultra96-V2 estimate at "
          f"reuse {args.reuse} (io=parallel); medians over seeds")
    print(f"{'model':18s} {'acc':>7s} {'LUT':>8s} {'FF':>8s} {'DSP':>6s} {'BRAM18K':>8s} "
          f"{'EBOPs':>9s} {'LUT+55DSP':>10s} {'s/run':>7s}")
    for kind, setting in runs:
        per_seed = [_run(kind, setting, s, args.epochs, args.reuse, split)
                    for s in range(args.seeds)]
        med = {k: statistics.median(r[k] for r in per_seed) for k in per_seed[0]}
        name = kind if setting is None else (f"fixed {setting}-bit" if kind == "fixed"
                                             else f"learned dsp<={setting:g}")
        med["name"] = name
        med["accs"] = [r["acc"] for r in per_seed]
        rows.append(med)
        cost = med.get("lut", math.nan) + 55 * med.get("dsp", math.nan)
        print(f"{name:18s} {med['acc']:7.4f} {med.get('lut', math.nan):8.0f} "
              f"{med.get('ff', math.nan):8.0f} {med.get('dsp', math.nan):6.0f} "
              f"{med.get('bram18k', math.nan):8.0f} {med.get('ebops', math.nan):9.0f} "
              f"{cost:10.0f} {med['seconds']:7.1f}")
    print(f"HGQ2: {hgq_note}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.png:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for prefix, marker in (("fixed", "s"), ("learned", "o")):
            pts = sorted((r["lut"] + 55 * r["dsp"], r["acc"], r["name"]) for r in rows
                         if r["name"].startswith(prefix))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=prefix)
            for c, a, n in pts:
                ax.annotate(n, (c, a), fontsize="x-small")
        flt = next(r["acc"] for r in rows if r["name"] == "float")
        ax.axhline(flt, color="gray", ls="--", label="float")
        ax.set_xscale("log")
        ax.set_xlabel("estimated LUT + 55 x DSP (Ultra96-V2)")
        ax.set_ylabel("exact test accuracy (median)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.savefig(args.png, dpi=100)
        print(f"Pareto plot: {args.png}")


if __name__ == "__main__":
    main()
