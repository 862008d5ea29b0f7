"""Throughput of qfx's training fake-quantisation against a plain PyTorch reference (issue #2).

What is measured (``--elements`` float32 values, 2**24 = 16.8M by default):

``train per-tensor``
    ``FixedQuantizer(8, int_bits=3)`` in training mode, forward + backward. The backward pass
    produces both the straight-through gradient for ``x`` and the TQT/LSQ gradient for the
    learned binary point ``log2_lsb``.
``train per-channel``
    The same on a ``(N, 256, 32, 32)`` tensor with ``per_channel=True, channel_dim=1``
    (binary points differ between channels).
``eval per-tensor``
    ``quantizer.eval()(x)``: the exact ap_fixed quantisation (int64 arithmetic, float64
    result), forward only, under ``torch.no_grad()``.
``eval learned width``
    The same for a ``WidthQuantizer`` (learned width, calibrated to the data at 8 bits): the
    exact value in its learned format, as a learned-width model's eval forward computes it.

The peer ("reference") is what one writes by hand in plain PyTorch with a *fixed* scale ``s``
(the same power of two the quantizer uses, per channel where qfx is per channel)::

    q = torch.clamp(torch.round(x / s), qmin, qmax) * s
    y = x + (q - x).detach()                       # --reference detach (default)

or, with ``--reference round-ste``, a straight-through round inside the clamp, which (like
qfx) zeroes the gradient of clipped values::

    v = x / s
    y = torch.clamp(v + (torch.round(v) - v).detach(), qmin, qmax) * s

For the train rows the reference runs forward + backward through ``x``; for the eval row it
runs the forward only, under ``torch.no_grad()``.

How to read the table: each column is the median over ``--reps`` repetitions, taken after
``--warmup`` untimed runs. The qfx and reference calls are interleaved (qfx, ref, qfx, ref,
...) so that noise from a shared machine falls on both alike. ``ratio`` is
``qfx median / reference median``: 1.0 means qfx costs the same as the hand-written
fake-quant, 2.0 means it takes twice as long. The qfx training path does strictly more work
than the reference (a learned binary point with its own gradient, ap_fixed rounding and
overflow modes, gradient gating), so a ratio somewhat above 1 is expected; the eval row
compares bit-exact int64 emulation with float rounding and is expected to be far above 1.
``paired`` is the median of the per-repetition ratios (each qfx run divided by the
reference run right after it), which is less sensitive to slow drifts in machine load.
``Melem/s`` is elements per second, in millions.

Run from the repository root (as a module, so that the checkout's ``qfx`` is importable)::

    python -m benchmarks.bench_fake_quant                       # CPU, 2 threads, 7 reps
    python -m benchmarks.bench_fake_quant --device cuda --json results.json

``--json`` also records the per-repetition times and which qfx code was measured (git commit,
uncommitted files under qfx/, hashes of qfx/fixed/*.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import qfx
from qfx import FixedQuantizer

WIDTH = 8
INT_BITS = 3
CHANNELS = 256
SPATIAL = (32, 32)
QMIN = float(-(2 ** (WIDTH - 1)))
QMAX = float(2 ** (WIDTH - 1) - 1)


@dataclass
class Result:
    """Timings of one benchmark case (seconds)."""

    case: str
    shape: list[int]
    elements: int
    qfx_median_s: float
    ref_median_s: float
    ratio: float
    paired_ratio: float
    qfx_elements_per_s: float
    ref_elements_per_s: float
    qfx_times_s: list[float] = field(default_factory=list)
    ref_times_s: list[float] = field(default_factory=list)


@dataclass
class Case:
    """A pair of callables to compare; ``setup`` runs untimed before every call."""

    name: str
    x: torch.Tensor
    qfx: Callable[[], object]
    ref: Callable[[], object]
    setup: Callable[[], None] = lambda: None


def reference_fake_quant(x: torch.Tensor, s: torch.Tensor | float, variant: str) -> torch.Tensor:
    """Hand-written fake quantisation with a fixed scale ``s`` and a straight-through estimator."""
    if variant == "detach":
        q = torch.clamp(torch.round(x / s), QMIN, QMAX) * s
        return x + (q - x).detach()
    if variant == "round-ste":
        v = x / s
        return torch.clamp(v + (torch.round(v) - v).detach(), QMIN, QMAX) * s
    raise ValueError(f"unknown reference variant {variant!r}")


def channel_shape(elements: int) -> tuple[int, ...]:
    """A conv-activation-like shape with ``CHANNELS`` channels on dim 1 and ~``elements`` values."""
    per_sample = CHANNELS * SPATIAL[0] * SPATIAL[1]
    if elements % per_sample == 0:
        return (elements // per_sample, CHANNELS, *SPATIAL)
    if elements < CHANNELS:
        raise SystemExit(f"--elements must be at least {CHANNELS}")
    return (1, CHANNELS, elements // CHANNELS)


def check_agreement(name: str, got: torch.Tensor, want: torch.Tensor, lsb: torch.Tensor) -> None:
    """Both sides must quantise to the same grid: they may differ only on exact ties.

    qfx uses AP_RND (ties up), torch.round ties to even, so a tie can differ by one step.
    """
    diff = (got.detach().double() - want.detach().double()).abs()
    bad = diff > lsb.double() * (1 + 1e-9)
    if bool(bad.any()):
        raise SystemExit(f"{name}: qfx and the reference disagree by more than one step")


def build_cases(args: argparse.Namespace, device: torch.device) -> list[Case]:
    gen = torch.Generator(device="cpu").manual_seed(0)
    n = args.elements
    cases: list[Case] = []

    # ---- per-tensor, training: forward + backward
    x_t = (torch.randn(n, generator=gen) * 2.0).to(device).requires_grad_()
    g_t = torch.randn(n, generator=gen).to(device)
    q_t = FixedQuantizer(WIDTH, signed=True, rounding="RND", overflow="SAT", int_bits=INT_BITS)
    q_t.to(device).train()
    s_t = 2.0 ** (INT_BITS - WIDTH)
    check_agreement("train per-tensor", q_t(x_t), reference_fake_quant(x_t, s_t, args.reference),
                    torch.tensor(s_t))

    def setup_t() -> None:
        x_t.grad = None
        q_t.zero_grad(set_to_none=True)

    cases.append(Case(
        "train per-tensor", x_t,
        qfx=lambda: q_t(x_t).backward(g_t),
        ref=lambda: reference_fake_quant(x_t, s_t, args.reference).backward(g_t),
        setup=setup_t,
    ))

    # ---- per-channel (channel_dim=1), training: forward + backward
    shape = channel_shape(n)
    x_c = (torch.randn(shape, generator=gen) * 2.0).to(device).requires_grad_()
    g_c = torch.randn(shape, generator=gen).to(device)
    q_c = FixedQuantizer(WIDTH, signed=True, rounding="RND", overflow="SAT", int_bits=INT_BITS,
                         per_channel=True, num_channels=CHANNELS, channel_dim=1)
    # Binary points that differ between channels: int_bits in {2, 3, 4}.
    p_c = torch.tensor([INT_BITS - WIDTH + (c % 3) - 1 for c in range(CHANNELS)],
                       dtype=torch.float32)
    with torch.no_grad():
        q_c.log2_lsb.copy_(p_c)
    q_c.to(device).train()
    bshape = [1] * len(shape)
    bshape[1] = CHANNELS
    s_c = torch.exp2(p_c).reshape(bshape).to(device)
    check_agreement("train per-channel", q_c(x_c),
                    reference_fake_quant(x_c, s_c, args.reference), s_c)

    def setup_c() -> None:
        x_c.grad = None
        q_c.zero_grad(set_to_none=True)

    cases.append(Case(
        "train per-channel", x_c,
        qfx=lambda: q_c(x_c).backward(g_c),
        ref=lambda: reference_fake_quant(x_c, s_c, args.reference).backward(g_c),
        setup=setup_c,
    ))

    # ---- per-tensor, eval: exact ap_fixed (int64) vs. the reference forward
    if not args.no_eval:
        x_e = x_t.detach()
        q_e = FixedQuantizer(WIDTH, signed=True, rounding="RND", overflow="SAT",
                             int_bits=INT_BITS).to(device).eval()

        def ref_eval() -> torch.Tensor:
            with torch.no_grad():
                return torch.clamp(torch.round(x_e / s_t), QMIN, QMAX) * s_t

        def qfx_eval() -> torch.Tensor:
            with torch.no_grad():
                return q_e(x_e)

        check_agreement("eval per-tensor", qfx_eval(), ref_eval(), torch.tensor(s_t))
        cases.append(Case("eval per-tensor", x_e, qfx=qfx_eval, ref=ref_eval))

        # ---- learned width (an activation, calibrated to the data at WIDTH bits), eval:
        # the exact value of each granule's format (qfx.fixed.learned_width.to_int)
        from qfx.fixed.learned_width import WidthQuantizer

        q_w = WidthQuantizer(WIDTH, signed=True, rounding="RND", role="activation")
        q_w.calibrate(x_e.cpu())
        q_w.to(device).eval()
        s_w = float(2.0 ** torch.round(q_w.log2_lsb.detach()).item())

        def ref_width() -> torch.Tensor:
            with torch.no_grad():
                return torch.clamp(torch.round(x_e / s_w), QMIN, QMAX) * s_w

        def qfx_width() -> torch.Tensor:
            with torch.no_grad():
                return q_w(x_e)

        check_agreement("eval learned width", qfx_width(), ref_width(), torch.tensor(s_w))
        cases.append(Case("eval learned width", x_e, qfx=qfx_width, ref=ref_width))
    return cases


def timed(fn: Callable[[], object], setup: Callable[[], None], device: torch.device) -> float:
    setup()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def run_case(case: Case, reps: int, warmup: int, device: torch.device) -> Result:
    for _ in range(warmup):
        timed(case.qfx, case.setup, device)
        timed(case.ref, case.setup, device)
    qfx_times: list[float] = []
    ref_times: list[float] = []
    for _ in range(reps):  # interleaved: A B A B ...
        qfx_times.append(timed(case.qfx, case.setup, device))
        ref_times.append(timed(case.ref, case.setup, device))
    n = case.x.numel()
    qm, rm = statistics.median(qfx_times), statistics.median(ref_times)
    paired = statistics.median(a / b for a, b in zip(qfx_times, ref_times, strict=True))
    return Result(case.name, list(case.x.shape), n, qm, rm, qm / rm, paired, n / qm, n / rm,
                  qfx_times, ref_times)


def format_table(results: list[Result]) -> str:
    head = (f"{'case':<20}{'elements':>11}{'qfx median':>13}{'ref median':>13}{'ratio':>8}"
            f"{'paired':>8}{'qfx Melem/s':>13}{'ref Melem/s':>13}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.case:<20}{r.elements:>11d}{r.qfx_median_s * 1e3:>10.1f} ms"
            f"{r.ref_median_s * 1e3:>10.1f} ms{r.ratio:>8.2f}{r.paired_ratio:>8.2f}"
            f"{r.qfx_elements_per_s / 1e6:>13.1f}{r.ref_elements_per_s / 1e6:>13.1f}"
        )
    return "\n".join(lines)


def source_state() -> dict[str, object]:
    """Which qfx code was measured: git commit, uncommitted changes, hashes of qfx/fixed/*.py."""
    pkg = Path(qfx.__file__).resolve().parent
    state: dict[str, object] = {
        "qfx_fixed_sha256": {
            f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:16]
            for f in sorted((pkg / "fixed").glob("*.py"))
        }
    }
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=pkg, capture_output=True,
                              text=True, check=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=pkg,
                               capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return state
    state["git_commit"] = head.stdout.strip()
    state["qfx_uncommitted"] = [line[3:] for line in dirty.stdout.splitlines()]
    return state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", type=int, default=1 << 24,
                    help="float32 elements per tensor (default 2**24 = 16777216)")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per side (default 7)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs per side (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--reference", choices=["detach", "round-ste"], default="detach",
                    help="straight-through style of the plain-PyTorch reference")
    ap.add_argument("--no-eval", action="store_true",
                    help="skip the (slow) eval-mode exact quantisation row")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.reps < 1 or args.warmup < 0 or args.threads < 1 or args.elements < 1:
        ap.error("--reps, --threads and --elements must be positive, --warmup non-negative")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda requested but torch.cuda.is_available() is False")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = {
        "elements": args.elements, "reps": args.reps, "warmup": args.warmup,
        "threads": args.threads, "device": args.device, "reference": args.reference,
        "format": f"ap_fixed<{WIDTH},{INT_BITS},AP_RND,AP_SAT>", "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "source": source_state(),
    }
    print(f"qfx fake-quant benchmark: {args.elements} elements, device={args.device}, "
          f"threads={args.threads}, reps={args.reps}, warmup={args.warmup}, "
          f"reference={args.reference}, torch {torch.__version__}", flush=True)
    results = []
    for case in build_cases(args, device):
        results.append(run_case(case, args.reps, args.warmup, device))
        print(f"  done: {case.name}", file=sys.stderr, flush=True)
    print(format_table(results))
    if args.json is not None:
        payload = {"config": config, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
