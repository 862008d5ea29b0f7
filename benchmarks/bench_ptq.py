"""PTQ without training (issue #13): naive max PTQ, HPTQ on real / generated (DGH) / noise
calibration data, and qfx fine-tuning (learned binary points) from the HPTQ start.

The model is the zoo's digits CNN, float-trained here on scikit-learn's digits (quick, CPU);
every accuracy is on the 360-image digits test split, computed by the exact fixed-point model
(what the frozen graph and the C-simulated HLS compute). Not a test: run it by hand.

    python -m benchmarks.bench_ptq                       # W8A8, W6A8, W4A8
    python -m benchmarks.bench_ptq --bits 8,8 4,8 --dgh-iterations 200 --json ptq.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from qfx.data import get_dataset
from qfx.ptq import PTQConfig, generate_calibration_data, hptq
from qfx.zoo import get_model


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def _train_float(x, y, epochs: int, seed: int):
    torch.manual_seed(seed)
    model = get_model("digits_cnn")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def _finetune(qmodel, x, y, epochs: int, seed: int):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(qmodel.parameters(), lr=1e-3)
    for _ in range(epochs):
        qmodel.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(qmodel(x[idx]).float(), y[idx]).backward()
            opt.step()
    return qmodel.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", nargs="+", default=["8,8", "6,8", "4,8"],
                    help="weight,activation widths (default 8,8 6,8 4,8)")
    ap.add_argument("--float-epochs", type=int, default=30)
    ap.add_argument("--calib-samples", type=int, default=256)
    ap.add_argument("--dgh-iterations", type=int, default=400)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    split = get_dataset("digits")
    xtr, ytr = split.train.tensors
    xte, yte = split.test.tensors
    t = time.perf_counter()
    model = _train_float(xtr, ytr, args.float_epochs, args.seed)
    float_acc = _accuracy(model, xte, yte)
    print(f"float digits CNN: test accuracy {float_acc:.4f} ({time.perf_counter() - t:.1f}s)")

    n = args.calib_samples
    gen = torch.Generator().manual_seed(args.seed)
    calib = {
        "real": xtr[torch.randperm(len(xtr), generator=gen)[:n]],
        # noise over the data's range [0, 0.5)
        "noise": 0.5 * torch.rand((n, 1, 8, 8), generator=gen),
    }
    t = time.perf_counter()
    calib["generated"], losses = generate_calibration_data(
        model, n, (1, 8, 8), iterations=args.dgh_iterations, value_range=(0.0, 0.5),
        seed=args.seed, progress=False, return_losses=True)
    dgh_s = time.perf_counter() - t
    print(f"DGH: {n} images, {args.dgh_iterations} iterations, BN loss "
          f"{losses['bn_loss_before']:.4f} -> {losses['bn_loss_after']:.4f} ({dgh_s:.1f}s)")

    rows = []
    for spec in args.bits:
        wb, ab = (int(v) for v in spec.split(","))
        row = {"bits": f"W{wb}A{ab}", "float": float_acc}
        cfg = PTQConfig(weight_bits=wb, act_bits=ab, progress=False, seed=args.seed)
        row["naive max (real)"] = hptq(model, calib["real"], PTQConfig.naive(
            wb, ab, progress=False), eval_data=(xte, yte)).report.accuracy
        res_real = hptq(model, calib["real"], cfg, eval_data=(xte, yte))
        row["HPTQ real"] = res_real.report.accuracy
        row["HPTQ DGH (generated)"] = hptq(model, calib["generated"], cfg,
                                            calib_kind="generated",
                                            eval_data=(xte, yte)).report.accuracy
        row["HPTQ noise"] = hptq(model, calib["noise"], cfg, calib_kind="noise",
                                 eval_data=(xte, yte)).report.accuracy
        t = time.perf_counter()
        tuned = _finetune(res_real.model, xtr, ytr, args.finetune_epochs, args.seed)
        row["HPTQ + qfx fine-tune"] = _accuracy(tuned, xte, yte)
        row["fine-tune s"] = time.perf_counter() - t
        rows.append(row)
        print(row)

    cols = ["bits", "float", "naive max (real)", "HPTQ real", "HPTQ DGH (generated)",
            "HPTQ noise", "HPTQ + qfx fine-tune"]
    print()
    print("| " + " | ".join(cols) + " |")
    print("| " + " | ".join(["---"] + ["---:"] * (len(cols) - 1)) + " |")
    for r in rows:
        print("| " + " | ".join([r["bits"]] + [f"{100 * r[c]:.2f}" for c in cols[1:]]) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": vars(args), "dgh": {k: v for k, v in losses.items()
                                                     if k != "history"},
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
