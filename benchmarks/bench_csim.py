"""C-simulation of ResNet-8 (MLPerf-Tiny, CIFAR 3x32x32): qfx vs. hls4ml 1.3.0, in one run.

Both tools get the same float model (defined below; the architecture of shared/peers/resnet8.py)
and the same random inputs (uniform in [0, 1), as the peers measured):

* hls4ml: ``config_from_pytorch_model`` + ``convert_from_pytorch_model`` (Vitis backend,
  io_stream, ``ap_fixed<16,6>``, xczu3eg part), ``compile()`` (its g++ build), ``predict``;
* qfx: ``quantize_model`` (``QConfig.uniform(--bits)``, default 16 bits like hls4ml's
  ``ap_fixed<16,6>``) + ``freeze`` once, then per repetition ``export_firmware`` (``--io``:
  ``stream`` by default, the same architecture as hls4ml's io_stream), a cold g++
  build of the exported testbench (an empty cache folder: ``build_testbench``) and ``csim`` on
  the inputs (the cached binary, ``--jobs`` processes; also one process); then the same cold
  build and C-sim with the synthesis arithmetic (``arith="synth"``, ``-DQFX_AP_ARITH``: the
  ap_fixed code that Vitis compiles) on the first ``--synth-samples`` inputs.

Repetitions are interleaved (qfx, hls4ml, qfx, hls4ml, ...) after ``--warmup`` untimed ones;
the table shows medians and ratios. Samples per second are wall time; the ``samples/CPU-s`` rows
divide by the simulating process' own CPU time (the C-sim child process' user + system time for
qfx, ``time.process_time`` around ``predict`` for hls4ml), which a loaded machine distorts less.
Bit-exactness is reported per tool against its own software model: qfx's C-sim against the exact
executor (``run_graph``), compared with ``==`` on raw integers; hls4ml has no bit-exact software
model of a PyTorch network, so (as the peers measured) its max abs difference to the float
PyTorch model is shown. hls4ml is an optional benchmark
dependency: without it only the qfx column is measured.

Run from the repository root (a few minutes on 2 cores):
``python -m benchmarks.bench_csim [--samples 100] [--reps 3] [--json csim.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import qfx
from qfx.backends.hls.writer import export_firmware
from qfx.csim import build_testbench, csim

HLS4ML_PRECISION = "ap_fixed<16,6>"
HLS4ML_PART = "xczu3eg-sbva484-1-e"


# ---------------------------------------------------------------------------- the model
class Block(nn.Module):
    """ResNet-8 basic block: conv3x3-BN-ReLU, conv3x3-BN, (1x1 conv-BN shortcut), add, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                 nn.BatchNorm2d(cout))
                   if stride != 1 or cin != cout else None)
        self.r2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(self.r1(self.b1(self.c1(x)))))
        return self.r2(y + (self.sc(x) if self.sc is not None else x))


class ResNet8(nn.Module):
    """MLPerf-Tiny style ResNet-8 for CIFAR 3x32x32 (16/32/64 channels, ~78k parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.l1 = Block(16, 16, 1)
        self.l2 = Block(16, 32, 2)
        self.l3 = Block(32, 64, 2)
        self.pool = nn.AvgPool2d(8)
        self.fl = nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fl(self.pool(self.l3(self.l2(self.l1(self.stem(x)))))))


# ---------------------------------------------------------------------------- qfx side
def _children_cpu_s() -> float:
    """CPU seconds (user + system) of this process' finished child processes so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _csim_1proc(prj: Any, x: np.ndarray, **kw: Any) -> tuple[Any, float]:
    """csim in one process; also its CPU samples/s (the C-sim process' user + system time: on a
    loaded machine wall time counts the other processes' share of the cores too)."""
    start = _children_cpu_s()
    rep = csim(prj, x, jobs=1, **kw)
    cpu = _children_cpu_s() - start
    return rep, (len(x) / cpu if cpu > 0 else float("inf"))


def qfx_graph(model: nn.Module, bits: int, seed: int) -> tuple[qfx.Graph, float]:
    """Quantize (calibrated on separate random data) and freeze; returns (graph, seconds)."""
    calib = torch.from_numpy(np.random.default_rng(seed + 1).random((64, 3, 32, 32),
                                                                    dtype=np.float32))
    start = time.perf_counter()
    qnet = qfx.quantize_model(model, qfx.QConfig.uniform(bits), calib)
    graph = qfx.freeze(qnet.eval(), calib[:1])
    return graph, time.perf_counter() - start


