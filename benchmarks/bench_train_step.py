"""Training-step time of ResNet-8, ResNet-20 (CIFAR 32x32x3) and the digits CNN (1x8x8):
float vs. qfx all-fixed-point vs. Brevitas 8-bit fixed-point QAT, measured in the same run,
printed as medians and ratios to float.

qfx quantises *everything* (input, weights, biases, every conv/BN/ReLU/add output, BN scale and
shift) with learned binary points; the Brevitas model quantises conv/linear weights and the
activations after each block, as in its fixed-point QAT recipes. Brevitas is an optional
benchmark dependency (``pip install brevitas``); without it its rows say so.

Steps of the three models are interleaved (A B C A B C ...) so machine noise hits all of them;
medians are reported, with the ratio to float both of the medians (``x float``) and as the
median of the per-round ratios (``paired``, robust when the machine's speed drifts). Run:
``python -m benchmarks.bench_train_step [--steps 15] [--threads 2] [--models resnet8 ...]
[--device cuda] [--with-torch-fused] [--with-reference] [--cpu-time]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

import torch
from torch import nn

import qfx
from qfx.fixed import fake_quant


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


class ResNet(nn.Module):
    """CIFAR ResNet with ``blocks`` basic blocks per stage (16/32/64 channels): 1 gives the
    MLPerf-Tiny ResNet-8 (the architecture of shared/peers/resnet8.py), 3 ResNet-20."""

    def __init__(self, blocks: int = 1, conv=nn.Conv2d, linear=nn.Linear, act=None) -> None:
        super().__init__()
        self.qin = act() if act else nn.Identity()
        self.stem = nn.Sequential(conv(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.stem_act = act() if act else nn.Identity()
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(blocks):
                layers.append(Block(cin, cout, stride if b == 0 else 1, conv, act))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool, self.fc = nn.AvgPool2d(8), linear(64, 10)

    def forward(self, x):
        x = self.stem_act(self.stem(self.qin(x)))
        return self.fc(torch.flatten(self.pool(self.layers(x)), 1))


class DigitsCNN(nn.Module):
    """The digits CNN of qfx.zoo (conv8-BN-ReLU-conv16-BN-ReLU-maxpool-dense10, 1x8x8)."""

    def __init__(self, conv=nn.Conv2d, linear=nn.Linear, act=None) -> None:
        super().__init__()
        self.qin = act() if act else nn.Identity()
        self.c1, self.b1 = conv(1, 8, 3, 1, 1), nn.BatchNorm2d(8)
        self.a1 = act() if act else nn.Identity()
        self.c2, self.b2 = conv(8, 16, 3, 1, 1), nn.BatchNorm2d(16)
        self.a2 = act() if act else nn.Identity()
        self.pool, self.fc = nn.MaxPool2d(2), linear(16 * 16, 10)

    def forward(self, x):
        x = self.a1(torch.relu(self.b1(self.c1(self.qin(x)))))
        x = self.a2(torch.relu(self.b2(self.c2(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


MODELS = {
    "resnet8": (lambda **k: ResNet(1, **k), (3, 32, 32)),
    "resnet20": (lambda **k: ResNet(3, **k), (3, 32, 32)),
    "digits_cnn": (lambda **k: DigitsCNN(**k), (1, 8, 8)),
}


def brevitas_layers() -> dict | None:
    """Brevitas 8-bit fixed-point conv/linear/activation factories, or None if not installed."""
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

    return {"conv": conv, "linear": linear, "act": act}


def _kernel_name(device: torch.device) -> str:
    if device.type != "cpu":
        return "torch fused path (the C kernel is CPU-only)"
    from qfx.fixed import fake_quant_kernel

    lib = fake_quant_kernel.load_kernel()
    return "one-pass C kernel" if lib is not None else "torch fused path (no C kernel)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(name: str, args, device: torch.device, brev: dict | None
                ) -> dict[str, list[float]]:
    """Per-step seconds of float, qfx (and Brevitas) for one architecture, interleaved."""
    make, shape = MODELS[name]
    torch.manual_seed(0)
    x = torch.randn(args.batch, *shape, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    models = {"float": make().to(device),
              "qfx": qfx.quantize_model(make(), qfx.QConfig.uniform(args.bits), x.cpu())
              .to(device)}
    if args.with_reference:  # the same qfx model on the unfused fake-quantisation reference
        models["qfx-ref"] = copy.deepcopy(models["qfx"])
    if args.with_torch_fused:  # the same qfx model on the torch fused path (no C kernel)
        models["qfx-torch"] = copy.deepcopy(models["qfx"])
    if brev is not None:
        models["brevitas"] = make(**brev).to(device)
    # Process CPU time (all threads) is what a loaded, shared machine distorts least; wall
    # time is what a user waits for on an idle one.
    clock = time.process_time if args.cpu_time else time.perf_counter
    steps = {}
    for key, m in models.items():
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01)

        def step(m=m, opt=opt, ref=key == "qfx-ref", torch_fused=key == "qfx-torch") -> float:
            _sync(device)
            fake_quant._FORCE_REFERENCE = ref
            fake_quant._FORCE_TORCH_FUSED = torch_fused
            t = clock()
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
            _sync(device)
            elapsed = clock() - t
            fake_quant._FORCE_REFERENCE = fake_quant._FORCE_TORCH_FUSED = False
            return elapsed

        for _ in range(3):
            step()
        steps[key] = step
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.steps):
        for key, step in steps.items():
            times[key].append(step())
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    ap.add_argument("--with-reference", action="store_true",
                    help="add a qfx-ref row: the same qfx model on the unfused reference "
                         "fake quantisation (to measure what the fused path saves)")
    ap.add_argument("--with-torch-fused", action="store_true",
                    help="add a qfx-torch row: the same qfx model on the torch fused fake "
                         "quantisation instead of the C kernel (to measure what the kernel saves)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time each step by the process's CPU time instead of wall time (for a "
                         "shared, loaded machine; CPU only)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise SystemExit(f"--device {args.device!r}: {err}") from None
    if args.cpu_time and device.type != "cpu":
        raise SystemExit("--cpu-time measures CPU steps only; drop it with --device cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch.cuda.is_available() is False (no GPU "
                         "or a CPU-only torch build); run on a machine with CUDA")
    torch.set_num_threads(args.threads)
    brev = brevitas_layers()
    print("command: python -m benchmarks.bench_train_step " + " ".join(sys.argv[1:]))
    print(f"training step (forward + backward + SGD), batch {args.batch}, {args.threads} "
          f"threads, {device}, median of {args.steps} interleaved steps "
          f"({'process CPU' if args.cpu_time else 'wall'} time); torch "
          f"{torch.__version__}; fake-quant kernel: {_kernel_name(device)}")
    if brev is None:
        print("brevitas is not importable here: its rows are skipped (pip install brevitas)")
    print(f"{'model':12s} {'impl':9s} {'ms/step':>9s} {'x float':>8s} {'paired':>7s}")
    results = {}
    for name in args.models:
        times = bench_model(name, args, device, brev)
        med = {k: statistics.median(v) for k, v in times.items()}
        # Median of the per-round ratios: each round ran every model back to back.
        paired = {k: statistics.median(a / b for a, b in zip(v, times["float"], strict=True))
                  for k, v in times.items()}
        results[name] = {"median_s": med, "paired_ratio": paired, "times_s": times}
        for impl in ("float", "qfx", "qfx-torch", "qfx-ref", "brevitas"):
            if impl in ("qfx-ref", "qfx-torch") and impl not in med:
                continue
            if impl in med:
                print(f"{name:12s} {impl:9s} {1000 * med[impl]:9.1f} "
                      f"{med[impl] / med['float']:8.2f} {paired[impl]:7.2f}")
            else:
                print(f"{name:12s} {impl:9s} {'-':>9s} {'-':>8s}  (brevitas not installed)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "steps": args.steps, "batch": args.batch,
                       "threads": args.threads, "device": str(device),
                       "clock": "process_time" if args.cpu_time else "perf_counter",
                       "torch": torch.__version__}, f, indent=2)


if __name__ == "__main__":
    main()
