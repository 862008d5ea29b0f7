"""Oracle tests: qfx's ``FixedType`` against the real ``ap_fixed.h`` compiled with g++.

The headers are the ones shipped inside the installed ``hls4ml`` package
(``hls4ml/templates/vivado/ap_types``). The tests generate C++ programs from a deterministic,
seeded plan of types, compile them once (content-hash cached, so a re-run does not recompile),
run them on hex-encoded inputs and compare the raw mantissas they print with the Python
emulation, bit for bit, with ``==``:

* ``T v = (double)x;`` for every rounding x overflow mode, signed and unsigned, widths 1..62,
  integer bits -8..W+8 and saturation bits N > 0 (``to_int``, ``quantize``);
* ``D d = s;`` fixed-to-fixed casts, the way exported HLS code casts accumulators to layer
  outputs (``cast_int``);
* the result types of ``a*b``, ``a+b``, ``a-b`` and ``-a`` (``FixedType.mul/add/sub/neg``);
* that the C++ spelling ``FixedType.cpp()`` names the same C++ type.

The oracle is compiled with ``-DNDEBUG``: without it, ``ap_private::get_bit``'s bounds assert
aborts any rounding cast whose source lies entirely below the target's half LSB
(``F_src - F_dst > W_src``) even though the value the header computes is well defined.
"""

from __future__ import annotations

import math
import os
import random
import struct
import subprocess
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from qfx import FixedType
from qfx.csim import toolchain
from qfx.csim.toolchain import (
    CompileError,
    CompileTimeout,
    ap_types_include_dir,
    cached_build,
    compile_cpp,
)

ROUNDINGS = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOWS = ("SAT", "SAT_ZERO", "SAT_SYM", "WRAP", "WRAP_SM")
MAX_W = 62
KEY_WIDTHS = (1, 2, 3, 5, 8, 13, 16, 24, 31, 32, 33, 40, 53, 54, 61, 62)
SEED = 20240611

ORACLE_FLAGS = ("-O1", "-std=c++14", "-DNDEBUG")
TYPES_PER_COMBO = 6  # (W, I) pairs per (signedness, rounding, overflow) for double -> fixed
SAT_BITS_PER_COMBO = 3  # extra N > 0 types per WRAP / WRAP_SM combination
TINY_WIDTHS = (1, 2)  # extra widths given to every combination
CASTS_PER_COMBO = 4  # (source, target) pairs per target (signedness, rounding, overflow)
CONV_CHUNKS = 4  # translation units (separate programs) for the double constructor
CAST_CHUNKS = 4  # ... and for the fixed-to-fixed casts
MAX_REPORTED = 12  # mismatches quoted in a failure message


