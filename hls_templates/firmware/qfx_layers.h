// qfx_layers.h -- the qfx HLS layer library (static: shipped with qfx, copied into every project).
//
// Every layer mirrors one op of the frozen qfx IR (qfx/ir/executor.py is the specification):
//
//   * a node computes its result in its accumulator type ACC_T, which the IR sizes so that no
//     partial sum, in any order of additions, can round or overflow (so `acc += x * w` is exact),
//   * then applies ONE cast to the node's output type: `y = acc;` (ap_fixed assignment with the
//     output type's rounding/overflow modes -- exactly the IR's cast).
//
// Arithmetic of the accumulation (never of the casts):
//
//   * Synthesis (__SYNTHESIS__), or C-simulation built with -DQFX_AP_ARITH: the loops below
//     compute on ap_fixed values (`ACC_T acc = bias; acc += x * w;`), shaped for HLS
//     (pipelined reduction loops, pragmas from the layer's config struct); dense and conv2d
//     with plain constants run the same sum on the raw mantissas in ap_int (raw_dot, see "dot
//     products": `acc = raw(bias) << sb; acc += (raw(x) * raw(w)) << sx;`, the same bits in
//     acc_t's lsb, without the ap_fixed operators' alignment and conversions per product).
//     `qfx csim` proves this path too (--arith synth|both). Its C-simulation build differs from
//     synthesis only in how the constants and raw bits reach the arithmetic, never in the
//     arithmetic: constants are stored as native integers (raw_storage), set into ap_fixed
//     mantissas directly (from_raw; raw_bits reads them the same way) and, for the
//     multiply-accumulates, converted once per layer into tables of ap_fixed values and raw
//     ap_int mantissas (value_table, raw_table); every one of these gives the same bits.
//     -DQFX_AP_STORAGE turns all of them off (the synthesis code exactly, much slower to compile:
//     one constructor call per constant).
//   * C-simulation by default (QFX_NATIVE): the same sums on the raw integer mantissas in
//     int32/int64, with the binary points aligned by exact power-of-two factors derived from the
//     types (static_asserts below). The IR bounds every accumulator to <= 53 bits and every
//     partial sum to the accumulator's range, so int64 (and int32 when the accumulator has
//     <= 31 bits) holds every partial sum exactly: both paths compute the same integers. The
//     result is turned back into ACC_T bit for bit (from_raw) and cast with the real ap_fixed
//     assignment, so every lossy step is still done by the ap_fixed headers. The native path only
//     reorders exact additions (for cache locality); tests build both paths and compare.
//
// Arrays are flat, in PyTorch NCHW order (C-major); a flatten is therefore a no-op.
//
// K-hot layers (dense_khot, conv2d_khot, batchnorm_khot) take digit tables instead of constants
// and compute every product with shifts and adds; binarized layers (binary_dense, binary_conv2d,
// threshold, thermometer) work on packed bits. See their sections below.
//
// Config structs (generated in parameters.h) carry the types and sizes; see each layer.
//
// Folding (reuse factor R): a layer with n_mults multiplications gets M = ceil(n_mults / R)
// multipliers, capped at QFX_MAX_UNROLL (4096, Vivado's unroll limit). The reduction loop
// (length K) is pipelined with UNROLL factor red_unroll = min(K, M); when M > K the output loop
// is unrolled by out_unroll = min(outputs, M / K), with red_unroll * out_unroll <= 4096.
// Element-wise layers use unroll = min(n, ceil(n / R), 4096).

#ifndef QFX_LAYERS_H_
#define QFX_LAYERS_H_

#include <ap_fixed.h>
#include <ap_int.h>
#include <stdint.h>
#ifndef __SYNTHESIS__
#include <cstdio>
#endif

#if defined(__SYNTHESIS__) || defined(QFX_AP_ARITH)
#define QFX_NATIVE 0
#else
#define QFX_NATIVE 1
#endif

// Storage class of the large intermediate arrays of the top function: `static` in C-simulation
// (keeps big activations off the stack; every element is written before it is read in each call,
// so nothing carries over between calls), automatic in synthesis.
#ifndef __SYNTHESIS__
#define QFX_SCRATCH static
#else
#define QFX_SCRATCH
#endif

#if __cplusplus >= 201103L
#define QFX_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define QFX_STATIC_ASSERT(cond, msg)
#endif

#define QFX_MAX_UNROLL 4096

// Host compilers ignore the HLS pragmas (build with -Wno-unknown-pragmas) and the loop labels
// that name loops in HLS reports; keep -Wall quiet about the labels.
#if defined(__GNUC__) && !defined(__SYNTHESIS__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-label"
#endif

namespace qfx {

// ------------------------------------------------------------------------------ type traits
template <bool C, class A, class B>
struct if_c {
  typedef A type;
};
template <class A, class B>
struct if_c<false, A, B> {
  typedef B type;
};

/// Width W, integer bits I, fractional bits F = W - I and signedness of an ap_[u]fixed type.
template <class T>
struct fixed_traits;
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
struct fixed_traits<ap_fixed<W, I, Q, O, N> > {
  static const int width = W;
  static const int iwidth = I;
  static const int frac = W - I;
  static const bool is_signed = true;
};
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
struct fixed_traits<ap_ufixed<W, I, Q, O, N> > {
  static const int width = W;
  static const int iwidth = I;
  static const int frac = W - I;
  static const bool is_signed = false;
};

/// Smallest native integer type holding W-bit raw values of the given signedness.
template <int W, bool S>
struct native_int {
  typedef typename if_c<(W <= 8), int8_t,
          typename if_c<(W <= 16), int16_t,
          typename if_c<(W <= 32), int32_t, int64_t>::type>::type>::type type;
};
template <int W>
struct native_int<W, false> {
  typedef typename if_c<(W <= 8), uint8_t,
          typename if_c<(W <= 16), uint16_t,
          typename if_c<(W <= 32), uint32_t, uint64_t>::type>::type>::type type;
};

/// Storage of constant raw mantissas (weights, biases, BN scale/shift, packed binary words) of
/// fixed-point type T: exact-width ap_int/ap_uint in synthesis, the smallest native integer in
/// every C-simulation build (native and -DQFX_AP_ARITH). The generated headers initialise them
/// from integer literals that the IR proves lie in T's raw range, and every layer reads a
/// constant only through from_raw<T>(c) (the bits, `v.range(W-1, 0) = c`) or as an exact small
/// integer (K-hot digit signs and shifts), so both storages give the layer the same ap_fixed
/// value, bit for bit: the arithmetic on them is unchanged. Why: an array of ap_int is initialised
/// by a constructor call per element at program start, and g++ -O3 then spends minutes
/// optimising one static-initialiser function of ~10^5 calls (ResNet-8: 78k constants), while an
/// integer array is plain .rodata. hls4ml avoids the same cost by loading its C-simulation
/// weights from text files at run time. -DQFX_AP_STORAGE keeps the synthesis storage in C-sim.
template <class T>
struct raw_storage {
#if QFX_NATIVE || (!defined(__SYNTHESIS__) && !defined(QFX_AP_STORAGE))
  typedef typename native_int<fixed_traits<T>::width, fixed_traits<T>::is_signed>::type type;
#else
  typedef typename if_c<fixed_traits<T>::is_signed, ap_int<fixed_traits<T>::width>,
                        ap_uint<fixed_traits<T>::width> >::type type;
#endif
};

/// Native accumulator of the QFX_NATIVE path: int32 while the accumulator type has <= 31 bits
/// (then every partial sum of products, which the IR bounds by the accumulator's range, fits),
/// else int64 (the IR caps accumulators at 53 bits).
template <class ACC_T>
struct native_acc {
  typedef typename if_c<(fixed_traits<ACC_T>::width <= 31), int32_t, int64_t>::type type;
};

/// 2**k as an int64 (k >= 0); multiplying by it is an exact, well-defined left shift.
inline int64_t pow2(int k) { return (int64_t)1 << k; }

// ------------------------------------------------------------------------------ raw access
/// The value of type T whose raw mantissa (two's complement for signed T) is r: a bit-exact
/// reinterpretation, never a rounding. r must lie in T's raw range.
template <class T, class R>
inline T from_raw(const R& r) {
  T v;
  v.range(fixed_traits<T>::width - 1, 0) = r;
  return v;
}

#if !defined(__SYNTHESIS__) && !defined(QFX_AP_STORAGE)
// C-simulation: from_raw of a native integer (the constants, see raw_storage; the native path's
// sums) sets the ap_private mantissa V directly: `V = r` keeps the low W bits of r (sign-extended
// for signed T), exactly the bits `v.range(W-1, 0) = r` writes, without the range proxy's masks
// and shifts on every multiply-accumulate. Same value bit for bit; the arithmetic on it is the
// ap_fixed arithmetic. (Synthesis, and -DQFX_AP_STORAGE, use the range assignment above.)
#define QFX_FROM_RAW_INT(R)                  \
  template <class T>                         \
  inline T from_raw(const R& r) {            \
    T v;                                     \
    v.V = (long long)r;                      \
    return v;                                \
  }
QFX_FROM_RAW_INT(signed char)
QFX_FROM_RAW_INT(short)
QFX_FROM_RAW_INT(int)
QFX_FROM_RAW_INT(long)
QFX_FROM_RAW_INT(long long)
QFX_FROM_RAW_INT(unsigned char)
QFX_FROM_RAW_INT(unsigned short)
QFX_FROM_RAW_INT(unsigned int)
QFX_FROM_RAW_INT(unsigned long)
QFX_FROM_RAW_INT(unsigned long long)
#undef QFX_FROM_RAW_INT
#endif

/// The same bits read as another type of the same width (moves the binary point exactly).
template <class TO, class FROM>
inline TO reinterpret(const FROM& v) {
  QFX_STATIC_ASSERT(fixed_traits<TO>::width == fixed_traits<FROM>::width,
                    "reinterpret needs types of the same width");
  ap_uint<fixed_traits<FROM>::width> bits = v.range(fixed_traits<FROM>::width - 1, 0);
  return from_raw<TO>(bits);
}

/// The integer type of T's raw mantissa: ap_int<W> for signed T, ap_uint<W> for unsigned T.
template <class T>
struct raw_int {
  typedef typename if_c<fixed_traits<T>::is_signed, ap_int<fixed_traits<T>::width>,
                        ap_uint<fixed_traits<T>::width> >::type type;
};

/// The raw mantissa of x as raw_int<T> (the bits `x.range(W-1, 0)`, two's complement for signed
/// T): a bit-exact reinterpretation, never a rounding. C-simulation copies the ap_private
/// mantissa V directly (the same bits without the range proxy, as from_raw above); synthesis
/// and -DQFX_AP_STORAGE read the range.
template <class T>
inline typename raw_int<T>::type raw_bits(const T& x) {
#pragma HLS INLINE
  typename raw_int<T>::type r;
#if !defined(__SYNTHESIS__) && !defined(QFX_AP_STORAGE)
  r.V = x.V;
#else
  r = x.range(fixed_traits<T>::width - 1, 0);
#endif
  return r;
}

#ifndef __SYNTHESIS__
/// The raw mantissa of x as an int64 (C-simulation only).
template <class T>
inline int64_t to_raw(const T& x) {
  const int w = fixed_traits<T>::width;
  const uint64_t u = x.range(w - 1, 0).to_uint64();
  if (fixed_traits<T>::is_signed) return (int64_t)(u << (64 - w)) >> (64 - w);
  return (int64_t)(u & ((w >= 64) ? ~(uint64_t)0 : (((uint64_t)1 << w) - 1)));
}

/// True when r is a raw mantissa of type T (the testbench rejects anything else).
template <class T>
inline bool raw_fits(int64_t r) {
  const int w = fixed_traits<T>::width;
  if (fixed_traits<T>::is_signed) {
    return r >= -((int64_t)1 << (w - 1)) && r <= (((int64_t)1 << (w - 1)) - 1);
  }
  return r >= 0 && (w >= 63 || r <= (((int64_t)1 << w) - 1));
}
#endif

// ------------------------------------------------------------------------------ trace (C-sim)
// Built with -DQFX_TRACE, the top function writes every node's raw output to trace_sink():
// one line per node and sample: "<node> <sample> <n> v0 v1 ... v{n-1}".
#ifdef QFX_TRACE
inline std::FILE*& trace_sink() {
  static std::FILE* sink = 0;
  return sink;
}
inline long& trace_sample() {
  static long sample = 0;
  return sample;
}
template <class T>
void trace(const char* node, const T* x, int n) {
  std::FILE* f = trace_sink();
  if (!f) return;
  std::fprintf(f, "%s %ld %d", node, trace_sample(), n);
  for (int i = 0; i < n; i++) std::fprintf(f, " %lld", (long long)to_raw(x[i]));
  std::fputc('\n', f);
}
#define QFX_TRACE_NODE(name, array, n) ::qfx::trace(name, array, n)
#else
#define QFX_TRACE_NODE(name, array, n) ((void)0)
#endif

// ------------------------------------------------------------------------------ input / cast
// CFG: in_t, out_t, n, unroll.  y[i] = x[i] (the IR's input cast).
template <class CFG>
void cast(const typename CFG::in_t x[CFG::n], typename CFG::out_t y[CFG::n]) {
  const int unroll = CFG::unroll;
  (void)unroll;
CAST:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    y[i] = x[i];
  }
}