def qfx_rep(graph: qfx.Graph, x: np.ndarray, work: Path, jobs: int | None,
            opt: str, io_mode: str = "stream", synth_samples: int = 0) -> dict[str, Any]:
    """One qfx repetition: export, cold g++ build, C-sim (``jobs`` processes and 1 process), for
    the native C-sim arithmetic and (``synth_samples`` > 0) for the synthesis arithmetic
    (``-DQFX_AP_ARITH``: the ap_fixed code that Vitis compiles) on the first ``synth_samples``."""
    work.mkdir(parents=True)
    cache = work / "cache"  # empty: the build is cold
    start = time.perf_counter()
    prj = export_firmware(graph, work / "prj", project_name="resnet8", io=io_mode)
    export_s = time.perf_counter() - start
    build = build_testbench(prj, opt=opt, cache_dir=cache)
    if build.cached:
        raise RuntimeError("the qfx build was expected to be cold")
    rep = csim(prj, x, jobs=jobs, opt=opt, cache_dir=cache)
    one, one_cpu_sps = _csim_1proc(prj, x, opt=opt, cache_dir=cache)
    if not (rep.cached and one.cached):
        raise RuntimeError("csim recompiled a binary that build_testbench had just built")
    if not np.array_equal(rep.outputs, one.outputs):
        raise RuntimeError("the parallel and the single-process C-sim disagree")
    out_t = graph.edges[graph.outputs[0]].type
    synth: dict[str, Any] = {}
    if synth_samples > 0:
        sb = build_testbench(prj, opt=opt, cache_dir=cache, arith="synth")
        if sb.cached:
            raise RuntimeError("the qfx synth-arith build was expected to be cold")
        xs = x[:synth_samples]
        srep = csim(prj, xs, jobs=jobs, opt=opt, cache_dir=cache, arith="synth")
        sone, sone_cpu_sps = _csim_1proc(prj, xs, opt=opt, cache_dir=cache, arith="synth")
        if not np.array_equal(srep.outputs, rep.outputs[:len(xs)]):
            raise RuntimeError("the synthesis and the native arithmetic disagree")
        synth = {"synth_compile_s": sb.seconds, "synth_sim_sps": srep.samples_per_second,
                 "synth_sim_sps_1": sone.samples_per_second, "synth_cpu_sps_1": sone_cpu_sps,
                 "synth_bit_exact":
                 srep.bit_exact and sone.bit_exact, "synth_samples": len(xs)}
    return {**synth, "export_s": export_s, "compile_s": build.seconds,
            "sim_sps": rep.samples_per_second, "sim_sps_1": one.samples_per_second,
            "cpu_sps_1": one_cpu_sps,
            "jobs": rep.jobs, "bit_exact": rep.bit_exact, "mismatches": rep.mismatches,
            "values": int(rep.outputs.size), "summary": rep.summary(),
            "y": out_t.from_int(rep.outputs)}


# ---------------------------------------------------------------------------- hls4ml side
def hls4ml_available() -> bool:
    try:
        import hls4ml  # noqa: F401
    except ImportError:
        return False
    return True


def hls4ml_rep(model: nn.Module, x: np.ndarray, work: Path) -> dict[str, Any]:
    """One hls4ml repetition: convert, compile (g++), predict (NHWC input, io_stream)."""
    import hls4ml

    work.mkdir(parents=True)
    quiet = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(quiet):
        cfg = hls4ml.utils.config_from_pytorch_model(
            model, input_shape=(3, 32, 32), granularity="name", backend="Vitis",
            default_precision=HLS4ML_PRECISION)
        hm = hls4ml.converters.convert_from_pytorch_model(
            model, hls_config=cfg, output_dir=str(work / "hls4ml_prj"), backend="Vitis",
            io_type="io_stream", part=HLS4ML_PART)
    convert_s = time.perf_counter() - start
    start = time.perf_counter()
    with contextlib.redirect_stdout(quiet):
        hm.compile()
    compile_s = time.perf_counter() - start
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    start, cpu_start = time.perf_counter(), time.process_time()
    y = hm.predict(nhwc)
    predict_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    return {"convert_s": convert_s, "compile_s": compile_s, "sim_sps": len(x) / predict_s,
            "cpu_sps": len(x) / cpu_s if cpu_s > 0 else float("inf"),
            "y": np.asarray(y, dtype=np.float64).reshape(len(x), -1)}