# ----------------------------------------------------------------------------- the type plan
@dataclass(frozen=True)
class Spec:
    """A C++ fixed-point type, described independently of the implementation under test."""

    width: int
    int_bits: int
    signed: bool
    rounding: str = "TRN"
    overflow: str = "WRAP"
    sat_bits: int = 0

    def cpp(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return (
            f"{kind}<{self.width},{self.int_bits},AP_{self.rounding},AP_{self.overflow},"
            f"{self.sat_bits}>"
        )

    @property
    def frac_bits(self) -> int:
        return self.width - self.int_bits

    @property
    def raw_min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def combo(self) -> tuple[bool, str, str]:
        return (self.signed, self.rounding, self.overflow)

    def fixed(self) -> FixedType:
        return FixedType(
            self.width,
            self.int_bits,
            signed=self.signed,
            rounding=self.rounding,
            overflow=self.overflow,
            sat_bits=self.sat_bits,
        )


def _combos() -> list[tuple[bool, str, str]]:
    return [
        (signed, q, o)
        for signed in (True, False)
        for q in ROUNDINGS
        for o in OVERFLOWS
        if signed or o != "WRAP_SM"
    ]


COMBOS = _combos()
I_CATEGORIES = ("min", "neg", "zero", "one", "inside", "full", "above", "max")


def _int_bits(width: int, category: str, rng: random.Random) -> int:
    if category == "min":
        return -8
    if category == "neg":
        return rng.randint(-7, -1)
    if category == "zero":
        return 0
    if category == "one":
        return 1
    if category == "inside":
        return rng.randint(1, width - 1) if width > 2 else width
    if category == "full":
        return width
    if category == "above":
        return rng.randint(width + 1, width + 7)
    return width + 8


class _WidthPool:
    """Cycles through every width 1..62 (shuffled) plus the key widths, so the union is total."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._queue: list[int] = []

    def next(self) -> int:
        if not self._queue:
            widths = list(range(1, MAX_W + 1)) + list(KEY_WIDTHS)
            self._rng.shuffle(widths)
            self._queue = widths
        return self._queue.pop()


def _conversion_plan() -> list[Spec]:
    rng = random.Random(f"{SEED}:conv")
    pool = _WidthPool(rng)
    specs: list[Spec] = []
    slot = 0
    for signed, q, o in COMBOS:
        for _ in range(TYPES_PER_COMBO):
            w = pool.next()
            i = _int_bits(w, I_CATEGORIES[slot % len(I_CATEGORIES)], rng)
            slot += 1
            specs.append(Spec(w, i, signed, q, o, 0))
        if o in ("WRAP", "WRAP_SM"):
            for k in range(SAT_BITS_PER_COMBO):
                w = rng.choice([kw for kw in KEY_WIDTHS if kw > 1] + [rng.randint(2, MAX_W)])
                n = (1, w, rng.randint(2, w))[k % 3]
                i = _int_bits(w, rng.choice(I_CATEGORIES), rng)
                specs.append(Spec(w, i, signed, q, o, n))
        elif q == "RND_CONV":
            # N is meaningless for the SAT modes; the header ignores it and so must qfx.
            w = rng.randint(2, MAX_W)
            specs.append(Spec(w, _int_bits(w, "inside", rng), signed, q, o, rng.randint(1, w)))
        for w in TINY_WIDTHS:  # the most corner-prone widths, for every combination
            specs.append(Spec(w, _int_bits(w, rng.choice(I_CATEGORIES), rng), signed, q, o, 0))
    return list(dict.fromkeys(specs))


def _random_type(rng: random.Random, width: int, int_bits: int, signed: bool | None = None) -> Spec:
    q = rng.choice(ROUNDINGS)
    signed = rng.random() < 0.5 if signed is None else signed
    o = rng.choice(OVERFLOWS if signed else OVERFLOWS[:4])
    n = rng.randint(1, width) if o in ("WRAP", "WRAP_SM") and rng.random() < 0.3 else 0
    return Spec(width, int_bits, signed, q, o, n)


CAST_KINDS = ("round", "accumulator", "shift_left", "below_half_lsb", "same_grid", "random")


def _cast_source(dst: Spec, kind: str, rng: random.Random) -> Spec | None:
    f = dst.frac_bits
    if kind == "round":  # more fractional bits, no more integer bits
        i2 = dst.int_bits - rng.randint(0, 4)
        f2 = f + rng.randint(1, 12)
    elif kind == "accumulator":  # wider on both sides: rounding and overflow together
        i2 = dst.int_bits + rng.randint(1, 12)
        f2 = f + rng.randint(0, 14)
    elif kind == "shift_left":  # fewer fractional bits: exact shift, maybe overflow
        i2 = dst.int_bits + rng.randint(-3, 10)
        f2 = f - rng.randint(1, 10)
    elif kind == "below_half_lsb":  # the whole source is below the target's half LSB
        w2 = rng.randint(1, 12)
        f2 = f + w2 + rng.randint(1, 6)
        i2 = w2 - f2
    elif kind == "same_grid":
        i2 = dst.int_bits + rng.randint(-6, 6)
        f2 = f
    else:
        w2 = rng.randint(1, MAX_W)
        i2 = rng.randint(-8, w2 + 8)
        f2 = w2 - i2
    w2 = i2 + f2
    if not 1 <= w2 <= MAX_W:
        return None
    return _random_type(rng, w2, i2)


def _cast_plan(conversions: Sequence[Spec]) -> list[tuple[Spec, Spec]]:
    rng = random.Random(f"{SEED}:cast")
    by_combo: dict[tuple[bool, str, str], list[Spec]] = {}
    for spec in conversions:
        by_combo.setdefault(spec.combo, []).append(spec)
    pairs: list[tuple[Spec, Spec]] = []
    slot = 0
    for combo in COMBOS:
        # A few of the regular targets, then every extra one (N > 0, tiny widths).
        targets = by_combo[combo]
        for dst in targets[:CASTS_PER_COMBO] + targets[TYPES_PER_COMBO:]:
            kind = CAST_KINDS[slot % len(CAST_KINDS)]
            slot += 1
            src = None
            for attempt in range(100):  # some kinds are impossible for some targets (W = 62)
                src = _cast_source(dst, kind if attempt < 50 else "random", rng)
                if src is not None:
                    break
            assert src is not None
            pairs.append((dst, src))
    return list(dict.fromkeys(pairs))


def _result_type_plan() -> list[tuple[Spec, Spec]]:
    rng = random.Random(f"{SEED}:results")
    hand = [
        (Spec(8, 3, True), Spec(8, 3, False)),
        (Spec(8, 3, False), Spec(8, 3, True)),
        (Spec(1, 1, False), Spec(1, 1, True)),
        (Spec(1, 1, True), Spec(1, 1, True)),
        (Spec(5, -2, False), Spec(6, 9, True)),
        (Spec(16, -4, True), Spec(16, 20, False)),
        (Spec(10, 18, False), Spec(12, -8, False)),
        (Spec(4, 12, True), Spec(3, -5, True)),
        (Spec(30, 30, False), Spec(29, 0, True)),
        (Spec(20, 28, True), Spec(12, -8, False)),
    ]
    assert all(_fits(a, b) for a, b in hand)
    pairs = list(hand)
    signs = [(True, True), (True, False), (False, True), (False, False)]
    while len(pairs) < 160:
        sa, sb = signs[len(pairs) % 4]
        wa, wb = rng.randint(1, 31), rng.randint(1, 31)
        a = _random_type(rng, wa, rng.randint(-8, wa + 8), sa)
        b = _random_type(rng, wb, rng.randint(-8, wb + 8), sb)
        if _fits(a, b):
            pairs.append((a, b))
    return pairs


def _fits(a: Spec, b: Spec) -> bool:
    """Whether every result type stays within 62 bits (qfx's limit). Only used to choose the
    plan; the compiler supplies the expected result types."""
    i = max(a.int_bits + (b.signed and not a.signed), b.int_bits + (a.signed and not b.signed)) + 1
    return max(a.width + b.width, i + max(a.frac_bits, b.frac_bits), a.width + 1) <= MAX_W


CONVERSIONS = _conversion_plan()
CASTS = _cast_plan(CONVERSIONS)
RESULT_PAIRS = _result_type_plan()


# ----------------------------------------------------------------------------- test inputs
def _double_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _dyadic(num: int, exp: int, den: int = 1) -> float:
    """The double nearest to ``num / den * 2**exp`` (correctly rounded)."""
    return float(Fraction(num, den) * Fraction(2) ** exp)


_SPECIAL_DOUBLES = (
    0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308,
    1e-300, -1e-300, 1e-20, -1e-20, 0.5, -0.5, 0.75, -0.75, 1.0, -1.0, 1.5, -1.5, 2.5, -2.5,
    3.0, -3.0, 2.0**62, -(2.0**62), 2.0**63, -(2.0**63), 2.0**64, -(2.0**64), 2.0**70,
    -(2.0**70), 1e300, -1e300, sys.float_info.max, -sys.float_info.max,
)  # fmt: skip


def _values_for(spec: Spec) -> list[float]:
    """Doubles that probe ``spec``: ties, boundaries, overflow, specials, many scales."""
    rng = random.Random(f"{SEED}:values:{spec.cpp()}")
    e = -spec.frac_bits  # exponent of the LSB
    lo, hi, w = spec.raw_min, spec.raw_max, spec.width
    vals: list[float] = list(_SPECIAL_DOUBLES)
    # Exact min / max, one LSB outside, and quarter-LSB steps (ties at +-1/2) around them and 0.
    anchors = [lo, hi, 0, 1, -1] + ([-hi] if spec.signed else [])
    for r in anchors:
        vals += [_dyadic(4 * r + q, e, 4) for q in range(-6, 7)]
    # Ties k + 1/2 for many k (both signs, in range and beyond), and their neighbour doubles.
    for _ in range(28):
        bits = rng.randint(0, min(w + 2, 52))
        k = rng.getrandbits(bits) if bits else 0
        k = -k - 1 if rng.random() < 0.5 else k
        tie = _dyadic(2 * k + 1, e, 2)
        vals += [tie, math.nextafter(tie, math.inf), math.nextafter(tie, -math.inf)]
    for r in (hi, lo, 0, -1):
        tie = _dyadic(2 * r + 1, e, 2)
        vals += [math.nextafter(tie, math.inf), math.nextafter(tie, -math.inf)]
    # Overflow / wrap-around: in-range raw values shifted by multiples of 2**W, +- fractions.
    for m in (1, -1, 2, -2, 3, -5, 1 << 20, -(1 << 20)):
        r = rng.randint(lo, hi) + m * (1 << w)
        vals.append(_dyadic(4 * r + rng.randint(-3, 3), e, 4))
    # Random doubles at every scale around the type, and across the whole double range.
    for exp in range(e - 12, spec.int_bits + 14):
        vals.append(math.ldexp(rng.choice((1, -1)) * (1 + rng.random()), exp))
    for _ in range(10):
        vals.append(math.ldexp(rng.choice((1, -1)) * (1 + rng.random()), rng.randint(-1074, 1023)))
    for _ in range(12):
        vals.append(_dyadic(rng.randint(lo - 2, hi + 2) * 1024 + rng.randint(0, 1023), e, 1024))
    out: dict[int, float] = {}
    for v in vals:
        out.setdefault(_double_bits(v), v)  # dedupe by bit pattern (keeps -0.0 and 0.0)
    return list(out.values())


def _raws_for_cast(dst: Spec, src: Spec) -> list[int]:
    """Raw source mantissas that probe the cast: ties, boundaries of the target, wrap regions."""
    rng = random.Random(f"{SEED}:raws:{dst.cpp()}:{src.cpp()}")
    lo, hi = src.raw_min, src.raw_max
    d = src.frac_bits - dst.frac_bits  # source LSBs per target LSB is 2**d
    raws = [lo, lo + 1, lo + 2, hi, hi - 1, hi - 2, 0, 1, -1, 2, -2]
    if d > 0:
        half = 1 << (d - 1)
        steps = (0, 1, -1, half, half + 1, half - 1, -half, -half + 1, -half - 1, 1 << d)
        for r in (dst.raw_min, dst.raw_max, -dst.raw_max, 0, -1, 1):
            raws += [(r << d) + s for s in steps]
        for _ in range(30):  # ties for many k, both signs, from across the source range
            k = rng.randint(lo, hi) >> d
            raws += [(k << d) + half, (k << d) + half + 1, (k << d) + half - 1]
        for m in (1, -1, 2, -3):
            r = rng.randint(dst.raw_min, dst.raw_max) + m * (1 << dst.width)
            raws += [(r << d) + s for s in (0, half, rng.randint(0, (1 << d) - 1))]
    else:
        for r in (dst.raw_min, dst.raw_max, -dst.raw_max, 0):
            c = r >> -d
            raws += [c - 2, c - 1, c, c + 1, c + 2]
        for m in (1, -1, 2, -3):
            r = rng.randint(dst.raw_min, dst.raw_max) + m * (1 << dst.width)
            raws += [(r >> -d) + s for s in (-1, 0, 1)]
    for _ in range(30):
        raws.append(rng.randint(lo, hi))
    for _ in range(20):
        bits = rng.randint(0, src.width)
        raws.append(rng.getrandbits(bits) * (-1 if src.signed and rng.random() < 0.5 else 1))
    return list(dict.fromkeys(r for r in raws if lo <= r <= hi))


# ----------------------------------------------------------------------------- C++ programs
_CPP_PRELUDE = r"""#include <ap_fixed.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

// Raw bits of v as a 64-bit integer: sign-extended for signed types, zero-extended otherwise.
template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
static long long raw_of(const ap_fixed_base<W, I, S, Q, O, N>& v) {
  const unsigned long long mask = (W >= 64) ? ~0ULL : ((1ULL << W) - 1ULL);
  unsigned long long u = v.V.to_uint64() & mask;
  if (S && W < 64 && ((u >> (W - 1)) & 1ULL)) u |= ~mask;
  return (long long)u;
}

// v.V = raw (two's complement, truncated to W bits).
template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
static void set_raw(ap_fixed_base<W, I, S, Q, O, N>& v, unsigned long long raw) {
  ap_int_base<W, S> t = (ap_slong)raw;
  v.V = t.V;
}

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
static int is_signed_fx(const ap_fixed_base<W, I, S, Q, O, N>*) { return S ? 1 : 0; }

static unsigned long long read_hex(FILE* f) {
  unsigned long long b;
  if (std::fscanf(f, "%llx", &b) != 1) {
    std::fprintf(stderr, "oracle: malformed input\n");
    std::exit(3);
  }
  return b;
}

// T v = (double)x;
template <class T>
static void conv(FILE* f, int n) {
  for (int i = 0; i < n; ++i) {
    unsigned long long b = read_hex(f);
    double x;
    std::memcpy(&x, &b, sizeof x);
    T v = x;
    std::printf("%lld\n", raw_of(v));
  }
}

// D d = s; (prints the source raw back, then the target raw)
template <class D, class S>
static void cast(FILE* f, int n) {
  for (int i = 0; i < n; ++i) {
    S s;
    set_raw(s, read_hex(f));
    D d = s;
    std::printf("%lld %lld\n", raw_of(s), raw_of(d));
  }
}

template <class R>
static void show(int id, const char* op) {
  std::printf("%d %s %d %d %d\n", id, op, (int)R::width, (int)R::iwidth,
              is_signed_fx((R*)nullptr));
}

template <class A, class B>
static void result_types(int id) {
  show<decltype(std::declval<A&>() * std::declval<B&>())>(id, "mul");
  show<decltype(std::declval<A&>() + std::declval<B&>())>(id, "add");
  show<decltype(std::declval<A&>() - std::declval<B&>())>(id, "sub");
  show<decltype(-std::declval<A&>())>(id, "neg");
}
"""


def _dispatch_program(cases: Sequence[str]) -> str:
    """A program whose stdin-free main reads ``case_id count`` blocks from argv[1]."""
    body = "\n".join(f"      case {i}: {c}; break;" for i, c in enumerate(cases))
    return (
        _CPP_PRELUDE
        + "\nint main(int argc, char** argv) {\n"
        + '  FILE* f = argc > 1 ? std::fopen(argv[1], "r") : nullptr;\n'
        + "  if (!f) return 2;\n"
        + "  int id, n;\n"
        + '  while (std::fscanf(f, "%d %d", &id, &n) == 2) {\n'
        + "    switch (id) {\n"
        + body
        + "\n      default: return 4;\n    }\n  }\n  return 0;\n}\n"
    )


def conversion_program(specs: Sequence[Spec]) -> str:
    return _dispatch_program([f"conv<{s.cpp()} >(f, n)" for s in specs])


def cast_program(pairs: Sequence[tuple[Spec, Spec]]) -> str:
    return _dispatch_program([f"cast<{d.cpp()}, {s.cpp()} >(f, n)" for d, s in pairs])


def result_type_program(pairs: Sequence[tuple[Spec, Spec]]) -> str:
    calls = "\n".join(
        f"  result_types<{a.cpp()}, {b.cpp()} >({i});" for i, (a, b) in enumerate(pairs)
    )
    return _CPP_PRELUDE + "\nint main() {\n" + calls + "\n  return 0;\n}\n"


def _chunks(items: Sequence, n: int) -> list[list]:
    return [list(items[k::n]) for k in range(n) if items[k::n]]


# ----------------------------------------------------------------------------- the oracle run
@dataclass
class Oracle:
    conversions: dict[Spec, tuple[np.ndarray, np.ndarray]]  # spec -> (x float64, expected raw)
    casts: dict[tuple[Spec, Spec], tuple[np.ndarray, np.ndarray]]  # -> (src raw, expected raw)
    result_types: dict[tuple[Spec, Spec], dict[str, tuple[int, int, bool]]]


def _run(exe: Path, args: Sequence[str]) -> str:
    proc = subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"oracle program {exe} exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def _write_input(path: Path, blocks: Iterable[Sequence[int]]) -> None:
    lines = []
    for case_id, words in enumerate(blocks):
        lines.append(f"{case_id} {len(words)}")
        lines.append(" ".join(f"{w & 0xFFFFFFFFFFFFFFFF:x}" for w in words))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    include = ap_types_include_dir()
    work = tmp_path_factory.mktemp("ap_fixed_oracle")
    conv_chunks = _chunks(CONVERSIONS, CONV_CHUNKS)
    cast_chunks = _chunks(CASTS, CAST_CHUNKS)
    jobs: list[tuple[str, str]] = [("results", result_type_program(RESULT_PAIRS))]
    jobs += [(f"conv{k}", conversion_program(c)) for k, c in enumerate(conv_chunks)]
    jobs += [(f"cast{k}", cast_program(c)) for k, c in enumerate(cast_chunks)]

    def build(job: tuple[str, str]) -> Path:
        return cached_build(job[1], include_dirs=[include], flags=ORACLE_FLAGS)

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        exes = dict(zip([name for name, _ in jobs], pool.map(build, jobs), strict=True))

    conversions: dict[Spec, tuple[np.ndarray, np.ndarray]] = {}
    for k, chunk in enumerate(conv_chunks):
        values = [np.array(_values_for(s), dtype=np.float64) for s in chunk]
        path = work / f"conv{k}.txt"
        _write_input(path, [[int(b) for b in v.view(np.uint64)] for v in values])
        out = np.array(_run(exes[f"conv{k}"], [str(path)]).split(), dtype=np.int64)
        assert out.size == sum(v.size for v in values), "oracle printed the wrong count"
        start = 0
        for spec, v in zip(chunk, values, strict=True):
            conversions[spec] = (v, out[start : start + v.size])
            start += v.size

    casts: dict[tuple[Spec, Spec], tuple[np.ndarray, np.ndarray]] = {}
    for k, chunk in enumerate(cast_chunks):
        raws = [np.array(_raws_for_cast(d, s), dtype=np.int64) for d, s in chunk]
        path = work / f"cast{k}.txt"
        _write_input(path, [[int(r) for r in rr] for rr in raws])
        out = np.array(_run(exes[f"cast{k}"], [str(path)]).split(), dtype=np.int64).reshape(-1, 2)
        assert out.shape[0] == sum(r.size for r in raws), "oracle printed the wrong count"
        start = 0
        for pair, rr in zip(chunk, raws, strict=True):
            echoed, expected = out[start : start + rr.size, 0], out[start : start + rr.size, 1]
            assert np.array_equal(echoed, rr), f"oracle did not read back source raws of {pair}"
            casts[pair] = (rr, expected.copy())
            start += rr.size

    result_types: dict[tuple[Spec, Spec], dict[str, tuple[int, int, bool]]] = {}
    for line in _run(exes["results"], []).splitlines():
        idx, op, w, i, s = line.split()
        result_types.setdefault(RESULT_PAIRS[int(idx)], {})[op] = (int(w), int(i), s == "1")
    assert len(result_types) == len(RESULT_PAIRS)
    return Oracle(conversions, casts, result_types)


# ----------------------------------------------------------------------------- helpers
def _combo_id(combo: tuple[bool, str, str]) -> str:
    signed, q, o = combo
    return f"{'s' if signed else 'u'}-{q}-{o}"


def _as_numpy_int64(got: object, what: str) -> np.ndarray:
    assert isinstance(got, np.ndarray), f"{what} returned {type(got).__name__}, not numpy.ndarray"
    assert got.dtype == np.int64, f"{what} returned dtype {got.dtype}, not int64"
    return got


class _Mismatches:
    """Collects mismatches per case; the failure message quotes a few rows of each case."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.total = 0
        self.cases: list[tuple[str, int, list[str]]] = []

    def add(self, case: str, bad_mask: np.ndarray) -> list[int]:
        """Register a case; returns the indices (at most 3) whose rows the caller should add."""
        bad = np.flatnonzero(np.asarray(bad_mask))
        if bad.size == 0:
            return []
        self.total += int(bad.size)
        self.cases.append((case, int(bad.size), []))
        return [int(j) for j in bad[:3]]

    def row(self, text: str) -> None:
        self.cases[-1][2].append(text)

    def check(self) -> None:
        if not self.total:
            return
        lines = [
            f"{self.total} {self.title} mismatch(es) against ap_fixed.h in "
            f"{len(self.cases)} case(s):"
        ]
        for case, count, rows in self.cases[:MAX_REPORTED]:
            lines.append(f"  {case}: {count} mismatch(es)")
            lines += [f"      {r}" for r in rows]
        if len(self.cases) > MAX_REPORTED:
            lines.append(f"  ... and {len(self.cases) - MAX_REPORTED} more case(s)")
        pytest.fail("\n".join(lines), pytrace=False)


# ----------------------------------------------------------------------------- tests
def test_plan_covers_the_requirements() -> None:
    """The deterministic plan covers every mode combination, width and int_bits extreme."""
    assert len(COMBOS) == 63
    conv_combos = {s.combo for s in CONVERSIONS}
    assert conv_combos == set(COMBOS)
    assert {d.combo for d, _ in CASTS} == set(COMBOS)
    assert {s.width for s in CONVERSIONS} == set(range(1, MAX_W + 1))
    assert set(KEY_WIDTHS) <= {s.width for s in CONVERSIONS if s.sat_bits == 0}
    for signed in (True, False):
        group = [s for s in CONVERSIONS if s.signed == signed]
        assert {s.int_bits - s.width for s in group} >= {8}, "needs I = W + 8"
        assert min(s.int_bits for s in group) == -8
        assert any(s.int_bits == 0 for s in group) and any(s.int_bits == s.width for s in group)
        assert any(0 < s.int_bits < s.width for s in group)
        assert any(s.width < s.int_bits < s.width + 8 for s in group)
        assert any(-8 < s.int_bits < 0 for s in group)
    for combo in COMBOS:
        group = [s for s in CONVERSIONS if s.combo == combo and s.sat_bits == 0]
        assert len({(s.width, s.int_bits) for s in group}) >= TYPES_PER_COMBO - 1, combo
        if combo[2] in ("WRAP", "WRAP_SM"):
            assert any(s.sat_bits > 0 for s in CONVERSIONS if s.combo == combo), combo
    assert {s.sat_bits > 0 for s in CONVERSIONS if s.overflow in ("SAT", "SAT_SYM")} == {
        True,
        False,
    }
    for kind_check in (
        lambda d, s: s.frac_bits > d.frac_bits and s.int_bits > d.int_bits,  # accumulator
        lambda d, s: s.frac_bits < d.frac_bits,  # exact left shift
        lambda d, s: s.frac_bits - d.frac_bits > s.width,  # below half an LSB
        lambda d, s: s.signed != d.signed,
    ):
        assert any(kind_check(d, s) for d, s in CASTS)
    # Every type is probed with -0.0, ties and huge values.
    values = _values_for(Spec(8, 3, True))
    assert any(math.copysign(1.0, v) < 0 and v == 0 for v in values)
    assert 1e300 in values and -1e300 in values and 2.0**70 in values and 5e-324 in values


def test_unsigned_wrap_sm_is_rejected() -> None:
    """AP_WRAP_SM does not exist for ap_ufixed (the header exits); qfx must refuse it."""
    for q in ROUNDINGS:
        with pytest.raises(ValueError):
            FixedType(8, 3, signed=False, rounding=q, overflow="WRAP_SM")
        with pytest.raises(ValueError):
            FixedType.parse(f"ap_ufixed<8,3,AP_{q},AP_WRAP_SM>")


def test_cpp_spelling_names_the_same_type() -> None:
    """``FixedType.cpp()`` (what the exporter writes) is the same C++ type as the full spelling,
    and both spellings parse back to the same FixedType."""
    specs = list(dict.fromkeys([*CONVERSIONS, *(s for pair in CASTS for s in pair)]))
    bad = []
    for spec in specs:
        t = spec.fixed()
        assert str(t) == t.cpp()
        parsed = FixedType.parse(spec.cpp())
        if parsed != t or hash(parsed) != hash(t) or FixedType.parse(t.cpp()) != t:
            bad.append(f"{spec.cpp()}: cpp()={t.cpp()!r} parse={parsed!r}")
    assert not bad, "\n".join(bad[:MAX_REPORTED])
    checks = "\n".join(
        f"  static_assert(std::is_same<{spec.cpp()}, {spec.fixed().cpp()} >::value, "
        f'"{spec.cpp()}");'
        for spec in specs
    )
    source = "#include <ap_fixed.h>\n#include <type_traits>\nint main() {\n" + checks + "\n}\n"
    cached_build(source, include_dirs=[ap_types_include_dir()], flags=("-std=c++14",))


@pytest.mark.parametrize("combo", COMBOS, ids=_combo_id)
def test_double_constructor_matches(oracle: Oracle, combo: tuple[bool, str, str]) -> None:
    """``FixedType.to_int(x)`` == the raw bits of ``T v = (double)x;`` (numpy and torch), and
    ``quantize`` gives the same values where they are exact doubles."""
    report = _Mismatches("double -> fixed")
    specs = [s for s in CONVERSIONS if s.combo == combo]
    assert specs
    for spec in specs:
        x, expected = oracle.conversions[spec]
        bits = x.view(np.uint64)
        t = spec.fixed()
        got = _as_numpy_int64(t.to_int(x.copy()), f"{t}.to_int")
        got_torch = t.to_int(torch.from_numpy(x.copy()))
        assert isinstance(got_torch, torch.Tensor) and got_torch.dtype == torch.int64
        for label, g in (("numpy", got), ("torch", got_torch.numpy())):
            for j in report.add(f"{spec.cpp()} to_int[{label}]", g != expected):
                report.row(f"x={float(x[j])!r} (0x{bits[j]:016x}) want={expected[j]} got={g[j]}")
        if spec.width <= 53:  # raw * lsb is an exact double
            want = np.ldexp(expected.astype(np.float64), -spec.frac_bits)
            q = np.asarray(t.quantize(x.copy()))
            for j in report.add(f"{spec.cpp()} quantize", q != want):
                report.row(
                    f"x={float(x[j])!r} (0x{bits[j]:016x}) expected={float(want[j])!r} "
                    f"got={float(q[j])!r}"
                )
    report.check()


@pytest.mark.parametrize("combo", COMBOS, ids=_combo_id)
def test_fixed_to_fixed_cast_matches(oracle: Oracle, combo: tuple[bool, str, str]) -> None:
    """``dst.cast_int(k, src)`` == the raw bits of ``D d = s;`` with ``s.V = k``."""
    report = _Mismatches("fixed -> fixed cast")
    pairs = [p for p in CASTS if p[0].combo == combo]
    assert pairs
    for dst, src in pairs:
        raws, expected = oracle.casts[(dst, src)]
        got = _as_numpy_int64(dst.fixed().cast_int(raws.copy(), src.fixed()), "cast_int")
        for j in report.add(f"{dst.cpp()} <- {src.cpp()}", got != expected):
            report.row(
                f"raw={raws[j]} (0x{int(raws[j]) & (2**64 - 1):016x}) "
                f"expected={expected[j]} got={got[j]}"
            )
    report.check()


def test_result_types_match(oracle: Oracle) -> None:
    """``FixedType.mul/add/sub/neg`` give the (W, I, signed) of ``a*b, a+b, a-b, -a``."""
    ops = {
        "mul": lambda a, b: FixedType.mul(a, b),
        "add": lambda a, b: FixedType.add(a, b),
        "sub": lambda a, b: FixedType.sub(a, b),
        "neg": lambda a, b: FixedType.neg(a),
    }
    rows: list[str] = []
    for (a, b), results in oracle.result_types.items():
        assert set(results) == set(ops)
        for op, fn in ops.items():
            r = fn(a.fixed(), b.fixed())
            got = (r.width, r.int_bits, r.signed)
            if got != results[op]:
                rows.append(f"{op}({a.cpp()}, {b.cpp()}): expected (W,I,S)={results[op]} got={got}")
    assert not rows, f"{len(rows)} result type mismatch(es):\n  " + "\n  ".join(rows[:30])


def test_oracle_size(oracle: Oracle) -> None:
    """Sanity: the oracle really ran the whole plan (guards against silently empty runs)."""
    n_conv = sum(x.size for x, _ in oracle.conversions.values())
    n_cast = sum(r.size for r, _ in oracle.casts.values())
    assert len(oracle.conversions) == len(CONVERSIONS) and n_conv > 50 * len(CONVERSIONS)
    assert len(oracle.casts) == len(CASTS) and n_cast > 30 * len(CASTS)


# ----------------------------------------------------------------------------- the toolchain
def test_toolchain_cache_reuses_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle's build cache: same inputs -> same executable, no second compile."""
    source = "#include <ap_fixed.h>\nint main() { ap_fixed<8, 3> x = 1.3; return x * 32; }\n"
    include = [ap_types_include_dir()]
    exe = cached_build(source, cache_dir=tmp_path, include_dirs=include)
    assert exe.parent.parent == tmp_path and (exe.parent / "main.cpp").read_text() == source
    assert subprocess.run([str(exe)], check=False).returncode == 41  # 1.3 -> 41/32 (AP_TRN)

    def no_compile(*args: object, **kwargs: object) -> Path:
        raise AssertionError("cached_build recompiled an unchanged program")

    monkeypatch.setattr(toolchain, "compile_cpp", no_compile)
    assert cached_build(source, cache_dir=tmp_path, include_dirs=include) == exe
    monkeypatch.undo()
    other = cached_build(source, cache_dir=tmp_path, include_dirs=include, flags=("-O0",))
    assert other != exe  # the flags are part of the key
    assert sorted(p.name for p in exe.parent.iterdir()) == ["main", "main.cpp"]


def test_toolchain_reports_compiler_errors(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as info:
        cached_build("int main() { return undeclared_name; }\n", cache_dir=tmp_path)
    assert "undeclared_name" in info.value.stderr and info.value.returncode not in (None, 0)
    assert not any(p.name == "main" for p in tmp_path.rglob("*"))  # no half-written executable
    include = ap_types_include_dir()
    source = tmp_path / "slow.cpp"
    source.write_text("#include <ap_fixed.h>\nint main() { ap_fixed<8, 3> x = 1.0; return 0; }\n")
    with pytest.raises(CompileTimeout):
        compile_cpp([source], tmp_path / "slow", include_dirs=[include], timeout=0.01)