// ------------------------------------------------------------------------------ multiplies
// Every multiplication of a layer is qfx::mul(a, b), which pins it to LUTs or to DSPs as the
// resource estimate counts it (qfx.fixed.hwcost.multiply_on_fabric): a product of W_a x W_b
// bits is built in the fabric (about W_a * W_b LUTs) when W_a * W_b <=
// QFX_FABRIC_MULT_MAX_PRODUCT (the LUTs one DSP48 counts for), else in DSP48s. Without the
// binding the tool picks by its own heuristics and the estimate's LUT / DSP split would be a
// guess. The product has the operator's own type, so the arithmetic is unchanged (C-simulation
// ignores the pragmas).
#ifndef QFX_FABRIC_MULT_MAX_PRODUCT
#define QFX_FABRIC_MULT_MAX_PRODUCT 55
#endif

// Two specialisations that differ in their pragma only: a pragma cannot take a template argument.
template <bool FABRIC>
struct bound_mul {  // fabric (LUTs)
  template <class A, class B>
  static auto mul(const A& a, const B& b) -> decltype(a * b) {
#pragma HLS INLINE
    decltype(a * b) p = a * b;
#pragma HLS BIND_OP variable=p op=mul impl=fabric
    return p;
  }
};
template <>
struct bound_mul<false> {  // DSP48
  template <class A, class B>
  static auto mul(const A& a, const B& b) -> decltype(a * b) {
#pragma HLS INLINE
    decltype(a * b) p = a * b;
#pragma HLS BIND_OP variable=p op=mul impl=dsp
    return p;
  }
};

/// Whether a * b (ap_fixed or ap_int operands) is built in the fabric (else in DSP48s).
template <class A, class B>
struct mul_on_fabric {
  static const bool value = A::width * B::width <= QFX_FABRIC_MULT_MAX_PRODUCT;
};

/// a * b, bound to LUTs or DSPs by the operands' widths (mul_on_fabric).
template <class A, class B>
inline auto mul(const A& a, const B& b) -> decltype(a * b) {
#pragma HLS INLINE
  return bound_mul<mul_on_fabric<A, B>::value>::mul(a, b);
}

// ------------------------------------------------------------------------------ constants
// dense, conv2d and batchnorm each have ONE loop nest (dense_core, conv2d_core, batchnorm_core)
// shared by the plain layers and their K-hot variants; the layer's constants (weights, or the
// BatchNorm scale) come as a policy object that forms the products:
//   * const_weights<C_T>: raw mantissas of type C_T, one multiplication per product;
//   * khot_weights<CFG, C_T>: K-hot digit tables, shifts and adds (see the K-hot section).
// Policy interface (idx: the constant's index in the layer's PyTorch order):
//   mac(acc, x, idx)  acc += x * c[idx] on ap_fixed values (exact in acc, see the header);
//   n_terms, term(idx, j)  raw(c[idx]) == sum_{j < n_terms} term(idx, j) (native path; a term
//                     is the raw constant, or +-2**shift of a digit, or 0);
//   narrow            whether the native sums may run on native_acc (int32 for small
//                     accumulators) instead of int64;
//   at(idx0)          the same constants from index idx0 on (one group of a convolution that
//                     the streaming layers compute as a dense product, see qfx_stream.h).
// The wrappers (dense, dense_khot, ...) keep the functions the generated top calls and carry the
// pragmas on their constant arrays; the cores are inlined into them.

// C-simulation of the synthesis arithmetic (-DQFX_AP_ARITH, not synthesis): every multiply-
// accumulate reads its constant as an ap_fixed value of C_T (mac) or as its raw mantissa
// raw_int<C_T> (raw, see raw_dot) from a per-layer table, converted once from the raw constants
// with from_raw (the same bits, see raw_storage), instead of converting the raw constant again
// on every multiplication; the arithmetic on the values is the same ap_fixed / ap_int code.
// Synthesis reads from_raw<C_T>(c[idx]) and the stored ap_int c[idx] directly.
#if !QFX_NATIVE && !defined(__SYNTHESIS__) && !defined(QFX_AP_STORAGE)
#define QFX_VALUE_TABLES 1
#else
#define QFX_VALUE_TABLES 0
#endif

#if QFX_VALUE_TABLES
/// The N constants at c as C_T values; one table per layer (KEY: its config struct), refilled
/// only if the layer is ever called with another constant array.
template <class KEY, class C_T, int N>
const C_T* value_table(const typename raw_storage<C_T>::type* c) {
  static const typename raw_storage<C_T>::type* filled_from = 0;
  static C_T table[N];
  if (filled_from != c) {
    for (int i = 0; i < N; i++) table[i] = from_raw<C_T>(c[i]);
    filled_from = c;
  }
  return table;
}
/// The same N constants as raw_int<C_T> mantissas (the bits of value_table's values).
template <class KEY, class C_T, int N>
const typename raw_int<C_T>::type* raw_table(const typename raw_storage<C_T>::type* c) {
  static const typename raw_storage<C_T>::type* filled_from = 0;
  static typename raw_int<C_T>::type table[N];
  if (filled_from != c) {
    for (int i = 0; i < N; i++) table[i] = raw_bits(from_raw<C_T>(c[i]));
    filled_from = c;
  }
  return table;
}
#define QFX_CONST_WEIGHTS(KEY, C_T, N, PTR) \
  {PTR, ::qfx::value_table<KEY, C_T, N>(PTR), ::qfx::raw_table<KEY, C_T, N>(PTR)}
#else
#define QFX_CONST_WEIGHTS(KEY, C_T, N, PTR) {PTR}
#endif

/// Constants stored as raw mantissas of C_T (the plain layers).
template <class C_T>
struct const_weights {
  static const int n_terms = 1;
  static const bool narrow = true;
  static const bool raw_mac = true;  // dense_core/conv2d_core multiply raw mantissas (raw_dot)
  const typename raw_storage<C_T>::type* c;
#if QFX_VALUE_TABLES
  const C_T* v;  // the same constants as C_T values (C-simulation of the synthesis arithmetic)
  const typename raw_int<C_T>::type* r;  // and as raw_int<C_T> mantissas
#endif
  template <class ACC_T, class IN_T>
  void mac(ACC_T& acc, const IN_T& x, int idx) const {
#pragma HLS INLINE
#if QFX_VALUE_TABLES
    acc += mul(x, v[idx]);
#else
    acc += mul(x, from_raw<C_T>(c[idx]));
#endif
  }
  /// The raw mantissa of constant idx as raw_int<C_T> (synthesis: the stored ap_int itself).
  const typename raw_int<C_T>::type& raw(int idx) const {
#pragma HLS INLINE
#if QFX_VALUE_TABLES
    return r[idx];
#else
    return c[idx];
#endif
  }
  int64_t term(int idx, int j) const {
    (void)j;
    return (int64_t)c[idx];
  }
  const_weights at(int idx0) const {
#if QFX_VALUE_TABLES
    const const_weights s = {c + idx0, v + idx0, r + idx0};
#else
    const const_weights s = {c + idx0};
#endif
    return s;
  }
};

// ------------------------------------------------------------------------------ dot products
// The accumulation of one output of dense_core / conv2d_core (synthesis and -DQFX_AP_ARITH),
// `acc = bias; acc += x * c[idx] ...; y = acc;`, as a policy on the constants' policy WTS:
//   A          the accumulator;
//   init(b)    the accumulator holding the bias b (raw mantissa of bias_t);
//   mac(a, wts, x, idx)  a += x * c[idx];
//   value(a, wts, idx)  the accumulator as an acc_t value (then cast once to the output
//              type); idx: the index of the output's first constant (its row, see
//              shifted_weights' dot_acc, which shifts the output's sum there).
// fixed_dot (WTS::raw_mac false: K-hot): on ap_fixed values, A = acc_t, mac = wts.mac.
// raw_dot (WTS::raw_mac true: plain constants): the same sum on the raw mantissas, A =
// raw_int<acc_t> counting acc_t's lsb: the bias is its raw mantissa << sb, each product the
// ap_int product raw(x) * raw(c) (exact: W_x + W_c bits) << sx, with sb, sx >= 0 the shifts
// that align bias_t's and the product's binary points with acc_t's (the static_asserts of the
// layers); value() reads the bits back as acc_t. Every step wraps modulo 2**W_acc exactly as
// `acc += x * w` on acc_t (AP_TRN, AP_WRAP; the products' and the bias' fractional bits fit,
// so nothing rounds), and the IR sizes acc_t so that no partial sum overflows: the same bits as
// fixed_dot, with one multiply and one add on ap_int per product instead of the ap_fixed
// operators' alignment and conversions (-DQFX_AP_ARITH C-sim of ResNet-8 ~1.4x faster per
// CPU-second; the same one DSP per product in synthesis).
template <class CFG, class WTS, bool RAW = WTS::raw_mac>
struct dot_acc {  // fixed_dot
  typedef typename CFG::acc_t A;
  static A init(const typename raw_storage<typename CFG::bias_t>::type& b) {
#pragma HLS INLINE
    return from_raw<typename CFG::bias_t>(b);
  }
  static void mac(A& a, const WTS& wts, const typename CFG::in_t& x, int idx) {
#pragma HLS INLINE
    wts.mac(a, x, idx);
  }
  static typename CFG::acc_t value(const A& a, const WTS& wts, int idx) {
#pragma HLS INLINE
    (void)wts;
    (void)idx;
    return a;
  }
};

/// a += p << SX on raw_int values (SX = 0: a += p, no shift).
template <int SX>
struct raw_add_shifted {
  template <class A, class P>
  static void add(A& a, const P& p) {
#pragma HLS INLINE
    A t = p;
    t <<= SX;
    a += t;
  }
};
template <>
struct raw_add_shifted<0> {
  template <class A, class P>
  static void add(A& a, const P& p) {
#pragma HLS INLINE
    a += p;
  }
};

template <class CFG, class WTS>
struct dot_acc<CFG, WTS, true> {  // raw_dot
  typedef typename CFG::acc_t acc_t;
  typedef typename raw_int<acc_t>::type A;
  static const int sx = fixed_traits<acc_t>::frac - fixed_traits<typename CFG::in_t>::frac -
                        fixed_traits<typename CFG::weight_t>::frac;
  static const int sb = fixed_traits<acc_t>::frac - fixed_traits<typename CFG::bias_t>::frac;
  static A init(const typename raw_storage<typename CFG::bias_t>::type& b) {
#pragma HLS INLINE
    A a = raw_bits(from_raw<typename CFG::bias_t>(b));
    a <<= sb;
    return a;
  }
  static void mac(A& a, const WTS& wts, const typename CFG::in_t& x, int idx) {
#pragma HLS INLINE
    raw_add_shifted<sx>::add(a, mul(raw_bits(x), wts.raw(idx)));
  }
  static acc_t value(const A& a, const WTS& wts, int idx) {
#pragma HLS INLINE
    (void)wts;
    (void)idx;
    return from_raw<acc_t>(a);
  }
};

