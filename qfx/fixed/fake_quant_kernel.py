"""One-pass C kernels for the training forward and backward of fake quantisation on the CPU.

:class:`qfx.fixed.fake_quant._FakeQuant` runs about seven elementwise torch kernels per
quantizer; this kernel reads ``x`` once and writes the output, the in-range mask and the
binary-point error ``err`` in the same loop, with exactly the float operations of
:class:`qfx.fixed.fake_quant._FakeQuantReference` in the same order (no fused multiply-add:
``-ffp-contract=off``, no fast-math), so every value is equal bit for bit. The backward reads
the incoming gradient once: the straight-through input gradient (the reference's, bit for bit)
and the binary-point sum ``sum(grad * err)`` per channel, accumulated in float64 in a fixed
order that does not depend on the thread count (the reference sums float32 products, or in
float32: the same sum, less accurately rounded).

The library is plain C (no torch headers: it builds in about a second), compiled with the
system's C compiler at first use, cached under ``$QFX_CACHE_DIR/../kernels`` or
``~/.cache/qfx/kernels`` keyed by the source, compiler and flags, and called through ctypes.
``QFX_FAKE_QUANT_KERNEL`` chooses: ``auto`` (default: use it if it builds, otherwise warn once
with the compiler's message and use the torch path, which gives the same values), ``c``
(require it: a failed build raises :class:`KernelBuildError`) or ``torch`` (never build).

Example:
    >>> import torch
    >>> from qfx.fixed.fake_quant import fake_quantize
    >>> p = torch.tensor(-2.0, requires_grad=True)
    >>> fake_quantize(torch.tensor([0.3, 9.0]), p, width=4, signed=True, rounding="RND",
    ...               overflow="SAT").tolist()
    [0.25, 1.75]
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["KernelBuildError", "kernel_mode", "load_kernel", "forward", "forward_scalar",
           "backward", "layout", "count_nonfinite"]

ROUNDING_IDS = {"TRN": 0, "TRN_ZERO": 1, "RND": 2, "RND_CONV": 3, "RND_MIN_INF": 4,
                "RND_ZERO": 5, "RND_INF": 6}
OVERFLOW_IDS = {"SAT": 0, "SAT_SYM": 1, "SAT_ZERO": 2, "WRAP": 3}
MODES = ("auto", "c", "torch")
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
          "-fopenmp",
          "-shared", "-fPIC", "-std=c99"]

# Every line mirrors a torch call of _FakeQuantReference.forward (see the comments); T is the
# tensor's float type. sign() is torch.sign's (0 < y) - (y < 0); remainder() is ATen's float
# remainder (fmod, then + b where the signs differ).
_SOURCE = r"""
#include <math.h>
#include <stdint.h>

#define INLINE static inline __attribute__((always_inline))
#define QFX_BW_CHUNK 65536

/* One element range [i0, i1) with one step: R (rounding), O (overflow) and E (form err) are
   constants at every call site, so each of the 56 instances is a branch-free loop the compiler
   vectorises. */