# ---------------------------------------------------------------------------- main
def _median(reps: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in reps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=100, help="random inputs (default 100)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed repetitions (default 1)")
    ap.add_argument("--bits", type=int, default=16,
                    help="qfx QConfig.uniform width (default 16, like ap_fixed<16,6>)")
    ap.add_argument("--jobs", type=int, help="qfx C-sim processes (default: the CPU cores)")
    ap.add_argument("--opt", default="-O3", help="qfx g++ optimisation flag (default -O3)")
    ap.add_argument("--io", default="stream", choices=("stream", "parallel"),
                    help="qfx architecture (default stream, like hls4ml's io_stream)")
    ap.add_argument("--synth-samples", type=int, default=50,
                    help="samples for the synthesis-arithmetic (-DQFX_AP_ARITH) C-sim rows "
                         "(default 50; 0: skip them)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-hls4ml", action="store_true", help="measure qfx only")
    ap.add_argument("--keep", type=Path, help="keep the generated projects in this folder")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.samples < 1 or args.reps < 1 or args.warmup < 0:
        ap.error("--samples and --reps must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    use_hls4ml = not args.no_hls4ml and hls4ml_available()

    torch.manual_seed(args.seed)
    model = ResNet8().eval()
    x = np.random.default_rng(args.seed).random((args.samples, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        y_float = model(torch.from_numpy(x)).double().numpy()
    graph, freeze_s = qfx_graph(model, args.bits, args.seed)

    root = Path(tempfile.mkdtemp(prefix="bench_csim_", dir=args.keep))
    q_reps: list[dict[str, Any]] = []
    h_reps: list[dict[str, Any]] = []
    try:
        for i in range(args.warmup + args.reps):
            timed = i >= args.warmup
            tag = f"rep{i}" if timed else f"warmup{i}"
            print(f"[{tag}] qfx ...", file=sys.stderr, flush=True)
            q = qfx_rep(graph, x, root / f"qfx_{i}", args.jobs, args.opt, args.io,
                        min(args.synth_samples, args.samples))
            print(f"[{tag}] qfx: export {q['export_s']:.2f} s, compile {q['compile_s']:.1f} s, "
                  f"C-sim {q['sim_sps']:.0f}/s ({q['jobs']} proc), {q['sim_sps_1']:.0f}/s "
                  f"(1 proc); {q['summary']}", file=sys.stderr, flush=True)
            if "synth_compile_s" in q:
                print(f"[{tag}] qfx synth arith: compile {q['synth_compile_s']:.1f} s, C-sim "
                      f"{q['synth_sim_sps']:.1f}/s ({q['jobs']} proc), "
                      f"{q['synth_sim_sps_1']:.1f}/s (1 proc; {q['synth_cpu_sps_1']:.1f}/CPU-s), "
                      f"bit-exact "
                      f"{q['synth_bit_exact']}", file=sys.stderr, flush=True)
            if timed:
                q_reps.append(q)
            if use_hls4ml:
                print(f"[{tag}] hls4ml ...", file=sys.stderr, flush=True)
                h = hls4ml_rep(model, x, root / f"hls4ml_{i}")
                print(f"[{tag}] hls4ml: convert {h['convert_s']:.1f} s, compile "
                      f"{h['compile_s']:.1f} s, predict {h['sim_sps']:.2f}/s "
                      f"({h['cpu_sps']:.2f}/CPU-s)",
                      file=sys.stderr, flush=True)
                if timed:
                    h_reps.append(h)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    q_diff = float(np.abs(q_reps[-1]["y"] - y_float).max())
    rows = [("convert / export [s]", _median(q_reps, "export_s"),
             _median(h_reps, "convert_s") if h_reps else None),
            ("g++ compile, cold [s]", _median(q_reps, "compile_s"),
             _median(h_reps, "compile_s") if h_reps else None),
            (f"C-sim [samples/s], qfx {q_reps[0]['jobs']} proc", _median(q_reps, "sim_sps"),
             _median(h_reps, "sim_sps") if h_reps else None),
            ("C-sim [samples/s], qfx 1 proc", _median(q_reps, "sim_sps_1"),
             _median(h_reps, "sim_sps") if h_reps else None),
            ("C-sim [samples/CPU-s], 1 proc", _median(q_reps, "cpu_sps_1"),
             _median(h_reps, "cpu_sps") if h_reps else None)]
    synth_rows = "synth_compile_s" in q_reps[0]
    if synth_rows:
        rows += [("synth arith: g++ compile, cold [s]", _median(q_reps, "synth_compile_s"),
                  _median(h_reps, "compile_s") if h_reps else None),
                 ("synth arith: C-sim [samples/s], 1 proc", _median(q_reps, "synth_sim_sps_1"),
                  _median(h_reps, "sim_sps") if h_reps else None),
                 ("synth arith: C-sim [samples/CPU-s], 1 proc",
                  _median(q_reps, "synth_cpu_sps_1"),
                  _median(h_reps, "cpu_sps") if h_reps else None),
                 (f"synth arith: C-sim [samples/s], {q_reps[0]['jobs']} proc",
                  _median(q_reps, "synth_sim_sps"),
                  _median(h_reps, "sim_sps") if h_reps else None)]
    print(f"\nResNet-8 (CIFAR 3x32x32), {args.samples} random inputs, medians of {args.reps} "
          f"reps ({args.warmup} warm-up); qfx {args.bits}-bit (QConfig.uniform), io={args.io}, "
          f"g++ {args.opt}; hls4ml {HLS4ML_PRECISION}, Vitis, io_stream; {os.cpu_count()} CPUs")
    print(f"{'row':36s} {'qfx':>10s} {'hls4ml':>10s} {'qfx/hls4ml':>11s}")
    for name, qv, hv in rows:
        ratio = f"{qv / hv:10.2f}x" if hv else f"{'-':>11s}"
        hs = f"{hv:10.2f}" if hv is not None else f"{'n/a':>10s}"
        print(f"{name:36s} {qv:10.2f} {hs} {ratio}")
    exact = all(r["bit_exact"] and r.get("synth_bit_exact", True) for r in q_reps)
    print(f"{'bit-exact to own software model':36s} "
          f"qfx: {'YES' if exact else 'NO'} ({q_reps[-1]['mismatches']} of "
          f"{q_reps[-1]['values']} raw outputs differ from run_graph, compared with ==; "
          + (f"synthesis arithmetic too, on {q_reps[-1]['synth_samples']} samples)"
             if synth_rows else "native arithmetic only)"))
    if h_reps:
        h_diff = float(np.abs(h_reps[-1]["y"] - y_float).max())
        print(f"{'':36s} hls4ml: {'YES' if h_diff == 0 else 'NO'} (max |predict - float "
              f"PyTorch| = {h_diff:.4f}; no bit-exact software model exists)")
    print(f"{'max |output - float PyTorch|':36s} qfx {q_diff:.4f} ({args.bits}-bit)"
          + (f", hls4ml {h_diff:.4f}" if h_reps else ""))
    print(f"qfx quantize_model + freeze (once, not in the table): {freeze_s:.1f} s")
    verdicts = {}
    if h_reps:
        verdicts["compile_no_slower"] = _median(q_reps, "compile_s") <= _median(h_reps,
                                                                                 "compile_s")
        verdicts["sim_10x"] = _median(q_reps, "sim_sps") >= 10 * _median(h_reps, "sim_sps")
        print(f"requirements: qfx compile <= hls4ml compile: "
              f"{'PASS' if verdicts['compile_no_slower'] else 'FAIL'}; qfx C-sim >= 10x "
              f"hls4ml: {'PASS' if verdicts['sim_10x'] else 'FAIL'}")
        if synth_rows:
            hc, hs = _median(h_reps, "compile_s"), _median(h_reps, "sim_sps")
            verdicts["synth_compile_no_slower"] = _median(q_reps, "synth_compile_s") <= hc
            verdicts["synth_sim_2x_1proc"] = _median(q_reps, "synth_sim_sps_1") >= 2 * hs
            verdicts["synth_sim_2x_1proc_cpu"] = (_median(q_reps, "synth_cpu_sps_1")
                                                  >= 2 * _median(h_reps, "cpu_sps"))
            print(f"synthesis arithmetic: qfx compile <= hls4ml compile: "
                  f"{'PASS' if verdicts['synth_compile_no_slower'] else 'FAIL'}; qfx C-sim "
                  f"(1 proc) >= 2x hls4ml (1 proc): "
                  f"{'PASS' if verdicts['synth_sim_2x_1proc'] else 'FAIL'} (per CPU-s: "
                  f"{'PASS' if verdicts['synth_sim_2x_1proc_cpu'] else 'FAIL'})")
    else:
        print("hls4ml not measured (not installed, or --no-hls4ml)")

    if args.json:
        strip = [{k: v for k, v in r.items() if k != "y"} for r in q_reps]
        hstrip = [{k: v for k, v in r.items() if k != "y"} for r in h_reps]
        doc = {"config": vars(args) | {"json": str(args.json), "keep": str(args.keep)},
               "qfx": strip, "hls4ml": hstrip, "freeze_s": freeze_s,
               "medians": {name: {"qfx": qv, "hls4ml": hv} for name, qv, hv in rows},
               "qfx_bit_exact": exact, "qfx_max_abs_diff_float": q_diff,
               "hls4ml_max_abs_diff_float": h_diff if h_reps else None, "verdicts": verdicts}
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