// ------------------------------------------------------------------------------ dense
// CFG: in_t, out_t, acc_t, weight_t, bias_t, n_in, n_out, red_unroll, out_unroll.
// w: [n_out][n_in] (PyTorch order), b: [n_out].
template <class CFG, class WTS>
void dense_core(const typename CFG::in_t x[CFG::n_in], typename CFG::out_t y[CFG::n_out],
                const WTS& wts, const typename raw_storage<typename CFG::bias_t>::type b[CFG::n_out]) {
#pragma HLS INLINE
  typedef typename CFG::acc_t acc_t;
  typedef typename CFG::weight_t weight_t;
  typedef typename CFG::bias_t bias_t;
  const int sx = fixed_traits<acc_t>::frac - fixed_traits<typename CFG::in_t>::frac -
                 fixed_traits<weight_t>::frac;
  const int sb = fixed_traits<acc_t>::frac - fixed_traits<bias_t>::frac;
  QFX_STATIC_ASSERT(fixed_traits<acc_t>::frac - fixed_traits<typename CFG::in_t>::frac -
                            fixed_traits<weight_t>::frac >= 0,
                    "dense: the accumulator must hold every product exactly");
  QFX_STATIC_ASSERT(fixed_traits<acc_t>::frac >= fixed_traits<bias_t>::frac,
                    "dense: the accumulator must hold the bias exactly");
#if QFX_NATIVE
  typedef typename if_c<WTS::narrow, typename native_acc<acc_t>::type, int64_t>::type A;
  static A xr[CFG::n_in];
  for (int i = 0; i < CFG::n_in; i++) xr[i] = (A)to_raw(x[i]);
  for (int o = 0; o < CFG::n_out; o++) {
    A s = 0;
    for (int i = 0; i < CFG::n_in; i++) {
      for (int j = 0; j < WTS::n_terms; j++) s += xr[i] * (A)wts.term(o * CFG::n_in + i, j);
    }
    const int64_t acc = (int64_t)b[o] * pow2(sb) + (int64_t)s * pow2(sx);
    y[o] = from_raw<acc_t>(acc);
  }
#else
  (void)sx;
  (void)sb;
  const int red_unroll = CFG::red_unroll;
  const int out_unroll = CFG::out_unroll;
  (void)red_unroll;
  (void)out_unroll;
#pragma HLS ARRAY_PARTITION variable=x cyclic factor=red_unroll
DENSE_OUT:
  for (int o = 0; o < CFG::n_out; o++) {
#pragma HLS UNROLL factor=out_unroll
    typedef dot_acc<CFG, WTS> D;
    typename D::A acc = D::init(b[o]);
  DENSE_RED:
    for (int i = 0; i < CFG::n_in; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=red_unroll
      D::mac(acc, wts, x[i], o * CFG::n_in + i);
    }
    y[o] = D::value(acc, wts, o * CFG::n_in);  // the one cast to the output type
  }
#endif
}

template <class CFG>
void dense(const typename CFG::in_t x[CFG::n_in], typename CFG::out_t y[CFG::n_out],
           const typename raw_storage<typename CFG::weight_t>::type w[CFG::n_out * CFG::n_in],
           const typename raw_storage<typename CFG::bias_t>::type b[CFG::n_out]) {
  const int red_unroll = CFG::red_unroll;
  (void)red_unroll;
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=red_unroll
  const const_weights<typename CFG::weight_t> wts =
      QFX_CONST_WEIGHTS(CFG, typename CFG::weight_t, CFG::n_out * CFG::n_in, w);
  dense_core<CFG>(x, y, wts, b);
}

// ------------------------------------------------------------------------------ conv2d
// CFG: in_t, out_t, acc_t, weight_t, bias_t, in_c, in_h, in_w, out_c, out_h, out_w, k_h, k_w,
//      stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, red_unroll, out_unroll.
// x: [in_c][in_h][in_w], y: [out_c][out_h][out_w], w: [out_c][in_c/groups][k_h][k_w], b: [out_c].
// Zero padding; groups == in_c == out_c is a depthwise convolution.
template <class CFG, class WTS>
void conv2d_core(const typename CFG::in_t x[CFG::in_c * CFG::in_h * CFG::in_w],
                 typename CFG::out_t y[CFG::out_c * CFG::out_h * CFG::out_w], const WTS& wts,
                 const typename raw_storage<typename CFG::bias_t>::type b[CFG::out_c]) {
#pragma HLS INLINE
  typedef typename CFG::acc_t acc_t;
  typedef typename CFG::weight_t weight_t;
  typedef typename CFG::bias_t bias_t;
  const int cin_g = CFG::in_c / CFG::groups;
  const int cout_g = CFG::out_c / CFG::groups;
  const int n_pix = CFG::out_h * CFG::out_w;
  const int n_red = cin_g * CFG::k_h * CFG::k_w;
  const int sx = fixed_traits<acc_t>::frac - fixed_traits<typename CFG::in_t>::frac -
                 fixed_traits<weight_t>::frac;
  const int sb = fixed_traits<acc_t>::frac - fixed_traits<bias_t>::frac;
  QFX_STATIC_ASSERT(fixed_traits<acc_t>::frac - fixed_traits<typename CFG::in_t>::frac -
                            fixed_traits<weight_t>::frac >= 0,
                    "conv2d: the accumulator must hold every product exactly");
  QFX_STATIC_ASSERT(fixed_traits<acc_t>::frac >= fixed_traits<bias_t>::frac,
                    "conv2d: the accumulator must hold the bias exactly");
  QFX_STATIC_ASSERT(CFG::in_c % CFG::groups == 0 && CFG::out_c % CFG::groups == 0,
                    "conv2d: channels must be divisible by groups");
#if QFX_NATIVE
  // Loop order for the CPU: per output channel, one term of one weight at a time over the whole
  // output plane (the plane's partial sums stay in cache; the innermost loop is contiguous for
  // stride 1). Exact in any order, see the file header.
  typedef typename if_c<WTS::narrow, typename native_acc<acc_t>::type, int64_t>::type A;
  static A xr[CFG::in_c * CFG::in_h * CFG::in_w];
  static A s[n_pix];
  for (int i = 0; i < CFG::in_c * CFG::in_h * CFG::in_w; i++) xr[i] = (A)to_raw(x[i]);
  for (int oc = 0; oc < CFG::out_c; oc++) {
    const int g = oc / cout_g;
    for (int p = 0; p < n_pix; p++) s[p] = 0;
    for (int k = 0; k < n_red; k++) {
      const int icg = k / (CFG::k_h * CFG::k_w);
      const int kh = (k / CFG::k_w) % CFG::k_h;
      const int kw = k % CFG::k_w;
      const A* xc = xr + (g * cin_g + icg) * CFG::in_h * CFG::in_w;
      for (int j = 0; j < WTS::n_terms; j++) {
        const A wv = (A)wts.term(oc * n_red + k, j);
        if (wv == 0) continue;
        const int off_w = kw * CFG::dil_w - CFG::pad_w;  // iw = ow * stride_w + off_w
        int ow_lo = 0;
        while (ow_lo < CFG::out_w && ow_lo * CFG::stride_w + off_w < 0) ow_lo++;
        int ow_hi = CFG::out_w;
        while (ow_hi > ow_lo && (ow_hi - 1) * CFG::stride_w + off_w >= CFG::in_w) ow_hi--;
        const int n_ow = ow_hi - ow_lo;
        for (int oh = 0; oh < CFG::out_h; oh++) {
          const int ih = oh * CFG::stride_h + kh * CFG::dil_h - CFG::pad_h;
          if (ih < 0 || ih >= CFG::in_h) continue;
          const A* row = xc + ih * CFG::in_w + ow_lo * CFG::stride_w + off_w;
          A* srow = s + oh * CFG::out_w + ow_lo;
          if (CFG::stride_w == 1) {
            for (int q = 0; q < n_ow; q++) srow[q] += wv * row[q];
          } else {
            for (int q = 0; q < n_ow; q++) srow[q] += wv * row[q * CFG::stride_w];
          }
        }
      }
    }
    const int64_t bias = (int64_t)b[oc] * pow2(sb);
    const int64_t scale = pow2(sx);
    typename CFG::out_t* yc = y + oc * n_pix;
    for (int p = 0; p < n_pix; p++) yc[p] = from_raw<acc_t>(bias + (int64_t)s[p] * scale);
  }
#else
  (void)sx;
  (void)sb;
  const int red_unroll = CFG::red_unroll;
  const int out_unroll = CFG::out_unroll;
  (void)red_unroll;
  (void)out_unroll;
CONV_OC:
  for (int oc = 0; oc < CFG::out_c; oc++) {
    const int g = oc / cout_g;
  CONV_PIX:
    for (int p = 0; p < n_pix; p++) {
#pragma HLS UNROLL factor=out_unroll
      const int oh = p / CFG::out_w;
      const int ow = p % CFG::out_w;
      typedef dot_acc<CFG, WTS> D;
      typename D::A acc = D::init(b[oc]);
    CONV_RED:
      for (int k = 0; k < n_red; k++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=red_unroll
        const int icg = k / (CFG::k_h * CFG::k_w);
        const int kh = (k / CFG::k_w) % CFG::k_h;
        const int kw = k % CFG::k_w;
        const int ih = oh * CFG::stride_h + kh * CFG::dil_h - CFG::pad_h;
        const int iw = ow * CFG::stride_w + kw * CFG::dil_w - CFG::pad_w;
        if (ih >= 0 && ih < CFG::in_h && iw >= 0 && iw < CFG::in_w) {
          D::mac(acc, wts, x[((g * cin_g + icg) * CFG::in_h + ih) * CFG::in_w + iw],
                 oc * n_red + k);
        }
      }
      y[oc * n_pix + p] = D::value(acc, wts, oc * n_red);  // the one cast to the output type
    }
  }
#endif
}

