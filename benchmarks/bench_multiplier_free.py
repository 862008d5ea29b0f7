"""Digits accuracy vs. multiplier count: float, 8-bit fixed point, K=2 and K=1 (multiplier-free)
weights, and a binarized network, as one table (issue #4).

* float: ``qfx.zoo.digits_cnn`` trained in float32;
* 8-bit / K=2 / K=1: that model converted with ``qfx.quantize_model`` (everything 8-bit; for
  K=2 and K=1 every conv/linear weight *and* BatchNorm scale is K-hot, i.e. at most K non-zero
  signed power-of-two digits), then fine-tuned (QAT, weights and binary points);
* BNN: ``qfx.zoo.digits_bnn`` (thermometer input, binary convs and fc with BatchNorm + sign
  folded into thresholds, fixed-point classifier), trained from scratch.

Accuracies of the quantized models are measured twice: in eval mode and with the frozen
integer graph (``qfx.freeze`` + ``qfx.run_graph``); the script checks that both give the same
raw outputs. Costs come from ``qfx.ir.cost_report`` (per inference): ``mults`` = constant
multipliers that need a DSP in a fully parallel design, ``mult ops`` = true multiplications,
``shift-add`` = shifted/negated summands replacing products, ``XNOR bits``, ``adder bits``.
The float row counts every MAC and BatchNorm scale as a (floating-point) multiplication.

Run: ``python -m benchmarks.bench_multiplier_free [--epochs 30] [--qat-epochs 15]
[--bnn-epochs 30] [--threads 1] [--json PATH]``
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch

import qfx
from qfx.data import load_digits_split
from qfx.ir import cost_report, run_graph
from qfx.training import evaluate, train
from qfx.zoo import digits_bnn, digits_cnn


def _frozen(model: torch.nn.Module, test_set) -> tuple[float, dict]:
    """Frozen-graph accuracy (checked equal, raw output for raw output, to eval) and costs."""
    x, y = test_set.tensors
    model.eval()
    graph = qfx.freeze(model, x[:1])
    res = run_graph(graph, x)
    with torch.no_grad():
        expected = model(x)
    out_t = graph.edges[graph.outputs[0]].type
    if not np.array_equal(out_t.to_int(expected).numpy(), res.raw[0]):
        raise AssertionError("the frozen graph does not match the eval model bit for bit")
    acc = float((torch.from_numpy(res.outputs[0]).argmax(1) == y).double().mean())
    t = cost_report(graph).total
    costs = {"mults": t.multipliers, "mult_ops": t.mult_ops, "shift_add": t.shift_add_terms,
             "xnor_bits": t.xnor_bits, "adder_bits": t.adder_bits, "macs": t.macs}
    return acc, {"graph": graph, **costs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=30, help="float training epochs")
    ap.add_argument("--qat-epochs", type=int, default=15, help="fine-tuning epochs")
    ap.add_argument("--bnn-epochs", type=int, default=30, help="BNN training epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    train_set, test_set = load_digits_split()
    calib = train_set.tensors[0][:512]
    common = dict(seed=args.seed, progress=False, plot=False)

    torch.manual_seed(args.seed)
    float_model = train(digits_cnn(), train_set, test_set, epochs=args.epochs, lr=3e-3,
                        **common).model
    rows: list[dict] = [{"model": "float", "weights": "float32",
                         "acc": evaluate(float_model, test_set)[1]}]
    variants = [("8-bit", "8-bit fixed", {}),
                ("K=2", "8-bit, 2-hot", {"weight_khot": 2, "bn_scale_khot": 2}),
                ("K=1", "8-bit, 1-hot (pow2)", {"weight_khot": 1, "bn_scale_khot": 1})]
    for name, weights, extra in variants:
        ptq = qfx.quantize_model(float_model, qfx.QConfig.uniform(8, **extra), calib).eval()
        ptq_acc = evaluate(ptq, test_set)[1]
        tuned = train(copy.deepcopy(ptq).train(), train_set, test_set, epochs=args.qat_epochs,
                      lr=1e-3, **common).model.eval()
        acc, costs = _frozen(tuned, test_set)
        rows.append({"model": name, "weights": weights, "ptq_acc": ptq_acc,
                     "acc": evaluate(tuned, test_set)[1], "frozen_acc": acc, **costs})
    # float: every MAC and BN scale of the same topology is a float multiplication
    graph8 = rows[1]["graph"]
    n_consts = sum(int(n.params[k].size) for n in graph8.nodes for k in ("weight", "scale")
                   if k in n.params)
    macs = sum(c.macs for c in cost_report(graph8).nodes if c.op in ("conv2d", "dense",
                                                                     "batchnorm"))
    rows[0].update(mults=n_consts, mult_ops=macs, shift_add=0, xnor_bits=0, adder_bits=None,
                   macs=macs)

    torch.manual_seed(args.seed)
    bnn = train(digits_bnn(), train_set, test_set, epochs=args.bnn_epochs, lr=1e-2,
                **common).model.eval()
    acc, costs = _frozen(bnn, test_set)
    rows.append({"model": "BNN", "weights": "binary (+-1)", "acc": evaluate(bnn, test_set)[1],
                 "frozen_acc": acc, **costs})

    print(f"digits held-out accuracy (360 images) and arithmetic per inference; seed "
          f"{args.seed}, {args.threads} threads, {time.perf_counter() - t0:.0f} s")
    head = (f"{'model':6s} {'weights':20s} {'PTQ acc':>8s} {'acc':>7s} {'frozen':>7s} "
            f"{'mults':>6s} {'mult ops':>9s} {'shift-add':>10s} {'XNOR bits':>10s} "
            f"{'adder bits':>11s} {'DSP':>5s}")
    print(head)
    print("-" * len(head))

    def pct(v):
        return f"{100 * v:6.1f}%" if v is not None else f"{'-':>7s}"

    for r in rows:
        dsp = "-" if r["model"] == "float" else str(r["mults"])
        adder = "-" if r["adder_bits"] is None else str(r["adder_bits"])
        print(f"{r['model']:6s} {r['weights']:20s} {pct(r.get('ptq_acc')):>8s} "
              f"{pct(r['acc'])} {pct(r.get('frozen_acc'))} {r['mults']:6d} "
              f"{r['mult_ops']:9d} {r['shift_add']:10d} {r['xnor_bits']:10d} {adder:>11s} "
              f"{dsp:>5s}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args),
                       "rows": [{k: v for k, v in r.items() if k != "graph"} for r in rows]},
                      fh, indent=2)


if __name__ == "__main__":
    main()