#define DEFINE_RANGE(T, SUF, FLOOR, CEIL, TRUNC, NEARBYINT, FABS, FMOD)                      \
INLINE void range_##SUF(const T *restrict x, T *restrict out, T *restrict err,               \
                        uint8_t *restrict inside, int64_t i0, int64_t i1, T lsb, T inv, T qmin,  \
                        T qmax, T lo_sym, T modulus, const int R, const int O, const int E) { \
    for (int64_t j = i0; j < i1; j++) {                                                      \
        T y = x[j] * inv;                          /* x * inv (addcmul's product for RND) */ \
        T q;                                                                                 \
        if (R == 0) q = FLOOR(y);                                                            \
        else if (R == 1) q = TRUNC(y);                                                       \
        else if (R == 2) q = FLOOR((T)0.5 + y);                                              \
        else if (R == 3) q = NEARBYINT(y);         /* torch.round: ties to even */           \
        else if (R == 4) q = CEIL(y - (T)0.5);                                               \
        else if (R == 5) q = (T)((0 < y) - (y < 0)) * CEIL(FABS(y) - (T)0.5);                \
        else q = (T)((0 < y) - (y < 0)) * FLOOR(FABS(y) + (T)0.5);                           \
        T qc = q < qmin ? qmin : (q > qmax ? qmax : q);  /* clamp; NaN stays NaN */          \
        T o;                                                                                 \
        if (O == 0) o = qc;                                                                  \
        else if (O == 1) o = q < lo_sym ? lo_sym : (q > qmax ? qmax : q);                    \
        else if (O == 2) o = (q < qmin || q > qmax) ? (T)0 : q;                              \
        else {                                     /* ATen's float remainder */              \
            T m = FMOD(q - qmin, modulus);                                                   \
            if (m != 0 && ((modulus < 0) != (m < 0))) m += modulus;                          \
            o = m + qmin;                                                                    \
        }                                                                                    \
        out[j] = o * lsb;                                                                    \
        inside[j] = (uint8_t)(qc == q);            /* a bool tensor's byte */              \
        if (E) {                                   /* where(inside, clamped - x, clamped) */ \
            T clamped = qc * lsb, d = clamped - x[j];                                        \
            err[j] = qc == q ? d : clamped;                                                  \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
                                                                                             \
INLINE void rows_##SUF(const T *x, T *out, T *err, uint8_t *inside, const T *lsbs,              \
                       const T *invs, int64_t inner, int64_t channels, int64_t i, int64_t stop, \
                       T qmin, T qmax, T lo_sym, T modulus, const int R, const int O,         \
                       const int E) {                                                        \
    while (i < stop) {                                                                       \
        int64_t row = i / inner, row_end = (row + 1) * inner;                                \
        int64_t end = row_end < stop ? row_end : stop;                                       \
        int64_t c = channels > 1 ? row % channels : 0;                                       \
        range_##SUF(x, out, err, inside, i, end, lsbs[c], invs[c], qmin, qmax, lo_sym,       \
                    modulus, R, O, E);                                                       \
        i = end;                                                                             \
    }                                                                                        \
}                                                                                            \
                                                                                             \
void qfx_fq_forward_##SUF(const T *x, T *out, T *err, uint8_t *inside, const T *lsbs,          \
                          const T *invs, int64_t rows, int64_t inner, int64_t channels,       \
                          T qmin, T qmax, T lo_sym, T modulus, int rounding, int overflow,     \
                          int nthreads) {                                                    \
    int64_t n = rows * inner;                                                                \
    int64_t chunk = (n + nthreads - 1) / nthreads;                                           \
    if (chunk < 16384) chunk = 16384;                                                        \
    int64_t nchunks = (n + chunk - 1) / chunk;                                               \
    int mode = (rounding * 4 + overflow) * 2 + (err != 0);                                   \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads) if(nchunks > 1)")       \
    for (int64_t k = 0; k < nchunks; k++) {                                                  \
        int64_t i = k * chunk, stop = i + chunk < n ? i + chunk : n;                         \
        switch (mode) {                                                                      \
        CASES_R(SUF, 0) CASES_R(SUF, 1) CASES_R(SUF, 2) CASES_R(SUF, 3)                      \
        CASES_R(SUF, 4) CASES_R(SUF, 5) CASES_R(SUF, 6)                                      \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
                                                                                             \
/* One step for the whole tensor, given by value (the per-tensor path of the host). */      \
void qfx_fq_forward_scalar_##SUF(const T *x, T *out, T *err, uint8_t *inside, int64_t n,      \
                                 T lsb, T inv, T qmin, T qmax, T lo_sym, T modulus,          \
                                 int rounding, int overflow, int nthreads) {                 \
    qfx_fq_forward_##SUF(x, out, err, inside, &lsb, &inv, 1, n, 1, qmin, qmax, lo_sym, \
                                modulus, rounding, overflow, nthreads);                      \
}                                                                                            \
                                                                                             \