template <class CFG>
void conv2d(const typename CFG::in_t x[CFG::in_c * CFG::in_h * CFG::in_w],
            typename CFG::out_t y[CFG::out_c * CFG::out_h * CFG::out_w],
            const typename raw_storage<typename CFG::weight_t>::type
                w[CFG::out_c * (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w],
            const typename raw_storage<typename CFG::bias_t>::type b[CFG::out_c]) {
  const int red_unroll = CFG::red_unroll;
  (void)red_unroll;
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=red_unroll
  const const_weights<typename CFG::weight_t> wts = QFX_CONST_WEIGHTS(
      CFG, typename CFG::weight_t, CFG::out_c * (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w, w);
  conv2d_core<CFG>(x, y, wts, b);
}

// ------------------------------------------------------------------------------ batchnorm
// CFG: in_t, out_t, acc_t, scale_t, shift_t, n_chan, n_spatial, unroll (positions),
//      chan_unroll (channels; > 1 in the streaming architecture, where n_spatial is 1).
// y[c][p] = (acc_t)(x[c][p] * scale[c] + shift[c]) cast to out_t.
template <class CFG, class WTS>
void batchnorm_core(const typename CFG::in_t x[CFG::n_chan * CFG::n_spatial],
                    typename CFG::out_t y[CFG::n_chan * CFG::n_spatial], const WTS& scale,
                    const typename raw_storage<typename CFG::shift_t>::type shift[CFG::n_chan]) {
#pragma HLS INLINE
  typedef typename CFG::acc_t acc_t;
  typedef typename CFG::scale_t scale_t;
  typedef typename CFG::shift_t shift_t;
  const int sx = fixed_traits<acc_t>::frac - fixed_traits<typename CFG::in_t>::frac -
                 fixed_traits<scale_t>::frac;
  const int sh = fixed_traits<acc_t>::frac - fixed_traits<shift_t>::frac;
  QFX_STATIC_ASSERT(fixed_traits<acc_t>::frac - fixed_traits<typename CFG::in_t>::frac -
                            fixed_traits<scale_t>::frac >= 0,
                    "batchnorm: the accumulator must hold x * scale exactly");
  QFX_STATIC_ASSERT(fixed_traits<acc_t>::frac >= fixed_traits<shift_t>::frac,
                    "batchnorm: the accumulator must hold the shift exactly");
#if QFX_NATIVE
  for (int c = 0; c < CFG::n_chan; c++) {
    const int64_t hr = (int64_t)shift[c] * pow2(sh);
    for (int p = 0; p < CFG::n_spatial; p++) {
      const int i = c * CFG::n_spatial + p;
      const int64_t xr = to_raw(x[i]);
      int64_t prod = 0;
      for (int j = 0; j < WTS::n_terms; j++) prod += xr * scale.term(c, j);
      y[i] = from_raw<acc_t>(prod * pow2(sx) + hr);
    }
  }
#else
  (void)sx;
  (void)sh;
  const int unroll = CFG::unroll;
  (void)unroll;
  const int chan_unroll = CFG::chan_unroll;
  (void)chan_unroll;
BN_CHAN:
  for (int c = 0; c < CFG::n_chan; c++) {
#pragma HLS UNROLL factor=chan_unroll
    const shift_t h = from_raw<shift_t>(shift[c]);
  BN_PIX:
    for (int p = 0; p < CFG::n_spatial; p++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
      const int i = c * CFG::n_spatial + p;
      acc_t acc = h;  // exact (see the static_asserts), then acc += x * scale exactly
      scale.mac(acc, x[i], c);
      y[i] = acc;  // the one cast to the output type
    }
  }
#endif
}

template <class CFG>
void batchnorm(const typename CFG::in_t x[CFG::n_chan * CFG::n_spatial],
               typename CFG::out_t y[CFG::n_chan * CFG::n_spatial],
               const typename raw_storage<typename CFG::scale_t>::type scale[CFG::n_chan],
               const typename raw_storage<typename CFG::shift_t>::type shift[CFG::n_chan]) {
  const const_weights<typename CFG::scale_t> wts =
      QFX_CONST_WEIGHTS(CFG, typename CFG::scale_t, CFG::n_chan, scale);
  batchnorm_core<CFG>(x, y, wts, shift);
}

// ------------------------------------------------------------------------------ relu
// CFG: in_t, out_t, n, unroll.  y = x > 0 ? x : 0, cast to out_t.
template <class CFG>
void relu(const typename CFG::in_t x[CFG::n], typename CFG::out_t y[CFG::n]) {
  const int unroll = CFG::unroll;
  (void)unroll;
RELU:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    if (x[i] > 0) {
      y[i] = x[i];
    } else {
      y[i] = 0;
    }
  }
}

// ------------------------------------------------------------------------------ hardtanh
// CFG: in_t, out_t, clamp_t, n, min_raw, max_raw, unroll.
// c = (clamp_t)x (exact: clamp_t holds in_t and both bounds), clamped to [min, max], cast to out_t.
template <class CFG>
void hardtanh(const typename CFG::in_t x[CFG::n], typename CFG::out_t y[CFG::n]) {
  typedef typename CFG::clamp_t clamp_t;
  const clamp_t lo = from_raw<clamp_t>((long long)CFG::min_raw);
  const clamp_t hi = from_raw<clamp_t>((long long)CFG::max_raw);
  const int unroll = CFG::unroll;
  (void)unroll;
HARDTANH:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    clamp_t c = x[i];
    if (c < lo) c = lo;
    if (c > hi) c = hi;
    y[i] = c;
  }
}

// ------------------------------------------------------------------------------ add
// CFG: in0_t, in1_t, acc_t (the exact sum type), out_t, n, unroll.
template <class CFG>
void add(const typename CFG::in0_t a[CFG::n], const typename CFG::in1_t b[CFG::n],
         typename CFG::out_t y[CFG::n]) {
  typedef typename CFG::acc_t acc_t;
  const int unroll = CFG::unroll;
  (void)unroll;
ADD:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    const acc_t acc = a[i] + b[i];
    y[i] = acc;  // the one cast to the output type
  }
}

// ------------------------------------------------------------------------------ windows
// Sliding-window layers (conv2d, binary_conv2d, maxpool2d, avgpool2d) read tap (kh, kw) of
// output position (oh, ow) at input row/column
//     ih = oh * stride_h + kh * dil_h - pad_h,   iw = ow * stride_w + kw * dil_w - pad_w;
// taps outside the input are padding. The pooling arithmetic below is written once against a
// FETCH accessor, fetch(c, ih, iw) -> in_t, so that the array layers (planar_fetch over an NCHW
// array) and the streaming layers (a line buffer, qfx_stream.h) share it.

/// Input coordinates of tap (kh, kw) of output (oh, ow); false when the tap is padding.
template <class CFG>
inline bool window_tap(int oh, int ow, int kh, int kw, int& ih, int& iw) {
#pragma HLS INLINE
  ih = oh * CFG::stride_h + kh * CFG::dil_h - CFG::pad_h;
  iw = ow * CFG::stride_w + kw * CFG::dil_w - CFG::pad_w;
  return ih >= 0 && ih < CFG::in_h && iw >= 0 && iw < CFG::in_w;
}

/// fetch(c, ih, iw) on a flat NCHW array of H x W planes.
template <class T, int H, int W>
struct planar_fetch {
  const T* x;
  T operator()(int c, int ih, int iw) const {
#pragma HLS INLINE
    return x[(c * H + ih) * W + iw];
  }
};

// CFG (pooling): in_t, chan, in_h, in_w, out_h, out_w, k_h, k_w, stride_h, stride_w, pad_h,
//      pad_w, dil_h, dil_w, unroll (+ out_t, sum_t, acc_t[, recip_t] for average pooling).

/// Max of the window of channel c at (oh, ow). Padded taps never win (PyTorch pads with -inf):
/// they are skipped, the running maximum starts at the type's minimum.
template <class CFG, class FETCH>
typename CFG::in_t max_window(const FETCH& fetch, int c, int oh, int ow) {
#pragma HLS INLINE
  typedef typename CFG::in_t T;
  T m = from_raw<T>(fixed_traits<T>::is_signed ? -((long long)1 << (fixed_traits<T>::width - 1))
                                               : (long long)0);
MAXPOOL_WIN:
  for (int kh = 0; kh < CFG::k_h; kh++) {
    for (int kw = 0; kw < CFG::k_w; kw++) {
      int ih, iw;
      if (window_tap<CFG>(oh, ow, kh, kw, ih, iw)) {
        const T v = fetch(c, ih, iw);
        if (v > m) m = v;
      }
    }
  }
  return m;
}

/// Sum of the window of channel c at (oh, ow) (average pooling: no padding), exact in sum_t.
template <class CFG, class FETCH>
typename CFG::sum_t window_sum(const FETCH& fetch, int c, int oh, int ow) {
#pragma HLS INLINE
  typedef typename CFG::sum_t sum_t;
  QFX_STATIC_ASSERT(fixed_traits<sum_t>::frac == fixed_traits<typename CFG::in_t>::frac,
                    "avgpool2d: the sum type must keep the input's binary point");
#if QFX_NATIVE
  int64_t s = 0;
#else
  sum_t s = 0;
#endif
AVGPOOL_WIN:
  for (int kh = 0; kh < CFG::k_h; kh++) {
    for (int kw = 0; kw < CFG::k_w; kw++) {
      int ih, iw;
#if QFX_NATIVE
      if (window_tap<CFG>(oh, ow, kh, kw, ih, iw)) s += to_raw(fetch(c, ih, iw));
#else
      if (window_tap<CFG>(oh, ow, kh, kw, ih, iw)) s += fetch(c, ih, iw);
#endif
    }
  }
#if QFX_NATIVE
  return from_raw<sum_t>(s);
#else
  return s;
#endif
}

// Pooling ops: op(fetch, c, oh, ow) is the output of channel c at (oh, ow). The array layers
// (pool2d below) and the streaming ones (qfx_stream.h) run the same ops.

/// Max pooling: max_window (the output type is in_t: a max never rounds).
template <class CFG>
struct max_pool {
  template <class FETCH>
  typename CFG::in_t operator()(const FETCH& fetch, int c, int oh, int ow) const {
#pragma HLS INLINE
    return max_window<CFG>(fetch, c, oh, ow);
  }
};

/// Average pooling of area 2**shift: acc_t has sum_t's raw bits with the binary point moved by
/// shift (an exact multiplication by 2**-shift), then the one cast to out_t.
template <class CFG>
struct avg_by_shift {
  template <class FETCH>
  typename CFG::out_t operator()(const FETCH& fetch, int c, int oh, int ow) const {
#pragma HLS INLINE
    QFX_STATIC_ASSERT(fixed_traits<typename CFG::acc_t>::width ==
                          fixed_traits<typename CFG::sum_t>::width,
                      "avgpool2d: the shifted type must have the sum's width");
    return reinterpret<typename CFG::acc_t>(window_sum<CFG>(fetch, c, oh, ow));
  }
};

/// Average pooling: the window sum times recip_t (the fixed-point 1/area), exact in acc_t, then
/// the one cast to out_t.
template <class CFG>
struct avg_by_recip {
  const typename raw_storage<typename CFG::recip_t>::type* recip;
  template <class FETCH>
  typename CFG::out_t operator()(const FETCH& fetch, int c, int oh, int ow) const {
#pragma HLS INLINE
    typedef typename CFG::acc_t acc_t;
    typedef typename CFG::recip_t recip_t;
    const int sa = fixed_traits<acc_t>::frac - fixed_traits<typename CFG::sum_t>::frac -
                   fixed_traits<recip_t>::frac;
    QFX_STATIC_ASSERT(fixed_traits<acc_t>::frac - fixed_traits<typename CFG::sum_t>::frac -
                              fixed_traits<recip_t>::frac >= 0,
                      "avgpool2d: the accumulator must hold sum * recip exactly");
    const typename CFG::sum_t s = window_sum<CFG>(fetch, c, oh, ow);
#if QFX_NATIVE
    return from_raw<acc_t>(to_raw(s) * (int64_t)recip[0] * pow2(sa));
#else
    (void)sa;
    const acc_t acc = mul(s, from_raw<recip_t>(recip[0]));
    return acc;
#endif
  }
};

/// Average pooling with a divisor per output position (padding, ceil_mode or
/// count_include_pad=false, as PyTorch defines them): the window sum (padded taps add nothing)
/// times recip[oh][ow], exact in acc_t, then the one cast to out_t.
template <class CFG>
struct avg_by_recip_map {
  const typename raw_storage<typename CFG::recip_t>::type* recip;
  template <class FETCH>
  typename CFG::out_t operator()(const FETCH& fetch, int c, int oh, int ow) const {
#pragma HLS INLINE
    const avg_by_recip<CFG> at = {recip + oh * CFG::out_w + ow};
    return at(fetch, c, oh, ow);
  }
};

// ------------------------------------------------------------------------------ pooling layers
// CFG: see "windows" (average pooling: no padding, floor mode; output sizes, incl. max pooling's
// ceil_mode, come from the config). pool2d runs OP (max_pool, avg_by_shift, avg_by_recip) at
// every output element.
template <class CFG, class OUT_T, class OP>
void pool2d(const typename CFG::in_t x[CFG::chan * CFG::in_h * CFG::in_w],
            OUT_T y[CFG::chan * CFG::out_h * CFG::out_w], const OP& op) {
#pragma HLS INLINE
  const int unroll = CFG::unroll;
  (void)unroll;
  const planar_fetch<typename CFG::in_t, CFG::in_h, CFG::in_w> fetch = {x};
POOL:
  for (int o = 0; o < CFG::chan * CFG::out_h * CFG::out_w; o++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    y[o] = op(fetch, o / (CFG::out_h * CFG::out_w), (o / CFG::out_w) % CFG::out_h,
              o % CFG::out_w);
  }
}

template <class CFG>
void maxpool2d(const typename CFG::in_t x[CFG::chan * CFG::in_h * CFG::in_w],
               typename CFG::in_t y[CFG::chan * CFG::out_h * CFG::out_w]) {
  pool2d<CFG>(x, y, max_pool<CFG>());
}

template <class CFG>
void avgpool2d_shift(const typename CFG::in_t x[CFG::chan * CFG::in_h * CFG::in_w],
                     typename CFG::out_t y[CFG::chan * CFG::out_h * CFG::out_w]) {
  pool2d<CFG>(x, y, avg_by_shift<CFG>());
}

template <class CFG>
void avgpool2d_recip(const typename CFG::in_t x[CFG::chan * CFG::in_h * CFG::in_w],
                     typename CFG::out_t y[CFG::chan * CFG::out_h * CFG::out_w],
                     const typename raw_storage<typename CFG::recip_t>::type recip[1]) {
  const avg_by_recip<CFG> op = {recip};
  pool2d<CFG>(x, y, op);
}

