"""Time of the automatic per-layer parallelism search (``reuse="auto"``) on the zoo's largest
model, ResNet-20 (6-bit), for both architectures and two boards; medians over repeats.

    python -m benchmarks.bench_autofold [--repeats 5]

The search is a pure function of the frozen graph and the board: no peer tool does this
(hls4ml leaves the reuse factor to the user, per layer; FINN folds from a target frame rate in
its own flow), so the figure is qfx's own, quoted against the goal of "well under a second".
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import qfx
from qfx.backends.hls.autofold import autofold
from qfx.zoo import get_model, model_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    calib = torch.randn(64, *model_spec("resnet20").input_shape)
    model = qfx.quantize_model(get_model("resnet20"), {"bits": 6}, calib).eval()
    graph = qfx.freeze(model, calib[:1])
    print(f"{'io':9s} {'board':8s} {'median s':>9s} {'min s':>7s} {'max s':>7s} "
          f"{'fits':>5s} {'inferences/s (estimate)':>24s}")
    for io, board in (("stream", "ultra96"), ("stream", "zcu104"), ("parallel", "zcu104")):
        times, fold = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fold = autofold(graph, board, io=io)
            times.append(time.perf_counter() - t0)
        rep = fold.report
        fps = rep.throughput_per_s or 0.0
        print(f"{io:9s} {board:8s} {statistics.median(times):9.3f} {min(times):7.3f} "
              f"{max(times):7.3f} {str(rep.fits):>5s} {fps:24.0f}")


if __name__ == "__main__":
    main()