/* How many of g[0..n) are infinite or NaN (g - g is NaN exactly for those). */           \
int64_t qfx_count_nonfinite_##SUF(const T *g, int64_t n, int nthreads) {                     \
    int64_t bad = 0;                                                                         \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads) if(n > 65536) \
             reduction(+:bad)")                                                              \
    for (int64_t j = 0; j < n; j++) {                                                        \
        T d = g[j] - g[j];                                                                   \
        bad += d != d;                                                                       \
    }                                                                                        \
    return bad;                                                                              \
}                                                                                            \
                                                                                             \
/* Backward over [i0, i1): grad_x = inside ? grad : 0 (the STE, torch.where's values) when  \
   X, and the dot product of grad and err accumulated in double (8 fixed lanes, so the      \
   order, and the result, do not depend on the thread count) when E. */                     \
INLINE double back_range_##SUF(const T *restrict grad, const T *restrict err,                 \
                               const uint8_t *restrict inside, T *restrict grad_x,            \
                               int64_t i0, int64_t i1, const int X, const int E) {           \
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0;                                      \
    int64_t j = i0;                                                                          \
    for (; j + 8 <= i1; j += 8) {                                                            \
        for (int l = 0; l < 8; l++) {                                                        \
            T g = grad[j + l];                                                               \
            if (X) grad_x[j + l] = inside[j + l] ? g : (T)0;                                 \
            if (E) acc[l] += (double)g * (double)err[j + l];                                 \
        }                                                                                    \
    }                                                                                        \
    for (; j < i1; j++) {                                                                    \
        T g = grad[j];                                                                       \
        if (X) grad_x[j] = inside[j] ? g : (T)0;                                             \
        if (E) tail += (double)g * (double)err[j];                                           \
    }                                                                                        \
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) \
        + tail;                                                                              \
}                                                                                            \
                                                                                             \
/* sums[c] (one per channel) = sum of grad * err over the channel's elements, in chunks of  \
   QFX_BW_CHUNK elements summed in chunk order; part holds nchunks * channels zeros (with one \
   chunk it may be sums itself). */                                                         \
void qfx_fq_backward_##SUF(const T *grad, const T *err, const uint8_t *inside, T *grad_x,     \
                           int64_t rows, int64_t inner, int64_t channels, double *part,      \
                           double *sums, int nthreads) {                                     \
    int64_t n = rows * inner;                                                                \
    int64_t nchunks = (n + QFX_BW_CHUNK - 1) / QFX_BW_CHUNK;                                 \
    int mode = (grad_x != 0) * 2 + (err != 0);                                               \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads) if(nchunks > 1)")       \
    for (int64_t k = 0; k < nchunks; k++) {                                                  \
        int64_t i = k * QFX_BW_CHUNK;                                                        \
        int64_t stop = i + QFX_BW_CHUNK < n ? i + QFX_BW_CHUNK : n;                          \
        while (i < stop) {                                                                   \
            int64_t row = i / inner, row_end = (row + 1) * inner;                            \
            int64_t end = row_end < stop ? row_end : stop;                                   \
            int64_t c = channels > 1 ? row % channels : 0;                                   \
            double s = 0;                                                                    \
            if (mode == 3) s = back_range_##SUF(grad, err, inside, grad_x, i, end, 1, 1);    \
            else if (mode == 2) back_range_##SUF(grad, err, inside, grad_x, i, end, 1, 0);   \
            else if (mode == 1) s = back_range_##SUF(grad, err, inside, grad_x, i, end, 0, 1); \
            if (mode & 1) part[k * channels + c] += s;                                       \
            i = end;                                                                         \
        }                                                                                    \
    }                                                                                        \
    if (err && part != sums)                                                                 \
        for (int64_t c = 0; c < channels; c++) {                                             \
            double s = 0;                                                                    \
            for (int64_t k = 0; k < nchunks; k++) s += part[k * channels + c];               \
            sums[c] = s;                                                                     \
        }                                                                                    \
}

#define CASE(SUF, R, O, E)                                                                   \
    case ((R) * 4 + (O)) * 2 + (E):                                                          \
        rows_##SUF(x, out, err, inside, lsbs, invs, inner, channels, i, stop, qmin, qmax,    \
                   lo_sym, modulus, R, O, E);                                                \
        break;
#define CASES_O(SUF, R, O) CASE(SUF, R, O, 0) CASE(SUF, R, O, 1)
#define CASES_R(SUF, R) CASES_O(SUF, R, 0) CASES_O(SUF, R, 1) CASES_O(SUF, R, 2) \
    CASES_O(SUF, R, 3)