template <class CFG>
void avgpool2d_recip_map(const typename CFG::in_t x[CFG::chan * CFG::in_h * CFG::in_w],
                         typename CFG::out_t y[CFG::chan * CFG::out_h * CFG::out_w],
                         const typename raw_storage<typename CFG::recip_t>::type
                             recip[CFG::out_h * CFG::out_w]) {
  const avg_by_recip_map<CFG> op = {recip};
  pool2d<CFG>(x, y, op);
}

// ==============================================================================================
// K-hot (multiplier-free) layers.
//
// A K-hot constant c (weight or BatchNorm/binary scale) is stored as its K canonical-signed
// digits, two constant tables in the IR's order: sign[...][K] in {-1, 0, +1} and shift[...][K]
// >= 0, with raw(c) == sum_j sign_j * 2**shift_j (qfx.ir.graph.BINARY_OPS_DOC). A product is
//     x * c == sum_j sign_j * (raw(x) << shift_j)      on the product grid F_x + F_c,
// computed on an exact-width integer (khot_traits::raw_t: W_x + W_c + 1 bits, which the writer
// checks holds every partial sum of the digits), then added to the accumulator: K shifts and at
// most K - 1 adds per product, no multiplication at all (so none can land in a DSP; the
// barrel shifters of a folded layer are LUTs). The accumulator then sees exactly
// the products of the plain layers, so the IR's accumulator sizing applies unchanged.
// The native C-simulation path computes the same digit sums on int64 raw mantissas.

/// Exact product of a value of IN_T and a K-hot constant of C_T (see above).
template <class IN_T, class C_T>
struct khot_traits {
  static const int width = fixed_traits<IN_T>::width + fixed_traits<C_T>::width + 1;
  static const int frac = fixed_traits<IN_T>::frac + fixed_traits<C_T>::frac;
  typedef ap_int<width> raw_t;
  typedef ap_fixed<width, width - frac> prod_t;
};

/// The raw mantissa of x, sign- or zero-extended to an ap_int<W> (W > width of T).
template <int W, class T>
inline ap_int<W> raw_ext(const T& x) {
  typedef typename if_c<fixed_traits<T>::is_signed, ap_int<fixed_traits<T>::width>,
                        ap_uint<fixed_traits<T>::width> >::type R;
  const ap_uint<fixed_traits<T>::width> bits = x.range(fixed_traits<T>::width - 1, 0);
  const R r = bits;  // same width: the bits, read with T's signedness
  return ap_int<W>(r);
}

/// x * c for the K-hot constant c whose digits are sg[0..K-1], sh[0..K-1]: shifts and adds.
template <class IN_T, class C_T, int K, class SG, class SH>
inline typename khot_traits<IN_T, C_T>::prod_t khot_product(const IN_T& x, const SG* sg,
                                                            const SH* sh) {
#pragma HLS INLINE
  typedef typename khot_traits<IN_T, C_T>::raw_t raw_t;
  const raw_t xr = raw_ext<khot_traits<IN_T, C_T>::width>(x);
  raw_t p = 0;
KHOT_DIGITS:
  for (int j = 0; j < K; j++) {
#pragma HLS UNROLL
    const raw_t t = xr << (int)sh[j];
    if (sg[j] > 0) {
      p += t;
    } else if (sg[j] < 0) {
      p -= t;
    }
  }
  return from_raw<typename khot_traits<IN_T, C_T>::prod_t>(p);
}

/// Native path: sum_j sign_j * (xr << shift_j) on int64 (a multiplication by 2**shift is the
/// well-defined spelling of a left shift of a negative integer).
template <int K, class SG, class SH>
inline int64_t khot_native(int64_t xr, const SG* sg, const SH* sh) {
  int64_t p = 0;
  for (int j = 0; j < K; j++) {
    if (sg[j] > 0) {
      p += xr * pow2((int)sh[j]);
    } else if (sg[j] < 0) {
      p -= xr * pow2((int)sh[j]);
    }
  }
  return p;
}

/// K-hot constants of C_T: digit tables sg, sh ([...][K], K = CFG::khot), see above. The native
/// sums run on int64 (the partial digit sums of one product may exceed the accumulator's range).
template <class CFG, class C_T>
struct khot_weights {
  static const int n_terms = CFG::khot;
  static const bool narrow = false;
  static const bool raw_mac = false;  // products by shifts and adds, on ap_fixed values (mac)
  const typename raw_storage<typename CFG::dsign_t>::type* sg;
  const typename raw_storage<typename CFG::dshift_t>::type* sh;
  template <class ACC_T, class IN_T>
  void mac(ACC_T& acc, const IN_T& x, int idx) const {
#pragma HLS INLINE
    const int d = idx * CFG::khot;
    acc += khot_product<IN_T, C_T, CFG::khot>(x, sg + d, sh + d);
  }
  int64_t term(int idx, int j) const {
    const int d = idx * CFG::khot + j;
    if (sg[d] > 0) return pow2((int)sh[d]);
    if (sg[d] < 0) return -pow2((int)sh[d]);
    return 0;
  }
  khot_weights at(int idx0) const {
    const khot_weights s = {sg + idx0 * CFG::khot, sh + idx0 * CFG::khot};
    return s;
  }
};

// ------------------------------------------------------------------------------ dense_khot
// CFG: as dense, plus dsign_t, dshift_t (digit tables' types) and khot (K).
// sg, sh: [n_out][n_in][K]; b: [n_out]. The loops are dense_core's.
template <class CFG>
void dense_khot(const typename CFG::in_t x[CFG::n_in], typename CFG::out_t y[CFG::n_out],
                const typename raw_storage<typename CFG::dsign_t>::type
                    sg[CFG::n_out * CFG::n_in * CFG::khot],
                const typename raw_storage<typename CFG::dshift_t>::type
                    sh[CFG::n_out * CFG::n_in * CFG::khot],
                const typename raw_storage<typename CFG::bias_t>::type b[CFG::n_out]) {
  const int red_unroll = CFG::red_unroll;
  (void)red_unroll;
#pragma HLS ARRAY_PARTITION variable=sg cyclic factor=red_unroll
#pragma HLS ARRAY_PARTITION variable=sh cyclic factor=red_unroll
  const khot_weights<CFG, typename CFG::weight_t> wts = {sg, sh};
  dense_core<CFG>(x, y, wts, b);
}

