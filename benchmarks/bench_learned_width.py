"""Accuracy vs. resources on digits (``--task cancer``: breast cancer): float, fixed widths (4,
6, 8 bits, learned binary point) and learned widths under several DSP budgets, same split,
epochs and seeds; medians over seeds (issue #16).

* tasks (``--task``): ``digits`` (default): ``qfx.zoo.digits_cnn`` on the 1,437 / 360 split of
  ``qfx.data.load_digits_split``; ``cancer``: ``qfx.zoo.cancer_mlp`` (30-32-16-2,
  Linear/BatchNorm/ReLU) on the 455 / 114 split of ``qfx.data.load_breast_cancer_split``
  (scikit-learn's Wisconsin breast-cancer data, standardised with the training statistics);
* every quantized model of a task is the same zoo model converted by ``qfx.quantize_model``
  and trained from scratch with the same optimizer, epochs and seeds;
* learned widths: ``quantization: {bits: 8, learn_widths: true}`` (every width starts at 8 bits;
  ``--learned-bits``; one width per tensor, ``--granularity`` channel/element for the constants)
  trained with :class:`qfx.training.budget.BudgetRegularizer` to a DSP budget (a fraction of
  the Ultra96-V2's 360 DSPs), whose controller measures the export estimate each epoch;
* accuracy is the exact fixed-point accuracy on the held-out split, checked equal (raw output
  for raw output) to the frozen integer graph's; resources are the HLS export estimate of the
  frozen graph on the Ultra96-V2 at ``--reuse`` (io=parallel); EBOPs as HGQ defines them (the
  sum over the products of the operands' widths; a convolution kernel counted once).
* learned widths under EBOPs budgets (``--ebops-budgets``): the same with the budget on the
  EBOPs instead of the DSPs, which spans a front where a DSP budget does not bind;
* HGQ2 (``pip install hgq2``: HGQ2 0.2 on Keras 3, run with ``KERAS_BACKEND=torch`` in a
  subprocess, :mod:`benchmarks.hgq2_digits`) at each ``--hgq-betas`` value, from HGQ2's narrow
  initial widths (and, with ``--hgq-wide-betas``, from its 8-bit defaults): accuracy after
  ``trace_minmax`` and EBOPs as HGQ2 computes them. Its rows' ``EBOPs`` column is the
  convolution + dense part (the part this script counts for qfx, a kernel counted once:
  ``parallelization_factor=1``; for ``cancer`` the three dense layers); ``HGQ EBOPs`` adds
  its BatchNorm layers and biases. HGQ2's per-weight widths have no qfx export, so its rows
  have no LUT/DSP estimate. The HGQ2 runs go in a second process alongside the qfx runs; when
  ``hgq`` is not importable they are reported as not run.

Run: ``python -m benchmarks.bench_learned_width [--task digits|cancer] [--epochs 30]
[--seeds 3] [--reuse 16] [--budgets 0.4 0.2 0.1] [--ebops-budgets 40000 20000]
[--hgq-betas 1e-6 1e-5 1e-4] [--hgq-wide-betas 1e-5] [--png PATH] [--json PATH]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import qfx
from qfx.backends.hls.estimate import estimate_resources
from qfx.data import load_breast_cancer_split, load_digits_split
from qfx.flows.measure import estimate_measure, graph_ebops
from qfx.training import train
from qfx.training.budget import BudgetRegularizer
from qfx.zoo import cancer_mlp, digits_cnn


# ------------------------------------------------------------------ tasks (--task)
@dataclass(frozen=True)
class _Task:
    """One task of the bench: its float model, its (train, test) split, the title's name of
    both, the EBOPs axis label and the default ``--ebops-budgets``."""

    model: Callable[[], torch.nn.Module]
    split: Callable[[], tuple]
    title: str
    ebops_label: str
    ebops_budgets: tuple[float, ...]


TASKS = {
    "digits": _Task(digits_cnn, load_digits_split, "digits_cnn",
                    "EBOPs (conv + dense, a kernel counted once)", (40000.0, 20000.0)),
    "cancer": _Task(cancer_mlp, load_breast_cancer_split,
                    "cancer_mlp (30-32-16-2) on breast cancer (455 / 114)",
                    "EBOPs (dense layers)", (8000.0, 4000.0, 2000.0)),
}


def _measure(graph, reuse: int) -> dict[str, float]:
    t = estimate_resources(graph, reuse=reuse, board="ultra96").total
    return {"lut": float(t.lut), "dsp": float(t.dsp), "ff": float(t.ff),
            "bram18k": float(t.bram18k), "ebops": graph_ebops(graph)}


def _run(kind: str, setting: float | int | None, seed: int, epochs: int, reuse: int,
         split, learned_bits: int = 8, granularity: str = "tensor",
         task: str = "digits", controller: dict | None = None) -> dict[str, float]:
    torch.manual_seed(seed)
    x, y = split.test.tensors
    model = TASKS[task].model()
    reg = None
    if kind == "fixed":
        model = qfx.quantize_model(model, {"bits": int(setting)}, split.train.tensors[0][:256])
    elif kind == "learned":
        model = qfx.quantize_model(model, {"bits": learned_bits, "learn_widths": True,
                                           "width_granularity": granularity},
                                   split.train.tensors[0][:256])
        example = x[:1]
        per_layer = estimate_measure(board="ultra96", reuse=reuse, ebops=True)
        budget = ({"lut_equiv": float(setting.removeprefix("lut"))}
                  if isinstance(setting, str) else {"ebops": float(setting)} if setting > 1
                  else {"dsp": 360.0 * float(setting)})
        reg = BudgetRegularizer(model, example, budget,
                                measure=lambda m: per_layer(m, example), **(controller or {}))
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


def _hgq2(beta: float, init: str, seed: int, epochs: int,
          task: str = "digits") -> dict[str, float]:
    """One HGQ2 run (:mod:`benchmarks.hgq2_digits`) in a subprocess on Keras's torch backend."""
    env = dict(os.environ, KERAS_BACKEND="torch")
    cmd = [sys.executable, "-m", "benchmarks.hgq2_digits", "--beta", repr(beta), "--init", init,
           "--seed", str(seed), "--epochs", str(epochs), "--task", task]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600,
                          cwd=Path(__file__).resolve().parents[1], check=False)
    if done.returncode:
        raise RuntimeError(f"HGQ2 beta={beta} {init} seed {seed} failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {"acc": out["acc"], "ebops": out["ebops_mac"], "ebops_hgq": out["ebops"],
            "seconds": out["seconds"]}


