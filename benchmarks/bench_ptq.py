"""PTQ without training (issue #13): naive max PTQ, HPTQ on real / generated (DGH) / noise
calibration data, and qfx fine-tuning (learned binary points) from the HPTQ start.

The model is the zoo's digits CNN (``--model digits_cnn``, float-trained here on scikit-learn's
digits: quick, CPU) or ResNet-8 (``--model resnet8``: on a local CIFAR-10 with ``--cifar10 DIR``,
else on the digits upscaled to 3x32x32, which is real data, only resized); every accuracy is on
the held-out split, computed by the exact fixed-point model (what the frozen graph and the
C-simulated HLS compute). Not a test: run it by hand.

    python -m benchmarks.bench_ptq                       # W8A8, W6A8, W4A8
    python -m benchmarks.bench_ptq --bits 8,8 4,8 --dgh-iterations 200 --json ptq.json
    python -m benchmarks.bench_ptq --model resnet8 --float-epochs 15 --finetune-epochs 2
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


def _data(model: str, cifar10: str | None):
    """(x_train, y_train, x_test, y_test, description) for ``model``."""
    if model == "digits_cnn":
        split = get_dataset("digits")
        return (*split.train.tensors, *split.test.tensors, "digits 1x8x8")
    if cifar10:
        split = get_dataset("cifar10", root=cifar10)
        return (*split.train.tensors, *split.test.tensors, "CIFAR-10 (local)")
    split = get_dataset("digits")

    def up(x):  # real digits, resized to ResNet-8's 3x32x32 input
        return F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).repeat(
            1, 3, 1, 1)

    (xtr, ytr), (xte, yte) = split.train.tensors, split.test.tensors
    return up(xtr), ytr, up(xte), yte, "digits upscaled to 3x32x32"


def _train_float(name: str, x, y, epochs: int, seed: int):
    torch.manual_seed(seed)
    model = get_model(name)
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
    ap.add_argument("--model", choices=("digits_cnn", "resnet8"), default="digits_cnn")
    ap.add_argument("--cifar10", metavar="DIR", help="local CIFAR-10 (python batches) for resnet8")
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

    xtr, ytr, xte, yte, data = _data(args.model, args.cifar10)
    t = time.perf_counter()
    model = _train_float(args.model, xtr, ytr, args.float_epochs, args.seed)
    float_acc = _accuracy(model, xte, yte)
    print(f"float {args.model} on {data}: test accuracy {float_acc:.4f} "
          f"({time.perf_counter() - t:.1f}s)")

    n = args.calib_samples
    gen = torch.Generator().manual_seed(args.seed)
    shape = tuple(xtr.shape[1:])
    lo, hi = float(xtr.min()), float(xtr.max())
    calib = {
        "real": xtr[torch.randperm(len(xtr), generator=gen)[:n]],
        # noise over the data's range
        "noise": lo + (hi - lo) * torch.rand((n, *shape), generator=gen),
    }
    t = time.perf_counter()
    calib["generated"], losses = generate_calibration_data(
        model, n, shape, iterations=args.dgh_iterations, value_range=(lo, hi),
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