// ------------------------------------------------------------------------------ conv2d_khot
// CFG: as conv2d, plus dsign_t, dshift_t and khot (K). sg, sh: [out_c][in_c/groups][k_h][k_w][K].
// The loops are conv2d_core's.
template <class CFG>
void conv2d_khot(const typename CFG::in_t x[CFG::in_c * CFG::in_h * CFG::in_w],
                 typename CFG::out_t y[CFG::out_c * CFG::out_h * CFG::out_w],
                 const typename raw_storage<typename CFG::dsign_t>::type
                     sg[CFG::out_c * (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w * CFG::khot],
                 const typename raw_storage<typename CFG::dshift_t>::type
                     sh[CFG::out_c * (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w * CFG::khot],
                 const typename raw_storage<typename CFG::bias_t>::type b[CFG::out_c]) {
  const int red_unroll = CFG::red_unroll;
  (void)red_unroll;
#pragma HLS ARRAY_PARTITION variable=sg cyclic factor=red_unroll
#pragma HLS ARRAY_PARTITION variable=sh cyclic factor=red_unroll
  const khot_weights<CFG, typename CFG::weight_t> wts = {sg, sh};
  conv2d_core<CFG>(x, y, wts, b);
}

// ------------------------------------------------------------------------------ batchnorm_khot
// CFG: as batchnorm, plus dsign_t, dshift_t and khot (K). sg, sh: [n_chan][K] (digits of scale).
// The loops are batchnorm_core's.
template <class CFG>
void batchnorm_khot(const typename CFG::in_t x[CFG::n_chan * CFG::n_spatial],
                    typename CFG::out_t y[CFG::n_chan * CFG::n_spatial],
                    const typename raw_storage<typename CFG::dsign_t>::type
                        sg[CFG::n_chan * CFG::khot],
                    const typename raw_storage<typename CFG::dshift_t>::type
                        sh[CFG::n_chan * CFG::khot],
                    const typename raw_storage<typename CFG::shift_t>::type
                        shift[CFG::n_chan]) {
  const khot_weights<CFG, typename CFG::scale_t> wts = {sg, sh};
  batchnorm_core<CFG>(x, y, wts, shift);
}

// ==============================================================================================
// Binarized layers: XNOR-popcount on packed bits.
//
// A binary edge holds -1/+1 in ap_fixed<2,2>; a layer packs it into 32-bit words, bit 1 <-> +1,
// bit 0 <-> -1 (BINARY_OPS_DOC). Weights come packed the same way: row o of a binary_dense
// (or output channel o of a binary_conv2d, window order [in_c/groups][k_h][k_w]) is n_words
// words, bit i % 32 of word i / 32 = (w_oi == +1); bits at or beyond fan_in are 0 in weights and
// inputs, so they never differ. With N = fan_in:
//     popcount(XNOR(xb, wb)) = N - popcount(xb ^ wb)   (over the N valid bits)
//     dot = 2 * popcount(XNOR) - N = N - 2 * popcount(xb ^ wb).
// binary_conv2d pads with -1, i.e. with bit 0 (pad_value = -1), and every output position has
// the same fan_in. The output stage is one of: the dot itself (acc_t = ap_fixed<B,B> holds
// [-N, N]), dot * scale[c] exactly in acc_t, or the K-hot shift-add of the scale's digits; then
// the one cast to out_t.

#if QFX_NATIVE
inline int popcount_word(uint32_t v) { return __builtin_popcount(v); }
#endif
template <int W>
inline int popcount_word(const ap_uint<W>& v) {
#pragma HLS INLINE
  int c = 0;
POPCOUNT:
  for (int b = 0; b < W; b++) {
#pragma HLS UNROLL
    c += (int)v[b];
  }
  return c;
}

/// The word type the binarized layers compute on (uint32_t in native C-simulation, ap_uint<32>
/// in synthesis and -DQFX_AP_ARITH); their packed weights are stored as raw_storage<word_t>.
template <class CFG>
struct binary_word {
#if QFX_NATIVE
  typedef typename raw_storage<typename CFG::word_t>::type type;
#else
  typedef ap_uint<fixed_traits<typename CFG::word_t>::width> type;
#endif
};

/// Output stages (see above): store(o, dot) writes output o (y[o * stride]) from the dot of
/// output channel o; at(c0, pos) is the stage of channels c0, c0 + 1, ... at position pos (a
/// group of a convolution at one pixel), i.e. y + c0 * stride + pos and the constants from c0.
template <class CFG>
struct binary_store_plain {
  typename CFG::out_t* y;
  int stride;
  void operator()(int o, int dot) const {
#pragma HLS INLINE
    y[o * stride] = from_raw<typename CFG::acc_t>(dot);  // acc_t holds [-N, N]; the one cast
  }
  binary_store_plain at(int c0, int pos) const {
    const binary_store_plain s = {y + c0 * stride + pos, stride};
    return s;
  }
};

template <class CFG>
struct binary_store_scale {
  typename CFG::out_t* y;
  int stride;
  const typename raw_storage<typename CFG::scale_t>::type* scale;
  void operator()(int o, int dot) const {
#pragma HLS INLINE
    typedef typename CFG::acc_t acc_t;
    typedef typename CFG::scale_t scale_t;
#if QFX_NATIVE
    const int sa = fixed_traits<acc_t>::frac - fixed_traits<scale_t>::frac;
    y[o * stride] = from_raw<acc_t>((int64_t)scale[o] * (int64_t)dot * pow2(sa));
#else
    const acc_t acc = mul(from_raw<scale_t>(scale[o]), from_raw<typename CFG::dot_t>(dot));
    y[o * stride] = acc;  // the one cast to the output type
#endif
  }
  binary_store_scale at(int c0, int pos) const {
    const binary_store_scale s = {y + c0 * stride + pos, stride, scale + c0};
    return s;
  }
};

template <class CFG>
struct binary_store_khot {
  typename CFG::out_t* y;
  int stride;
  const typename raw_storage<typename CFG::dsign_t>::type* sg;
  const typename raw_storage<typename CFG::dshift_t>::type* sh;
  void operator()(int o, int dot) const {
#pragma HLS INLINE
    typedef typename CFG::acc_t acc_t;
    typedef typename CFG::scale_t scale_t;
    const int K = CFG::khot;
#if QFX_NATIVE
    const int sa = fixed_traits<acc_t>::frac - fixed_traits<scale_t>::frac;
    y[o * stride] = from_raw<acc_t>(khot_native<K>((int64_t)dot, sg + o * K, sh + o * K) *
                                    pow2(sa));
#else
    const acc_t acc = khot_product<typename CFG::dot_t, scale_t, K>(
        from_raw<typename CFG::dot_t>(dot), sg + o * K, sh + o * K);
    y[o * stride] = acc;  // the one cast to the output type
#endif
  }
  binary_store_khot at(int c0, int pos) const {
    const binary_store_khot s = {y + c0 * stride + pos, stride, sg + c0 * CFG::khot,
                                 sh + c0 * CFG::khot};
    return s;
  }
};

// ------------------------------------------------------------------------------ binary_dense
// CFG: in_t (binary), out_t, acc_t, dot_t, word_t, n_in (= fan_in), n_out, n_words,
//      red_unroll, out_unroll (+ scale_t, dsign_t, dshift_t, khot for the scaled variants).
// w: [n_out][n_words] packed bits.
template <class CFG, class STORE>
void binary_dense_core(const typename CFG::in_t x[CFG::n_in],
                       const typename raw_storage<typename CFG::word_t>::type w[CFG::n_out * CFG::n_words],
                       const STORE& store) {
  typedef typename binary_word<CFG>::type word;
  QFX_STATIC_ASSERT(CFG::n_words * 32 >= CFG::n_in, "binary_dense: too few words");
  word xw[CFG::n_words];
  const int red_unroll = CFG::red_unroll;
  const int out_unroll = CFG::out_unroll;
  (void)red_unroll;
  (void)out_unroll;
#pragma HLS ARRAY_PARTITION variable=xw cyclic factor=red_unroll
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=red_unroll
BIN_DENSE_PACK:
  for (int k = 0; k < CFG::n_words; k++) {
    word v = 0;
    for (int b = 0; b < 32; b++) {
#pragma HLS UNROLL
      const int i = k * 32 + b;
      if (i < CFG::n_in && x[i] > 0) v |= (word)1 << b;
    }
    xw[k] = v;
  }
BIN_DENSE_OUT:
  for (int o = 0; o < CFG::n_out; o++) {
#pragma HLS UNROLL factor=out_unroll
    int mism = 0;
  BIN_DENSE_RED:
    for (int k = 0; k < CFG::n_words; k++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=red_unroll
      mism += popcount_word((word)(xw[k] ^ w[o * CFG::n_words + k]));
    }
    store(o, CFG::n_in - 2 * mism);
  }
}

template <class CFG>
void binary_dense(const typename CFG::in_t x[CFG::n_in], typename CFG::out_t y[CFG::n_out],
                  const typename raw_storage<typename CFG::word_t>::type w[CFG::n_out * CFG::n_words]) {
  const binary_store_plain<CFG> st = {y, 1};
  binary_dense_core<CFG>(x, w, st);
}

template <class CFG>
void binary_dense_scale(const typename CFG::in_t x[CFG::n_in], typename CFG::out_t y[CFG::n_out],
                        const typename raw_storage<typename CFG::word_t>::type w[CFG::n_out * CFG::n_words],
                        const typename raw_storage<typename CFG::scale_t>::type
                            scale[CFG::n_out]) {
  const binary_store_scale<CFG> st = {y, 1, scale};
  binary_dense_core<CFG>(x, w, st);
}

template <class CFG>
void binary_dense_khot(const typename CFG::in_t x[CFG::n_in], typename CFG::out_t y[CFG::n_out],
                       const typename raw_storage<typename CFG::word_t>::type w[CFG::n_out * CFG::n_words],
                       const typename raw_storage<typename CFG::dsign_t>::type
                           sg[CFG::n_out * CFG::khot],
                       const typename raw_storage<typename CFG::dshift_t>::type
                           sh[CFG::n_out * CFG::khot]) {
  const binary_store_khot<CFG> st = {y, 1, sg, sh};
  binary_dense_core<CFG>(x, w, st);
}

// ------------------------------------------------------------------------------ binary_conv2d
// CFG: in_t (binary), out_t, acc_t, dot_t, word_t, in_c, in_h, in_w, out_c, out_h, out_w, k_h,
//      k_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, fan_in, n_words,
//      red_unroll, out_unroll (+ scale_t, dsign_t, dshift_t, khot for the scaled variants).
// w: [out_c][n_words] packed bits of [in_c/groups][k_h][k_w]. Padding: -1 (bit 0).
// Each output pixel and group is a binary_dense of the window (conv_group_binary) over the
// group's weight rows.

/// One group of a binary_conv2d at one pixel, as the binary_dense_core configuration.
template <class CFG>
struct conv_group_binary {
  typedef typename CFG::in_t in_t;
  typedef typename CFG::word_t word_t;
  static const int n_in = CFG::fan_in;
  static const int n_out = CFG::out_c / CFG::groups;
  static const int n_words = CFG::n_words;
  static const int red_unroll = CFG::red_unroll;
  static const int out_unroll = CFG::out_unroll;
};

/// win[(icg * k_h + kh) * k_w + kw] = the window of group g at (oh, ow); padded taps get `pad`.
template <class CFG, class FETCH>
void gather_window(const FETCH& fetch, int g, int oh, int ow, typename CFG::in_t pad,
                   typename CFG::in_t win[(CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w]) {
#pragma HLS INLINE
  const int cin_g = CFG::in_c / CFG::groups;
GATHER:
  for (int icg = 0; icg < cin_g; icg++) {
    for (int kh = 0; kh < CFG::k_h; kh++) {
      for (int kw = 0; kw < CFG::k_w; kw++) {
        int ih, iw;
        win[(icg * CFG::k_h + kh) * CFG::k_w + kw] =
            window_tap<CFG>(oh, ow, kh, kw, ih, iw) ? fetch(g * cin_g + icg, ih, iw) : pad;
      }
    }
  }
}

/// The binary_conv2d of output pixel (oh, ow), every group, into store (see binary_store_*).
template <class CFG, class FETCH, class STORE>
void binary_conv2d_pixel(const FETCH& fetch, int oh, int ow,
                         const typename raw_storage<typename CFG::word_t>::type w[CFG::out_c * CFG::n_words],
                         const STORE& store, int pos) {
#pragma HLS INLINE
  const int cout_g = CFG::out_c / CFG::groups;
  typename CFG::in_t win[CFG::fan_in];
BIN_CONV_GROUP:
  for (int g = 0; g < CFG::groups; g++) {
    gather_window<CFG>(fetch, g, oh, ow, typename CFG::in_t(-1), win);
    binary_dense_core<conv_group_binary<CFG> >(win, w + g * cout_g * CFG::n_words,
                                               store.at(g * cout_g, pos));
  }
}

template <class CFG, class STORE>
void binary_conv2d_core(const typename CFG::in_t x[CFG::in_c * CFG::in_h * CFG::in_w],
                        const typename raw_storage<typename CFG::word_t>::type w[CFG::out_c * CFG::n_words],
                        const STORE& store) {
  QFX_STATIC_ASSERT(CFG::fan_in == (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w,
                    "binary_conv2d: fan_in must be in_c/groups * k_h * k_w");
  QFX_STATIC_ASSERT(CFG::in_c % CFG::groups == 0 && CFG::out_c % CFG::groups == 0,
                    "binary_conv2d: channels must be divisible by groups");
  const planar_fetch<typename CFG::in_t, CFG::in_h, CFG::in_w> fetch = {x};
BIN_CONV_PIX:
  for (int p = 0; p < CFG::out_h * CFG::out_w; p++) {
    binary_conv2d_pixel<CFG>(fetch, p / CFG::out_w, p % CFG::out_w, w, store, p);
  }
}

template <class CFG>
void binary_conv2d(const typename CFG::in_t x[CFG::in_c * CFG::in_h * CFG::in_w],
                   typename CFG::out_t y[CFG::out_c * CFG::out_h * CFG::out_w],
                   const typename raw_storage<typename CFG::word_t>::type w[CFG::out_c * CFG::n_words]) {
  const binary_store_plain<CFG> st = {y, CFG::out_h * CFG::out_w};
  binary_conv2d_core<CFG>(x, w, st);
}

template <class CFG>
void binary_conv2d_scale(const typename CFG::in_t x[CFG::in_c * CFG::in_h * CFG::in_w],
                         typename CFG::out_t y[CFG::out_c * CFG::out_h * CFG::out_w],
                         const typename raw_storage<typename CFG::word_t>::type w[CFG::out_c * CFG::n_words],
                         const typename raw_storage<typename CFG::scale_t>::type
                             scale[CFG::out_c]) {
  const binary_store_scale<CFG> st = {y, CFG::out_h * CFG::out_w, scale};
  binary_conv2d_core<CFG>(x, w, st);
}

template <class CFG>
void binary_conv2d_khot(const typename CFG::in_t x[CFG::in_c * CFG::in_h * CFG::in_w],
                        typename CFG::out_t y[CFG::out_c * CFG::out_h * CFG::out_w],
                        const typename raw_storage<typename CFG::word_t>::type w[CFG::out_c * CFG::n_words],
                        const typename raw_storage<typename CFG::dsign_t>::type
                            sg[CFG::out_c * CFG::khot],
                        const typename raw_storage<typename CFG::dshift_t>::type
                            sh[CFG::out_c * CFG::khot]) {
  const binary_store_khot<CFG> st = {y, CFG::out_h * CFG::out_w, sg, sh};
  binary_conv2d_core<CFG>(x, w, st);
}

// ------------------------------------------------------------------------------ threshold
// CFG: in_t, out_t (binary), threshold_t (frac bits == in_t's), dir_t, n_chan, n_spatial,
//      unroll, chan_unroll (as batchnorm). t, dir: [n_chan]. y = +1 if (dir > 0 ? x >= T : x <= T) else -1, compared
// exactly on the input's grid.
template <class CFG>
void threshold(const typename CFG::in_t x[CFG::n_chan * CFG::n_spatial],
               typename CFG::out_t y[CFG::n_chan * CFG::n_spatial],
               const typename raw_storage<typename CFG::threshold_t>::type t[CFG::n_chan],
               const typename raw_storage<typename CFG::dir_t>::type dir[CFG::n_chan]) {
  typedef typename CFG::out_t out_t;
  QFX_STATIC_ASSERT(fixed_traits<typename CFG::threshold_t>::frac ==
                        fixed_traits<typename CFG::in_t>::frac,
                    "threshold: the threshold must be on the input's grid");
  const out_t plus = 1;
  const out_t minus = -1;
  const int unroll = CFG::unroll;
  (void)unroll;
  const int chan_unroll = CFG::chan_unroll;
  (void)chan_unroll;
THRESH_CHAN:
  for (int c = 0; c < CFG::n_chan; c++) {
#pragma HLS UNROLL factor=chan_unroll
    const bool up = dir[c] > 0;
#if QFX_NATIVE
    const int64_t tr = (int64_t)t[c];
#else
    const typename CFG::threshold_t tv = from_raw<typename CFG::threshold_t>(t[c]);
#endif
  THRESH_PIX:
    for (int p = 0; p < CFG::n_spatial; p++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
      const int i = c * CFG::n_spatial + p;
#if QFX_NATIVE
      const int64_t a = to_raw(x[i]);
      const bool pos = up ? (a >= tr) : (a <= tr);
#else
      const bool pos = up ? (x[i] >= tv) : (x[i] <= tv);
#endif
      y[i] = pos ? plus : minus;
    }
  }
}

// ------------------------------------------------------------------------------ thermometer
// CFG: in_t, out_t (binary), threshold_t (frac bits == in_t's), n_chan, n_spatial, levels,
//      unroll. t: [levels] non-decreasing. y[(c * levels + k) * n_spatial + p] =
//      +1 if x[c * n_spatial + p] >= t[k] else -1.
template <class CFG>
void thermometer(const typename CFG::in_t x[CFG::n_chan * CFG::n_spatial],
                 typename CFG::out_t y[CFG::n_chan * CFG::levels * CFG::n_spatial],
                 const typename raw_storage<typename CFG::threshold_t>::type t[CFG::levels]) {
  typedef typename CFG::out_t out_t;
  QFX_STATIC_ASSERT(fixed_traits<typename CFG::threshold_t>::frac ==
                        fixed_traits<typename CFG::in_t>::frac,
                    "thermometer: the thresholds must be on the input's grid");
  const out_t plus = 1;
  const out_t minus = -1;
  const int unroll = CFG::unroll;
  (void)unroll;
THERMO:
  for (int i = 0; i < CFG::n_chan * CFG::n_spatial; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    const int c = i / CFG::n_spatial;
    const int p = i % CFG::n_spatial;
#if QFX_NATIVE
    const int64_t a = to_raw(x[i]);
#endif
  THERMO_LEVEL:
    for (int k = 0; k < CFG::levels; k++) {
#if QFX_NATIVE
      const bool pos = a >= (int64_t)t[k];
#else
      const bool pos = x[i] >= from_raw<typename CFG::threshold_t>(t[k]);
#endif
      y[(c * CFG::levels + k) * CFG::n_spatial + p] = pos ? plus : minus;
    }
  }
}

// ------------------------------------------------------------------------------ multithreshold
// CFG: in_t, out_t, threshold_t (frac bits == in_t's), dir_t, n_chan, n_spatial, levels,
//      out_scale_raw, out_bias_raw (the levels on out_t's raw grid), unroll, chan_unroll (as
//      batchnorm). t: [n_chan][levels], dir: [n_chan]. For x = x[c * n_spatial + p]:
//        count = #{k : dir > 0 ? x >= t[c][k] : x <= t[c][k]}   (compared exactly on x's grid)
//        raw(y) = count * out_scale_raw + out_bias_raw         (the IR proves it fits out_t)
// Comparisons and a popcount only; the constant scale and offset are shifts and adds (fabric).
template <class CFG>
void multithreshold(const typename CFG::in_t x[CFG::n_chan * CFG::n_spatial],
                    typename CFG::out_t y[CFG::n_chan * CFG::n_spatial],
                    const typename raw_storage<typename CFG::threshold_t>::type
                        t[CFG::n_chan * CFG::levels],
                    const typename raw_storage<typename CFG::dir_t>::type dir[CFG::n_chan]) {
  QFX_STATIC_ASSERT(fixed_traits<typename CFG::threshold_t>::frac ==
                        fixed_traits<typename CFG::in_t>::frac,
                    "multithreshold: the thresholds must be on the input's grid");
  const int unroll = CFG::unroll;
  (void)unroll;
  const int chan_unroll = CFG::chan_unroll;
  (void)chan_unroll;
MT_CHAN:
  for (int c = 0; c < CFG::n_chan; c++) {
#pragma HLS UNROLL factor=chan_unroll
    const bool up = dir[c] > 0;
  MT_PIX:
    for (int p = 0; p < CFG::n_spatial; p++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
      const int i = c * CFG::n_spatial + p;
#if QFX_NATIVE
      const int64_t a = to_raw(x[i]);
#endif
      int count = 0;
    MT_LEVEL:
      for (int k = 0; k < CFG::levels; k++) {
#pragma HLS UNROLL
#if QFX_NATIVE
        const int64_t tr = (int64_t)t[c * CFG::levels + k];
        const bool hit = up ? (a >= tr) : (a <= tr);
#else
        const typename CFG::threshold_t tv =
            from_raw<typename CFG::threshold_t>(t[c * CFG::levels + k]);
        const bool hit = up ? (x[i] >= tv) : (x[i] <= tv);
#endif
        count += hit ? 1 : 0;
      }
      // a constant multiply: shifts and adds in the fabric, never a DSP
      const long long scaled = (long long)count * CFG::out_scale_raw;
#pragma HLS BIND_OP variable=scaled op=mul impl=fabric
      y[i] = from_raw<typename CFG::out_t>(scaled + CFG::out_bias_raw);
    }
  }
}

// ------------------------------------------------------------------------------ concat
// (ops-graph) CFG: in0_t, in1_t, acc_t (holds every value of both exactly), out_t, n0, n1,
// unroll.  y = [a, b]: NCHW arrays, so a channel concatenation is a's block then b's; each value
// goes through acc_t (exact), then the one cast to out_t.
template <class CFG>
void concat(const typename CFG::in0_t a[CFG::n0], const typename CFG::in1_t b[CFG::n1],
            typename CFG::out_t y[CFG::n0 + CFG::n1]) {
  typedef typename CFG::acc_t acc_t;
  const int unroll = CFG::unroll;
  (void)unroll;
CONCAT_A:
  for (int i = 0; i < CFG::n0; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    const acc_t v = a[i];
    y[i] = v;  // the one cast to the output type
  }
CONCAT_B:
  for (int i = 0; i < CFG::n1; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    const acc_t v = b[i];
    y[CFG::n0 + i] = v;
  }
}

// ------------------------------------------------------------------------------ mul
// (ops-graph) CFG: in0_t, in1_t, acc_t (ap_fixed's product type: W0 + W1, I0 + I1, exact),
// out_t, n, spatial, unroll.  y[i] = x[i] * g[i / spatial], cast to out_t; spatial = H * W for a
// per-channel gate ([C] or [C][1][1] over [C][H][W]), else 1.
template <class CFG>
void mul(const typename CFG::in0_t x[CFG::n], const typename CFG::in1_t g[CFG::n / CFG::spatial],
         typename CFG::out_t y[CFG::n]) {
  typedef typename CFG::acc_t acc_t;
  const int unroll = CFG::unroll;
  (void)unroll;
MUL:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    const acc_t p = mul(x[i], g[i / CFG::spatial]);
    y[i] = p;  // the one cast to the output type
  }
}

// ------------------------------------------------------------------------------ upsample, pad
// (ops-graph) Values moved, never computed: the output has the input's format (no cast).
// CFG: in_t, out_t, chan, in_h, in_w, out_h, out_w, unroll; upsample adds scale_h, scale_w
// (nearest: y[c][h][w] = x[c][h / scale_h][w / scale_w]); pad adds pad_top, pad_left and
// value_raw (the border's raw mantissa in in_t).
template <class CFG>
void upsample(const typename CFG::in_t x[CFG::chan * CFG::in_h * CFG::in_w],
              typename CFG::out_t y[CFG::chan * CFG::out_h * CFG::out_w]) {
  const int unroll = CFG::unroll;
  (void)unroll;
UPSAMPLE:
  for (int i = 0; i < CFG::chan * CFG::out_h * CFG::out_w; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    const int ow = i % CFG::out_w;
    const int oh = (i / CFG::out_w) % CFG::out_h;
    const int c = i / (CFG::out_w * CFG::out_h);
    y[i] = x[(c * CFG::in_h + oh / CFG::scale_h) * CFG::in_w + ow / CFG::scale_w];
  }
}

template <class CFG>
inline bool pad_inside(int oh, int ow, int& ih, int& iw) {
#pragma HLS INLINE
  ih = oh - CFG::pad_top;
  iw = ow - CFG::pad_left;
  return ih >= 0 && ih < CFG::in_h && iw >= 0 && iw < CFG::in_w;
}

template <class CFG>
void pad(const typename CFG::in_t x[CFG::chan * CFG::in_h * CFG::in_w],
         typename CFG::out_t y[CFG::chan * CFG::out_h * CFG::out_w]) {
  const typename CFG::in_t value = from_raw<typename CFG::in_t>((long long)CFG::value_raw);
  const int unroll = CFG::unroll;
  (void)unroll;
PAD:
  for (int i = 0; i < CFG::chan * CFG::out_h * CFG::out_w; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    const int ow = i % CFG::out_w;
    const int oh = (i / CFG::out_w) % CFG::out_h;
    const int c = i / (CFG::out_w * CFG::out_h);
    int ih, iw;
    y[i] = pad_inside<CFG>(oh, ow, ih, iw) ? x[(c * CFG::in_h + ih) * CFG::in_w + iw] : value;
  }
}

// ============================================================================================
// ops-window: exact piecewise-linear activations (leaky_relu, hardsigmoid, hardswish). Each
// computes its result exactly on ap_fixed values (the IR sizes every intermediate type), then
// applies the one cast to out_t; both arithmetic paths run this code (no sums to reorder).

// ------------------------------------------------------------------------------ leaky_relu
// CFG: in_t, out_t, acc_t (in_t's bits with the binary point moved by the slope's shift k:
// acc_t(x) == x * 2**-k exactly), n, unroll.  y = x >= 0 ? x : x * 2**-k, cast to out_t.
template <class CFG>
void leaky_relu(const typename CFG::in_t x[CFG::n], typename CFG::out_t y[CFG::n]) {
  const int unroll = CFG::unroll;
  (void)unroll;
LEAKY_RELU:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    if (x[i] >= 0) {
      y[i] = x[i];
    } else {
      y[i] = reinterpret<typename CFG::acc_t>(x[i]);
    }
  }
}

// ------------------------------------------------------------------------------ hard gates
// CFG: in_t, out_t, scale_t, gate_t, acc_t, scale_raw, n, unroll.
// g = clamp(x * c + 1/2, 0, 1) exactly in gate_t (c = scale_raw in scale_t; the IR sizes gate_t
// to hold every x * c + 1/2 and both bounds); hardsigmoid: y = g; hardswish: y = x * g, exact
// in acc_t; then the one cast to out_t.
template <class CFG>
inline typename CFG::gate_t hard_gate(const typename CFG::in_t& x) {
#pragma HLS INLINE
  typedef typename CFG::gate_t gate_t;
  const typename CFG::scale_t c = from_raw<typename CFG::scale_t>((long long)CFG::scale_raw);
  const ap_ufixed<1, 0> half = from_raw<ap_ufixed<1, 0> >(1);
  gate_t g = mul(x, c) + half;  // exact: full precision, then a gate_t that holds it
  const gate_t zero = 0;
  const gate_t one = 1;
  if (g < zero) g = zero;
  if (g > one) g = one;
  return g;
}

template <class CFG>
void hardsigmoid(const typename CFG::in_t x[CFG::n], typename CFG::out_t y[CFG::n]) {
  const int unroll = CFG::unroll;
  (void)unroll;
HARDSIGMOID:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    y[i] = hard_gate<CFG>(x[i]);  // the one cast to the output type
  }
}

template <class CFG>
void hardswish(const typename CFG::in_t x[CFG::n], typename CFG::out_t y[CFG::n]) {
  const int unroll = CFG::unroll;
  (void)unroll;
HARDSWISH:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    const typename CFG::acc_t acc = mul(x[i], hard_gate<CFG>(x[i]));  // exact in acc_t
    y[i] = acc;  // the one cast to the output type
  }
}
// ==================================================================== end of ops-window block