def dominated(point: tuple[float, float], front: list[tuple[float, float]]) -> bool:
    """Whether some ``(cost, accuracy)`` of ``front`` is at most as costly and at least as
    accurate as ``point``.

    Example:
        >>> dominated((10.0, 0.9), [(8.0, 0.95), (20.0, 0.99)])
        True
        >>> dominated((5.0, 0.9), [(8.0, 0.95)])
        False
    """
    return any(c <= point[0] and a >= point[1] for c, a in front)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The ``(cost, accuracy)`` points no other point dominates, by cost.

    Example:
        >>> pareto_front([(1.0, 0.9), (2.0, 0.8), (3.0, 0.95)])
        [(1.0, 0.9), (3.0, 0.95)]
    """
    out: list[tuple[float, float]] = []
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or a > out[-1][1]:
            out.append((c, a))
    return out


def half_cost_line(fixed: dict, learned: list[dict]) -> str:
    """The cheapest learned row (LUT + 55 DSP) at least as accurate as ``fixed``, and the
    ratio of its cost to fixed's, by both medians over seeds: of each seed's LUT + 55 DSP
    (``lut_equiv``, a real model's cost) and of the columns (median LUT + 55 x median DSP, the
    table's column). The goal counts as met only when both ratios are at most 0.5.

    Example:
        >>> half_cost_line({"name": "fixed 4-bit", "acc": 0.98, "lut": 1000.0, "dsp": 0.0},
        ...                [{"name": "a", "acc": 0.985, "lut": 400.0, "dsp": 1.0}])
        'fixed 4-bit (0.9800, 1000): a at 0.9850 costs 455 = 0.46x (goal <= 0.5x: met)'
        >>> print(half_cost_line({"name": "fixed 4-bit", "acc": 0.98, "lut": 1000.0, "dsp": 0.0},
        ...                      [{"name": "a", "acc": 0.985, "lut": 480.0, "dsp": 1.0,
        ...                        "lut_equiv": 495.0}]))  # doctest: +NORMALIZE_WHITESPACE
        fixed 4-bit (0.9800, 1000): a at 0.9850 costs 495 = 0.49x (median of the seeds' costs;
        535 = 0.54x from the column medians) (goal <= 0.5x: not met)
    """
    def column(r: dict) -> float:
        return r["lut"] + 55 * r["dsp"]

    def cost(r: dict) -> float:
        return r.get("lut_equiv", column(r))

    head = f"{fixed['name']} ({fixed['acc']:.4f}, {cost(fixed):.0f}): "
    ok = [r for r in learned if r["acc"] >= fixed["acc"] and "lut" in r]
    if not ok:
        return head + "no learned row is as accurate"
    best = min(ok, key=cost)
    ratio, col_ratio = cost(best) / cost(fixed), column(best) / column(fixed)
    line = f"{best['name']} at {best['acc']:.4f} costs {cost(best):.0f} = {ratio:.2f}x"
    if cost(best) != column(best) or cost(fixed) != column(fixed):
        line += (f" (median of the seeds' costs; {column(best):.0f} = {col_ratio:.2f}x from the "
                 "column medians)")
    met = max(ratio, col_ratio) <= 0.5
    return head + line + f" (goal <= 0.5x: {'met' if met else 'not met'})"


def _median_row(name: str, per_seed: list[dict[str, float]]) -> dict:
    med: dict = {k: statistics.median(r[k] for r in per_seed) for k in per_seed[0]}
    med["name"] = name
    med["accs"] = [r["acc"] for r in per_seed]
    if "lut" in per_seed[0] and "dsp" in per_seed[0]:  # each seed's model's own cost
        med["lut_equivs"] = [r["lut"] + 55 * r["dsp"] for r in per_seed]
        med["lut_equiv"] = statistics.median(med["lut_equivs"])
    return med


def _print_row(med: dict) -> None:
    g = med.get
    cost = g("lut", math.nan) + 55 * g("dsp", math.nan)
    print(f"{med['name']:22s} {med['acc']:7.4f} {g('lut', math.nan):8.0f} "
          f"{g('ff', math.nan):8.0f} {g('dsp', math.nan):6.0f} {g('bram18k', math.nan):8.0f} "
          f"{g('ebops', math.nan):9.0f} {g('ebops_hgq', math.nan):9.0f} {cost:10.0f} "
          f"{med['seconds']:7.1f}", flush=True)


_FAMILIES = (("fixed", "s", "qfx fixed width"), ("learned dsp", "o", "qfx learned, DSP budget"),
             ("learned ebops", "D", "qfx learned, EBOPs budget"),
             ("learned lut", "P", "qfx learned, LUT + 55 DSP budget"),
             ("HGQ2 narrow", "^", "HGQ2, narrow init"), ("HGQ2 wide", "v", "HGQ2, 8-bit init"))


def _plot(rows: list[dict], path: Path, title: str,
          ebops_label: str = TASKS["digits"].ebops_label) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    flt = next((r["acc"] for r in rows if r["name"] == "float"), None)
    for ax, xlabel, xfun in (
            (axes[0], ebops_label, lambda r: r.get("ebops")),
            (axes[1], "estimated LUT + 55 x DSP (Ultra96-V2; HGQ2 has no qfx export)",
             lambda r: r["lut"] + 55 * r["dsp"] if "lut" in r else None)):
        for prefix, marker, label in _FAMILIES:
            pts = sorted((xfun(r), r["acc"], r["name"]) for r in rows
                         if r["name"].startswith(prefix) and xfun(r) is not None)
            if not pts:
                continue
            front = pareto_front([(c, a) for c, a, _ in pts])
            line, = ax.plot([c for c, _ in front], [a for _, a in front], marker=marker,
                            label=label + " (front)")
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker,
                       facecolors="none", edgecolors=line.get_color())
            for c, a, n in pts:
                ax.annotate(n.replace("lut+55dsp", "").replace(prefix, "").strip(), (c, a),
                            fontsize="xx-small")
        if flt is not None:
            ax.axhline(flt, color="gray", ls="--", label="float")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (median over seeds)")
    axes[0].legend(fontsize="small")
    fig.suptitle(title, fontsize="small")
    fig.savefig(path, dpi=100)
    print(f"Pareto plot: {path}")


def _title(args: argparse.Namespace) -> str:
    return (f"{TASKS[args.task].title}, {args.epochs} epochs, seeds 0..{args.seeds - 1}, "
            f"Ultra96-V2 estimate at reuse {args.reuse} (io=parallel); medians over seeds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=sorted(TASKS), default="digits",
                    help="digits: digits_cnn on digits; cancer: cancer_mlp on breast cancer")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reuse", type=int, default=16)
    ap.add_argument("--budgets", type=float, nargs="*", default=[0.4, 0.2, 0.1],
                    help="DSP budgets of the learned-width runs, fractions of 360")
    ap.add_argument("--ebops-budgets", type=float, nargs="*", default=None,
                    help="EBOPs budgets of further learned-width runs (absolute, > 1; "
                         "default: digits 40000 20000, cancer 8000 4000 2000)")
    ap.add_argument("--lut-budgets", type=float, nargs="*", default=[],
                    help="LUT + 55 x DSP budgets of further learned-width runs (absolute)")
    ap.add_argument("--wide-lut-budgets", type=float, nargs="*", default=[],
                    help="LUT + 55 x DSP budgets of learned-width runs that start at "
                         "--wide-bits (every width), whatever --learned-bits says")
    ap.add_argument("--wide-bits", type=int, default=8)
    ap.add_argument("--target", type=float, default=0.9,
                    help="the controller's aim, a fraction of the budget")
    ap.add_argument("--settle", type=float, default=0.25,
                    help="fraction of the epochs trained at the held formats")
    ap.add_argument("--settle-lr", type=float, default=0.5,
                    help="the settle epochs restart the schedule from this x the base rate")
    ap.add_argument("--fixed-bits", type=int, nargs="*", default=[4, 6, 8])
    ap.add_argument("--hgq-betas", type=float, nargs="*", default=[1e-6, 1e-5, 1e-4],
                    help="HGQ2 runs from its narrow initial widths, one per beta")
    ap.add_argument("--hgq-wide-betas", type=float, nargs="*", default=[1e-5],
                    help="HGQ2 runs from its 8-bit default initial widths")
    ap.add_argument("--learned-bits", type=int, default=8,
                    help="initial width of every learned-width format")
    ap.add_argument("--granularity", choices=("tensor", "channel", "element"), default="tensor",
                    help="learned widths of the constants: one per tensor, channel or element")
    ap.add_argument("--no-float", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot-from", type=Path, default=None,
                    help="only draw --png from the rows of an earlier run's --json (give its "
                         "--task, --epochs, --seeds and --reuse for the title)")
    args = ap.parse_args()
    if args.settle_lr <= 0:
        ap.error(f"--settle-lr must be positive, got {args.settle_lr}")
    if args.plot_from:
        _plot(json.loads(args.plot_from.read_text()), args.png or Path("pareto.png"),
              _title(args), TASKS[args.task].ebops_label)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    task = TASKS[args.task]
    if args.ebops_budgets is None:
        args.ebops_budgets = list(task.ebops_budgets)
    train_set, test_set = task.split()
    split = argparse.Namespace(train=train_set, test=test_set)
    runs = ([] if args.no_float else [("float", None)]) + \
        [("fixed", b) for b in args.fixed_bits] + [("learned", b) for b in args.budgets] + \
        [("learned", b) for b in args.ebops_budgets] + \
        [("learned", f"lut{b:g}") for b in args.lut_budgets] + \
        [("learned", f"lut{b:g}@{args.wide_bits}") for b in args.wide_lut_budgets]
    hgq_runs = [("narrow", b) for b in args.hgq_betas] + \
        [("wide", b) for b in args.hgq_wide_betas]
    hgq_note = ""
    if importlib.util.find_spec("hgq") is None:  # importing it here would load Keras
        hgq_note = "HGQ2 not installed (pip install hgq2): not run"
        hgq_runs = []
    seeds = range(args.seeds)
    # the HGQ2 runs go one at a time in a second process while qfx trains in this one
    pool = ThreadPoolExecutor(max_workers=1)
    hgq_futures = {(init, beta): [pool.submit(_hgq2, beta, init, s, args.epochs, args.task)
                                  for s in seeds] for init, beta in hgq_runs}
    for (init, beta), futs in hgq_futures.items():  # each result as it comes (stderr), so
        for s, f in zip(seeds, futs, strict=True):  # that a cut run keeps the finished ones
            f.add_done_callback(lambda f, t=f"HGQ2 {init} beta={beta:g} seed {s}": print(
                f"{t}: {f.result() if not f.exception() else f.exception()}",
                file=sys.stderr, flush=True))
    rows = []
    title = _title(args)
    print(title)
    print(f"{'model':22s} {'acc':>7s} {'LUT':>8s} {'FF':>8s} {'DSP':>6s} {'BRAM18K':>8s} "
          f"{'EBOPs':>9s} {'HGQ EBOPs':>9s} {'LUT+55DSP':>10s} {'s/run':>7s}", flush=True)
    for kind, setting in runs:
        start = args.learned_bits
        if isinstance(setting, str) and "@" in setting:  # lutB@W: a budget B from W bits
            setting, start = setting.split("@")[0], int(setting.split("@")[1])
        try:
            per_seed = [_run(kind, setting, s, args.epochs, args.reuse, split, start,
                             args.granularity, args.task,
                             {"target": args.target, "settle": args.settle,
                              "settle_lr": args.settle_lr}) for s in seeds]
        except RuntimeError as err:  # e.g. a budget under the model's floor: say so, go on
            print(f"{kind} {setting}: not run to the end: {err}", flush=True)
            continue
        if setting is None:
            name = kind
        elif kind == "fixed":
            name = f"fixed {setting}-bit"
        elif isinstance(setting, str):
            name = f"learned lut+55dsp<={setting.removeprefix('lut')} from {start}b"
        else:
            name = f"learned ebops<={setting:g}" if setting > 1 else f"learned dsp<={setting:g}"
        rows.append(_median_row(name, per_seed))
        _print_row(rows[-1])
    for (init, beta), futs in hgq_futures.items():
        rows.append(_median_row(f"HGQ2 {init} beta={beta:g}", [f.result() for f in futs]))
        _print_row(rows[-1])
    pool.shutdown()
    if hgq_note:
        print(hgq_note)
    learned = [(r["ebops"], r["acc"]) for r in rows if r["name"].startswith("learned")]
    for r in rows:
        if r["name"].startswith("HGQ2"):
            ok = dominated((r["ebops"], r["acc"]), learned)
            print(f"{r['name']}: {'at or below' if ok else 'ABOVE'} qfx's learned front "
                  "(EBOPs, median accuracy)")
    for r in rows:  # the issue's goal: at equal accuracy, at most half of fixed's LUT + 55 DSP
        if r["name"].startswith("fixed"):
            print(half_cost_line(r, [q for q in rows if q["name"].startswith("learned")]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.png:
        _plot(rows, args.png, title, task.ebops_label)


if __name__ == "__main__":
    main()