DEFINE_RANGE(float, f32, floorf, ceilf, truncf, nearbyintf, fabsf, fmodf)
DEFINE_RANGE(double, f64, floor, ceil, trunc, nearbyint, fabs, fmod)
"""


class KernelBuildError(RuntimeError):
    """The C fake-quantisation kernel could not be built (no compiler, or it failed)."""


def kernel_mode() -> str:
    """``QFX_FAKE_QUANT_KERNEL`` (``auto`` unless set): ``auto``, ``c`` or ``torch``.

    Example:
        >>> kernel_mode() in MODES
        True
    """
    mode = os.environ.get("QFX_FAKE_QUANT_KERNEL", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"QFX_FAKE_QUANT_KERNEL={mode!r}: allowed {', '.join(MODES)}")
    return mode


def _cache_dir() -> Path:
    env = os.environ.get("QFX_CACHE_DIR")
    root = Path(env).expanduser().parent if env else Path.home() / ".cache" / "qfx"
    return root / "kernels"


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise KernelBuildError("no C compiler found (set CC, or install gcc) for the fake-"
                               "quantisation kernel; QFX_FAKE_QUANT_KERNEL=torch skips it")
    return cc


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def _build() -> ctypes.CDLL:
    cc = _compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise KernelBuildError(f"C compiler {cc!r} does not run: {err}") from None
    key = hashlib.sha256("\0".join([_SOURCE, cc, version, *_FLAGS, platform.machine(),
                                    _cpu_id()]).encode()).hexdigest()[:24]
    lib = _cache_dir() / f"fake_quant_{key}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
            src, obj = Path(tmp) / "fake_quant.c", Path(tmp) / "fake_quant.so"
            src.write_text(_SOURCE)
            try:
                res = subprocess.run([cc, *_FLAGS, str(src), "-o", str(obj), "-lm"],
                                     capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as err:
                raise KernelBuildError(f"building the fake-quantisation kernel failed: "
                                       f"{err}") from None
            if res.returncode != 0:
                msg = (res.stderr or res.stdout).strip().splitlines()
                raise KernelBuildError(f"building the fake-quantisation kernel with {cc} "
                                       f"failed: {msg[0] if msg else res.returncode}")
            os.replace(obj, lib)  # atomic: concurrent builders leave one complete file
    dll = ctypes.CDLL(str(lib))
    for suf, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fn = getattr(dll, f"qfx_fq_forward_{suf}")
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int64] * 3 + [real] * 4 + \
            [ctypes.c_int] * 3
        fn = getattr(dll, f"qfx_fq_forward_scalar_{suf}")
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] + [real] * 6 + [ctypes.c_int] * 3
        fn = getattr(dll, f"qfx_count_nonfinite_{suf}")
        fn.restype = ctypes.c_int64
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
        fn = getattr(dll, f"qfx_fq_backward_{suf}")
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3 + \
            [ctypes.POINTER(ctypes.c_double)] * 2 + [ctypes.c_int]
    return dll


_STATE: dict[str, object] = {}


def load_kernel() -> ctypes.CDLL | None:
    """The kernel library, built at first use; None when ``QFX_FAKE_QUANT_KERNEL=torch`` or
    (in ``auto`` mode, after one warning) when it cannot be built.

    Example:
        >>> lib = load_kernel()
        >>> lib is None or hasattr(lib, "qfx_fq_forward_f32")
        True
    """
    mode = kernel_mode()
    if mode == "torch":
        return None
    if "lib" not in _STATE:
        try:
            _STATE["lib"] = _build()
        except (KernelBuildError, OSError) as err:
            if mode == "c":
                raise KernelBuildError(str(err)) from None
            warnings.warn(f"qfx: {err}; fake quantisation uses the torch path (same values, "
                          "slower)", RuntimeWarning, stacklevel=2)
            _STATE["lib"] = None
    lib = _STATE["lib"]
    if lib is None and mode == "c":
        raise KernelBuildError("the fake-quantisation kernel is unavailable "
                               "(QFX_FAKE_QUANT_KERNEL=c)")
    return lib  # type: ignore[return-value]


def supports(x: torch.Tensor, rounding: str, overflow: str) -> bool:
    """Whether :func:`forward` handles this input (CPU, float32/64, contiguous, a float-formula
    mode); the caller uses the torch path otherwise."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and x.is_contiguous() and rounding in ROUNDING_IDS and overflow in OVERFLOW_IDS)