// ------------------------------------------------------------------------------ table activations
// sigmoid, tanh, exp and softmax (qfx/ir/ops/table.py). A table is a ROM of raw values of its
// output type, filled by qfx from the exact function (qfx.fixed.tables) over every code of its
// index type, and read at the index's raw bits taken as an unsigned integer; the executor reads
// the same array, so the two agree by construction. No arithmetic path differs: both C-simulation
// builds run this ap_fixed code. The tables are `static const` arrays (weights/*.h), which HLS
// maps to ROM; BIND_STORAGE asks for a dual-port ROM (two lanes per copy; the estimate counts
// one copy per two lanes).

/// The raw bits of x as an unsigned table index.
template <class T>
inline unsigned table_index(const T& x) {
#pragma HLS INLINE
  return (unsigned)x.range(fixed_traits<T>::width - 1, 0).to_uint();
}

// CFG: in_t, out_t, n, n_table (2**W_in), unroll. y[i] = table[bits(x[i])] (the table holds
// out_t values: no cast).
template <class CFG>
void table_lookup(const typename CFG::in_t x[CFG::n], typename CFG::out_t y[CFG::n],
                  const typename raw_storage<typename CFG::out_t>::type table[CFG::n_table]) {
#pragma HLS BIND_STORAGE variable=table type=rom_2p
  const int unroll = CFG::unroll;
  (void)unroll;
TABLE:
  for (int i = 0; i < CFG::n; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
    y[i] = from_raw<typename CFG::out_t>(table[table_index(x[i])]);
  }
}

