"""Training-step time of ResNet-8 (CIFAR 32x32x3, batch 64, CPU): float vs. qfx all-fixed-point
vs. Brevitas 8-bit fixed-point QAT, measured in the same run, printed as ratios to float.

qfx quantises *everything* (input, weights, biases, every conv/BN/ReLU/add output, BN scale and
shift) with learned binary points; the Brevitas model quantises conv/linear weights and the
activations after each block, as in its fixed-point QAT recipes. Brevitas is an optional
benchmark dependency (``pip install brevitas``); without it its row says so.

Steps of the three models are interleaved (A B C A B C ...) so machine noise hits all of them;
medians are reported. Run: ``python benchmarks/bench_train_step.py [--steps 20] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

import qfx


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, conv=nn.Conv2d, act=None) -> None:
        super().__init__()
        self.c1 = conv(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = conv(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(conv(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act1 = act() if act else nn.Identity()
        self.act2 = act() if act else nn.Identity()

    def forward(self, x):
        y = self.act1(torch.relu(self.b1(self.c1(x))))
        return self.act2(torch.relu(self.b2(self.c2(y)) + (self.sc(x) if self.sc else x)))


class ResNet8(nn.Module):
    """MLPerf-Tiny ResNet-8 (the architecture of shared/peers/resnet8.py)."""

    def __init__(self, conv=nn.Conv2d, linear=nn.Linear, act=None) -> None:
        super().__init__()
        self.qin = act() if act else nn.Identity()
        self.stem = nn.Sequential(conv(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.stem_act = act() if act else nn.Identity()
        self.l1, self.l2 = Block(16, 16, 1, conv, act), Block(16, 32, 2, conv, act)
        self.l3 = Block(32, 64, 2, conv, act)
        self.pool, self.fc = nn.AvgPool2d(8), linear(64, 10)

    def forward(self, x):
        x = self.stem_act(self.stem(self.qin(x)))
        return self.fc(torch.flatten(self.pool(self.l3(self.l2(self.l1(x)))), 1))


def brevitas_resnet8() -> nn.Module | None:
    try:
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint
    except ImportError:
        return None

    def conv(*a, **k):
        return qnn.QuantConv2d(*a, weight_quant=Int8WeightPerTensorFixedPoint, **k)

    def linear(*a, **k):
        return qnn.QuantLinear(*a, weight_quant=Int8WeightPerTensorFixedPoint, **k)

    def act():
        return qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)

    return ResNet8(conv, linear, act)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    models = {"float": ResNet8(),
              "qfx": qfx.quantize_model(ResNet8(), qfx.QConfig.uniform(args.bits), x)}
    brev = brevitas_resnet8()
    if brev is not None:
        models["brevitas"] = brev
    steps = {}
    for name, m in models.items():
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01)

        def step(m=m, opt=opt) -> float:
            t = time.perf_counter()
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
            return time.perf_counter() - t

        for _ in range(3):
            step()
        steps[name] = step
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            times[name].append(step())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"ResNet-8 training step, batch {args.batch}, {args.threads} threads, "
          f"median of {args.steps} interleaved steps")
    print(f"{'model':10s} {'ms/step':>9s} {'x float':>8s}")
    for name in ("float", "qfx", "brevitas"):
        if name in med:
            print(f"{name:10s} {1000 * med[name]:9.1f} {med[name] / med['float']:8.2f}")
        else:
            print(f"{name:10s} {'-':>9s} {'-':>8s}  (not installed: pip install brevitas)")
    if "brevitas" in med:
        print(f"qfx step time is {med['brevitas'] / med['qfx']:.2f}x faster than Brevitas")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"median_s": med, "steps": args.steps, "batch": args.batch,
                       "threads": args.threads}, f, indent=2)


if __name__ == "__main__":
    main()