def forward(lib: ctypes.CDLL, x: torch.Tensor, lsb: torch.Tensor, inv: torch.Tensor,
            channel_dim: int | None, qmin: float, qmax: float, width: int, signed: bool,
            rounding: str, overflow: str, need_err: bool
            ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Output, error (or None) and in-range mask of fake quantisation of ``x`` (see
    :func:`supports`); ``lsb``/``inv`` hold one step (and its inverse) per channel of
    ``channel_dim``, or one for the whole tensor."""
    out = torch.empty_like(x)
    err = torch.empty_like(x) if need_err else None
    inside = torch.empty(x.shape, dtype=torch.bool)
    lsb = lsb.reshape(-1).contiguous()
    inv = inv.reshape(-1).contiguous()
    channels = lsb.numel()
    rows, inner = layout(x, channels, channel_dim)
    fn = lib.qfx_fq_forward_f32 if x.dtype == torch.float32 else lib.qfx_fq_forward_f64
    fn(x.data_ptr(), out.data_ptr(), err.data_ptr() if err is not None else None,
       inside.data_ptr(), lsb.data_ptr(), inv.data_ptr(), rows, inner, channels,
       qmin, qmax, -qmax if signed else qmin, 2.0**width, ROUNDING_IDS[rounding],
       OVERFLOW_IDS[overflow], torch.get_num_threads())
    return out, err, inside


def layout(x: torch.Tensor, channels: int, channel_dim: int | None) -> tuple[int, int]:
    """``(rows, inner)``: ``x`` seen as rows of ``inner`` contiguous elements, row ``r``
    belonging to channel ``r % channels`` (one row of everything when ``channels`` is 1)."""
    if channels > 1:
        inner = 1
        for d in x.shape[channel_dim + 1:]:
            inner *= d
    else:
        inner = max(x.numel(), 1)
    return x.numel() // inner, inner


def forward_scalar(lib: ctypes.CDLL, x: torch.Tensor, lsb: float, inv: float, qmin: float,
                   qmax: float, width: int, signed: bool, rounding: str, overflow: str,
                   need_err: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """:func:`forward` with one step for the whole tensor given as host numbers (powers of
    two, exact in ``x``'s dtype), which saves the small tensor operations that form them."""
    out = torch.empty_like(x)
    err = torch.empty_like(x) if need_err else None
    inside = torch.empty(x.shape, dtype=torch.bool)
    fn = lib.qfx_fq_forward_scalar_f32 if x.dtype == torch.float32 else \
        lib.qfx_fq_forward_scalar_f64
    fn(x.data_ptr(), out.data_ptr(), err.data_ptr() if err is not None else None,
       inside.data_ptr(), x.numel(), lsb, inv, qmin, qmax, -qmax if signed else qmin,
       2.0**width, ROUNDING_IDS[rounding], OVERFLOW_IDS[overflow], torch.get_num_threads())
    return out, err, inside


_BW_CHUNK = 65536  # QFX_BW_CHUNK of the C source


def backward(lib: ctypes.CDLL, grad: torch.Tensor, err: torch.Tensor | None,
             inside: torch.Tensor, rows: int, inner: int, channels: int, need_x: bool
             ) -> tuple[torch.Tensor | None, list[float] | None]:
    """One pass over ``grad``: the straight-through input gradient ``where(inside, grad, 0)``
    (if ``need_x``) and, if ``err`` is given, the per-channel sums of ``grad * err`` with the
    products and the sum in float64, in a fixed order (the same for every thread count)."""
    grad = grad.contiguous()
    grad_x = torch.empty_like(grad) if need_x else None
    n = grad.numel()
    nchunks = (n + _BW_CHUNK - 1) // _BW_CHUNK
    sums = part = None
    if err is not None:  # zero-filled
        sums = (ctypes.c_double * channels)()
        part = sums if nchunks == 1 else (ctypes.c_double * (nchunks * channels))()
    fn = lib.qfx_fq_backward_f32 if grad.dtype == torch.float32 else lib.qfx_fq_backward_f64
    fn(grad.data_ptr(), err.data_ptr() if err is not None else None, inside.data_ptr(),
       grad_x.data_ptr() if grad_x is not None else None, rows, inner, channels,
       part, sums, torch.get_num_threads())
    return grad_x, (list(sums) if sums is not None else None)


def count_nonfinite(lib: ctypes.CDLL, g: torch.Tensor) -> int:
    """How many elements of the (CPU, float32/64) tensor ``g`` are infinite or NaN."""
    g = g.contiguous()
    fn = lib.qfx_count_nonfinite_f32 if g.dtype == torch.float32 else \
        lib.qfx_count_nonfinite_f64
    return int(fn(g.data_ptr(), g.numel(), torch.get_num_threads()))