// CFG: in_t, out_t, diff_t, exp_t, sum_t, recip_t, acc_t, n_chan, n_spatial, n_exp (2**W_diff),
//      n_recip (2**W_sum), unroll. x, y: [n_chan][n_spatial]; per position p, over the channels:
//   m = max_c x;  d_c = m - x_c (exact in diff_t);  e_c = exp_table[bits(d_c)] = exp(-d_c);
//   s = sum_c e_c (exact in sum_t);  r = recip_table[bits(s)] = 1/s;  y_c = (acc_t)(e_c * r)
//   (exact), cast once to out_t.
template <class CFG>
void softmax(const typename CFG::in_t x[CFG::n_chan * CFG::n_spatial],
             typename CFG::out_t y[CFG::n_chan * CFG::n_spatial],
             const typename raw_storage<typename CFG::exp_t>::type exp_table[CFG::n_exp],
             const typename raw_storage<typename CFG::recip_t>::type recip_table[CFG::n_recip]) {
#pragma HLS BIND_STORAGE variable=exp_table type=rom_2p
#pragma HLS BIND_STORAGE variable=recip_table type=rom_1p
  typedef typename CFG::exp_t exp_t;
  typedef typename CFG::recip_t recip_t;
  const int unroll = CFG::unroll;
  (void)unroll;
SOFTMAX_POS:
  for (int p = 0; p < CFG::n_spatial; p++) {
    typename CFG::in_t m = x[p];
  SOFTMAX_MAX:
    for (int c = 1; c < CFG::n_chan; c++) {
#pragma HLS PIPELINE II=1
      if (x[c * CFG::n_spatial + p] > m) m = x[c * CFG::n_spatial + p];
    }
    exp_t e[CFG::n_chan];
#pragma HLS ARRAY_PARTITION variable=e cyclic factor=unroll
    typename CFG::sum_t s = 0;
  SOFTMAX_EXP:
    for (int c = 0; c < CFG::n_chan; c++) {
#pragma HLS PIPELINE II=1
      const typename CFG::diff_t d = m - x[c * CFG::n_spatial + p];
      e[c] = from_raw<exp_t>(exp_table[table_index(d)]);
      s += e[c];
    }
    const recip_t r = from_raw<recip_t>(recip_table[table_index(s)]);
  SOFTMAX_OUT:
    for (int c = 0; c < CFG::n_chan; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=unroll
      const typename CFG::acc_t a = mul(e[c], r);
      y[c * CFG::n_spatial + p] = a;  // the one cast to the output type
    }
  }
}

// ------------------------------------------------------------------------------ shifted weights
// Per-channel formats (learned widths): output channel o's weights are narrow mantissas times
// 2**s[o], raw(w[idx]) == m[idx] << s[idx / ROW] (ROW: weights per output channel). m is stored
// in M_T = CFG::weight_t, the narrowest type holding every channel's mantissas (on the finest
// channel's grid, so F(M_T) == F_w and the accumulator's alignment is unchanged): each multiply
// is x * m on the channel's own width, not on the tensor's common wide grid, whichever output
// channel the multiplier serves. dense_core / conv2d_core (raw_mac) sum an output's mantissa
// products and shift the sum once by its channel's shift (the dot_acc below); mac (batchnorm,
// one product per output) forms x * m exactly in P_T (W_x + W_m + 1 bits and MAXS = max s more
// integer bits) and shifts it there by s[o]. The native path forms raw(w) from m, s.
template <class M_T, class S_T, int ROW, int MAXS, int MINS>
struct shifted_weights {
  static const int n_terms = 1;
  static const bool narrow = true;
  static const bool raw_mac = true;  // dense_core/conv2d_core: mantissa sums, shifted per output
  const_weights<M_T> m;
  const typename raw_storage<S_T>::type* s;
  int base;  // the layer index of m's first constant (see at)
  template <class ACC_T, class IN_T>
  void mac(ACC_T& acc, const IN_T& x, int idx) const {
#pragma HLS INLINE
    typedef ap_fixed<fixed_traits<IN_T>::width + fixed_traits<M_T>::width + MAXS + 1,
                     fixed_traits<IN_T>::iwidth + fixed_traits<M_T>::iwidth + MAXS + 1>
        P_T;
    P_T p = 0;
    m.mac(p, x, idx);            // x * m, exact
    acc += p << shift(idx);      // x * w, exact in P_T
  }
  /// The mantissa of constant idx as raw_int<M_T>.
  const typename raw_int<M_T>::type& raw(int idx) const {
#pragma HLS INLINE
    return m.raw(idx);
  }
  /// The shift of constant idx's output channel.
  int shift(int idx) const {
#pragma HLS INLINE
    return (int)s[(base + idx) / ROW];
  }
  int64_t term(int idx, int j) const { return m.term(idx, j) * pow2(shift(idx)); }
  shifted_weights at(int idx0) const {
    const shifted_weights r = {m.at(idx0), s, base + idx0};
    return r;
  }
};

// raw_dot on shifted_weights (synthesis and -DQFX_AP_ARITH), whatever the folding: since every
// weight of output o is m << s[o],
//   sum_k raw(x_k) * (m_k << s[o]) == (sum_k raw(x_k) * m_k) << s[o]
// exactly in integers, so the accumulator A holds the bias (raw(b) << sb, acc_t's lsb, as
// raw_dot) and the output's mantissa sum (each product raw(x) * m << sx, exact: W_x + W_m
// bits), and value() shifts the sum once by s[o] and adds the bias. Exact: every step is an
// addition, a multiplication or a left shift of integers modulo 2**W (W: acc_t's width), the
// mantissa sum is kept modulo 2**MW, MW = W - MINS (MINS = CFG::min_shift <= s[o] for every
// o), and (v mod 2**MW) << s[o] == (v << s[o]) mod 2**W; the true result fits acc_t (the IR's
// accumulator sizing), so its W bits are exactly raw_dot's. In hardware: the multipliers are
// W_x x W_m (M_T) for every output channel they serve, the sum's adders MW bits, and one
// variable shifter per output lane (wiring where the output channel is fixed, unrolled).
template <class CFG, class M_T, class S_T, int ROW, int MAXS, int MINS>
struct dot_acc<CFG, shifted_weights<M_T, S_T, ROW, MAXS, MINS>, true> {
  typedef shifted_weights<M_T, S_T, ROW, MAXS, MINS> WTS;
  typedef typename CFG::acc_t acc_t;
  typedef typename CFG::bias_t bias_t;
  typedef typename raw_int<acc_t>::type R;
  static const int W = fixed_traits<acc_t>::width;
  static const int MW = W > MINS ? W - MINS : 1;
  static const int sx = fixed_traits<acc_t>::frac - fixed_traits<typename CFG::in_t>::frac -
                        fixed_traits<M_T>::frac;
  static const int sb = fixed_traits<acc_t>::frac - fixed_traits<bias_t>::frac;
  struct A {
    R bias;          // raw(b) << sb
    ap_int<MW> sum;  // sum of (raw(x) * m) << sx, modulo 2**MW
  };
  static A init(const typename raw_storage<bias_t>::type& b) {
#pragma HLS INLINE
    A a;
    a.bias = raw_bits(from_raw<bias_t>(b));
    a.bias <<= sb;
    a.sum = 0;
    return a;
  }
  static void mac(A& a, const WTS& wts, const typename CFG::in_t& x, int idx) {
#pragma HLS INLINE
    raw_add_shifted<sx>::add(a.sum, mul(raw_bits(x), wts.raw(idx)));
  }
  static acc_t value(const A& a, const WTS& wts, int idx) {
#pragma HLS INLINE
    R t = a.sum;  // the bits above MW are shifted out (s[o] >= W - MW)
    t <<= wts.shift(idx);
    t += a.bias;
    return from_raw<acc_t>(t);
  }
};

// CFG: as dense, plus shift_t, max_shift and min_shift. w: [n_out][n_in] mantissas, s: [n_out], b: [n_out].
template <class CFG>
void dense_shifted(const typename CFG::in_t x[CFG::n_in], typename CFG::out_t y[CFG::n_out],
                   const typename raw_storage<typename CFG::weight_t>::type
                       w[CFG::n_out * CFG::n_in],
                   const typename raw_storage<typename CFG::shift_t>::type s[CFG::n_out],
                   const typename raw_storage<typename CFG::bias_t>::type b[CFG::n_out]) {
  const int red_unroll = CFG::red_unroll;
  (void)red_unroll;
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=red_unroll
  const shifted_weights<typename CFG::weight_t, typename CFG::shift_t, CFG::n_in,
                        CFG::max_shift, CFG::min_shift> wts = {
      QFX_CONST_WEIGHTS(CFG, typename CFG::weight_t, CFG::n_out * CFG::n_in, w), s, 0};
  dense_core<CFG>(x, y, wts, b);
}

/// The per-channel-format weights of conv2d layer CFG (both architectures): mantissas w
/// ([out_c][in_c/groups][k_h][k_w]) and one shift per output channel s.
template <class CFG>
struct conv2d_shifted_weights {
  static const int row = (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w;
  typedef shifted_weights<typename CFG::weight_t, typename CFG::shift_t, row, CFG::max_shift,
                          CFG::min_shift> type;
  static type of(const typename raw_storage<typename CFG::weight_t>::type* w,
                 const typename raw_storage<typename CFG::shift_t>::type* s) {
#pragma HLS INLINE
    const type wts = {QFX_CONST_WEIGHTS(CFG, typename CFG::weight_t, CFG::out_c * row, w), s, 0};
    return wts;
  }
};

// CFG: as conv2d, plus shift_t, max_shift and min_shift. w: [out_c][in_c/groups][k_h][k_w] mantissas,
// s: [out_c].
template <class CFG>
void conv2d_shifted(const typename CFG::in_t x[CFG::in_c * CFG::in_h * CFG::in_w],
                    typename CFG::out_t y[CFG::out_c * CFG::out_h * CFG::out_w],
                    const typename raw_storage<typename CFG::weight_t>::type
                        w[CFG::out_c * (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w],
                    const typename raw_storage<typename CFG::shift_t>::type s[CFG::out_c],
                    const typename raw_storage<typename CFG::bias_t>::type b[CFG::out_c]) {
  const int red_unroll = CFG::red_unroll;
  (void)red_unroll;
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=red_unroll
  conv2d_core<CFG>(x, y, conv2d_shifted_weights<CFG>::of(w, s), b);
}

// ------------------------------------------------------------------------------ batchnorm_shifted
// BatchNorm with per-channel scale formats (learned widths): scale[c] == m[c] << s[c], m in
// CFG::scale_t (the mantissas' narrow type, on the scale's grid). The loops are
// batchnorm_core's: each product is x * m on the mantissa's width, shifted by s[c] exactly
// (shifted_weights::mac), then added to the shift. CFG: as batchnorm, plus sshift_t (the
// shifts' type), max_shift and min_shift. scale: [n_chan] mantissas, ss: [n_chan] shifts.
template <class CFG>
void batchnorm_shifted(const typename CFG::in_t x[CFG::n_chan * CFG::n_spatial],
                       typename CFG::out_t y[CFG::n_chan * CFG::n_spatial],
                       const typename raw_storage<typename CFG::scale_t>::type scale[CFG::n_chan],
                       const typename raw_storage<typename CFG::sshift_t>::type ss[CFG::n_chan],
                       const typename raw_storage<typename CFG::shift_t>::type shift[CFG::n_chan]) {
  typedef shifted_weights<typename CFG::scale_t, typename CFG::sshift_t, 1, CFG::max_shift,
                          CFG::min_shift> W;
  const W wts = {QFX_CONST_WEIGHTS(CFG, typename CFG::scale_t, CFG::n_chan, scale), ss, 0};
  batchnorm_core<CFG>(x, y, wts, shift);
}

// ------------------------------------------------------------------------------ copy
// Copies an internal array to an output port (same type: no cast).
template <class T, int N>
void copy(const T x[N], T y[N]) {
COPY:
  for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
    y[i] = x[i];
  }
}

}  // namespace qfx

#if defined(__GNUC__) && !defined(__SYNTHESIS__)
#pragma GCC diagnostic pop
#endif

#endif  // QFX_LAYERS_H_
