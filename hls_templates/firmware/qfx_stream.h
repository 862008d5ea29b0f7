// qfx_stream.h -- the streaming (io="stream") layers of the qfx HLS library (static: shipped with
// qfx, copied into every streaming project).
//
// Architecture: the top function is one DATAFLOW region; every node is a process and every edge
// an hls::stream of pixels (FIFOs between the layers):
//
//   * a 3-D edge [C][H][W] is H*W pixels in raster order (row by row, left to right), each pixel
//     the C values of one position (pixel<T, C>); a 1-D edge [N] is ONE pixel of N values;
//   * sliding-window layers (conv2d, binary_conv2d, maxpool2d, avgpool2d) keep a line buffer of
//     the last (k_h - 1) * dil_h + 1 input rows and emit an output row as soon as the input row
//     that completes its windows has arrived;
//   * every other layer works pixel by pixel with the array layer of qfx_layers.h on the pixel's
//     values (the writer gives those layers per-pixel sizes: n = C, n_spatial = 1);
//   * flatten gathers a whole [C][H][W] tensor and emits it as one pixel in NCHW order; an edge
//     read by several nodes is copied into one stream per reader (clone).
//
// The arithmetic is the array layers' (dense_core, the pooling ops, the binary cores):
// the streaming layers only move data, so both architectures compute the same bits.
// C-simulation runs the processes one after another (hls::stream is an unbounded queue there);
// built with -DQFX_TRACE the top function records each edge as it is produced (trace_tap).

#ifndef QFX_STREAM_H_
#define QFX_STREAM_H_

#include <hls_stream.h>

#include "qfx_layers.h"

#if defined(__GNUC__) && !defined(__SYNTHESIS__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-label"
#endif

namespace qfx {

/// The N values of one position of an edge (the element type of every stream).
template <class T, int N>
struct pixel {
  T v[N];
};

namespace stream {

// ------------------------------------------------------------------------------ adapters
/// An NCHW array of C channels x P pixels as a stream of P pixels (testbench).
template <class T, int C, int P>
void array_to_stream(const T x[C * P], hls::stream<pixel<T, C> >& s) {
  for (int p = 0; p < P; p++) {
    pixel<T, C> px;
    for (int c = 0; c < C; c++) px.v[c] = x[c * P + p];
    s.write(px);
  }
}

/// P pixels of a stream into an NCHW array; false when the stream ends early (testbench).
template <class T, int C, int P>
bool stream_to_array(hls::stream<pixel<T, C> >& s, T y[C * P]) {
  for (int p = 0; p < P; p++) {
    if (s.empty()) return false;
    const pixel<T, C> px = s.read();
    for (int c = 0; c < C; c++) y[c * P + p] = px.v[c];
  }
  return true;
}

/// AXI-Stream words (one element per word, pixel by pixel, channels innermost) -> pixels.
template <class WORD, class T, int C, int P>
void axis_to_pixels(hls::stream<WORD>& in, hls::stream<pixel<T, C> >& s) {
AXIS_IN:
  for (int p = 0; p < P; p++) {
    pixel<T, C> px;
    for (int c = 0; c < C; c++) {
#pragma HLS PIPELINE II=1
      const WORD word = in.read();
      const ap_uint<fixed_traits<T>::width> bits = word.data.range(fixed_traits<T>::width - 1, 0);
      px.v[c] = from_raw<T>(bits);
    }
    s.write(px);
  }
}

/// Pixels -> AXI-Stream words (sign- or zero-extended raw bits); TLAST on the last word when
/// `last` (the last output port).
template <class WORD, class T, int C, int P>
void pixels_to_axis(hls::stream<pixel<T, C> >& s, hls::stream<WORD>& out, bool last) {
  typedef typename if_c<fixed_traits<T>::is_signed, ap_int<fixed_traits<T>::width>,
                        ap_uint<fixed_traits<T>::width> >::type R;
AXIS_OUT:
  for (int p = 0; p < P; p++) {
    const pixel<T, C> px = s.read();
    for (int c = 0; c < C; c++) {
#pragma HLS PIPELINE II=1
      R raw;
      raw.range(fixed_traits<T>::width - 1, 0) = px.v[c].range(fixed_traits<T>::width - 1, 0);
      WORD word;
      word.data = raw;
      word.keep = -1;
      word.strb = -1;
      word.last = last && p == P - 1 && c == C - 1;
      out.write(word);
    }
  }
}

// ------------------------------------------------------------------------------ plumbing
/// Copies every pixel of x to a and b (an edge with two readers; chains make more).
template <class T, int C, int P>
void clone(hls::stream<pixel<T, C> >& x, hls::stream<pixel<T, C> >& a,
           hls::stream<pixel<T, C> >& b) {
CLONE:
  for (int p = 0; p < P; p++) {
#pragma HLS PIPELINE II=1
    const pixel<T, C> px = x.read();
    a.write(px);
    b.write(px);
  }
}

/// [C][H][W] as P = H*W pixels -> one pixel of C*P values in NCHW order (PyTorch's flatten).
template <class T, int C, int P>
void flatten(hls::stream<pixel<T, C> >& x, hls::stream<pixel<T, C * P> >& y) {
  pixel<T, C * P> out;
FLATTEN:
  for (int p = 0; p < P; p++) {
#pragma HLS PIPELINE II=1
    const pixel<T, C> px = x.read();
    for (int c = 0; c < C; c++) out.v[c * P + p] = px.v[c];
  }
  y.write(out);
}

#ifdef QFX_TRACE
/// C-simulation only: records the P pixels just written to s (NCHW, as the array
/// architecture traces) and puts them back. Valid because C-simulation runs the processes in
/// program order: the producer has written the whole edge when the tap runs.
template <class T, int C, int P>
void trace_tap(const char* node, hls::stream<pixel<T, C> >& s) {
  static T flat[C * P];
  for (int p = 0; p < P; p++) {
    const pixel<T, C> px = s.read();
    for (int c = 0; c < C; c++) flat[c * P + p] = px.v[c];
    s.write(px);
  }
  trace(node, flat, C * P);
}
#define QFX_TRACE_STREAM(node, s, T, C, P) ::qfx::stream::trace_tap<T, C, P>(node, s)
#else
#define QFX_TRACE_STREAM(node, s, T, C, P) ((void)0)
#endif

// ------------------------------------------------------------------------------ pixelwise
// One pixel in, one pixel out, through the array layer of the same name. CFG (generated with
// per-pixel sizes) adds n_pixels (pixels per inference), px_in and px_out (values per pixel).
#define QFX_STREAM_PIXELWISE(NAME)                                                             \
  template <class CFG, class... P>                                                             \
  void NAME(hls::stream<pixel<typename CFG::in_t, CFG::px_in> >& x,                            \
            hls::stream<pixel<typename CFG::out_t, CFG::px_out> >& y, const P*... params) {     \
  PIXELS:                                                                                      \
    for (int i = 0; i < CFG::n_pixels; i++) {                                                  \
      const pixel<typename CFG::in_t, CFG::px_in> a = x.read();                                \
      pixel<typename CFG::out_t, CFG::px_out> b;                                               \
      ::qfx::NAME<CFG>(a.v, b.v, params...);                                                   \
      y.write(b);                                                                              \
    }                                                                                          \
  }

QFX_STREAM_PIXELWISE(cast)
QFX_STREAM_PIXELWISE(relu)
QFX_STREAM_PIXELWISE(hardtanh)
QFX_STREAM_PIXELWISE(batchnorm)
QFX_STREAM_PIXELWISE(batchnorm_khot)
QFX_STREAM_PIXELWISE(threshold)
QFX_STREAM_PIXELWISE(thermometer)
QFX_STREAM_PIXELWISE(dense)
QFX_STREAM_PIXELWISE(dense_khot)
QFX_STREAM_PIXELWISE(binary_dense)
QFX_STREAM_PIXELWISE(binary_dense_scale)
QFX_STREAM_PIXELWISE(binary_dense_khot)
QFX_STREAM_PIXELWISE(multithreshold)
QFX_STREAM_PIXELWISE(leaky_relu)   // ops-window
QFX_STREAM_PIXELWISE(hardsigmoid)  // ops-window
QFX_STREAM_PIXELWISE(hardswish)    // ops-window
QFX_STREAM_PIXELWISE(table_lookup)  // sigmoid, tanh, exp
QFX_STREAM_PIXELWISE(softmax)       // over one pixel's channels (n_spatial = 1)
QFX_STREAM_PIXELWISE(dense_shifted)  // per-channel formats (shifted weights)
QFX_STREAM_PIXELWISE(batchnorm_shifted)  // per-channel BatchNorm scale formats
#undef QFX_STREAM_PIXELWISE

/// Residual add, pixel by pixel (CFG: in0_t, in1_t, acc_t, out_t, n = px_in, n_pixels, px_out).
template <class CFG>
void add(hls::stream<pixel<typename CFG::in0_t, CFG::px_in> >& a,
         hls::stream<pixel<typename CFG::in1_t, CFG::px_in> >& b,
         hls::stream<pixel<typename CFG::out_t, CFG::px_out> >& y) {
ADD_PIXELS:
  for (int i = 0; i < CFG::n_pixels; i++) {
    const pixel<typename CFG::in0_t, CFG::px_in> pa = a.read();
    const pixel<typename CFG::in1_t, CFG::px_in> pb = b.read();
    pixel<typename CFG::out_t, CFG::px_out> out;
    ::qfx::add<CFG>(pa.v, pb.v, out.v);
    y.write(out);
  }
}

// ------------------------------------------------------------------------------ windows
/// fetch(c, ih, iw) on the line buffer: row ih lives in slot ih % S.
template <class T, int S, int W, int C>
struct ring_fetch {
  const T (*buf)[W][C];
  T operator()(int c, int ih, int iw) const {
#pragma HLS INLINE
    return buf[ih % S][iw][c];
  }
};

/// The sliding-window walk shared by every window layer. CFG: in_t, in_h, in_w, out_h, out_w,
/// k_h, stride_h, pad_h, dil_h (and what window_tap reads). compute(fetch, oh, ow, y) writes the
/// OUT_C values of output pixel (oh, ow).
///
/// Output row oh reads input rows oh * stride_h - pad_h + [0, span), span = (k_h - 1) * dil_h + 1
/// (those outside the input are padding). It is emitted right after input row
/// min(oh * stride_h - pad_h + span - 1, in_h - 1) has been read, so every input row it reads is
/// one of the last `span` rows: the line buffer holds exactly those (no row is read before it
/// has been written in the same call, so nothing carries over between calls).
template <class CFG, int IN_C, class OUT_T, int OUT_C, class COMPUTE>
void window(hls::stream<pixel<typename CFG::in_t, IN_C> >& x,
            hls::stream<pixel<OUT_T, OUT_C> >& y, const COMPUTE& compute) {
  typedef typename CFG::in_t T;
  const int span = (CFG::k_h - 1) * CFG::dil_h + 1;
  static T buf[span][CFG::in_w][IN_C];
#pragma HLS ARRAY_PARTITION variable=buf complete dim=3
  const ring_fetch<T, span, CFG::in_w, IN_C> fetch = {buf};
  int next = 0;  // the next output row to emit
LINE_ROWS:
  for (int ih = 0; ih < CFG::in_h; ih++) {
  LINE_READ:
    for (int iw = 0; iw < CFG::in_w; iw++) {
#pragma HLS PIPELINE II=1
      const pixel<T, IN_C> px = x.read();
      for (int c = 0; c < IN_C; c++) buf[ih % span][iw][c] = px.v[c];
    }
  LINE_EMIT:
    for (int r = 0; r < CFG::out_h; r++) {
      const bool ready = next < CFG::out_h &&
                         (ih == CFG::in_h - 1 ||
                          next * CFG::stride_h - CFG::pad_h + span - 1 <= ih);
      if (!ready) break;
    LINE_OUT:
      for (int ow = 0; ow < CFG::out_w; ow++) {
        pixel<OUT_T, OUT_C> out;
        compute(fetch, next, ow, out.v);
        y.write(out);
      }
      next++;
    }
  }
}

/// One group of a conv2d at one pixel, as the dense_core configuration.
template <class CFG>
struct conv_group_dense {
  typedef typename CFG::in_t in_t;
  typedef typename CFG::out_t out_t;
  typedef typename CFG::acc_t acc_t;
  typedef typename CFG::weight_t weight_t;
  typedef typename CFG::bias_t bias_t;
  static const int n_in = (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w;
  static const int n_out = CFG::out_c / CFG::groups;
  static const int red_unroll = CFG::red_unroll;
  static const int out_unroll = CFG::out_unroll;
};

/// conv2d output pixel: per group, the zero-padded window times the group's weight rows.
template <class CFG, class WTS>
struct conv2d_pixel {
  WTS wts;
  const typename raw_storage<typename CFG::bias_t>::type* b;
  template <class FETCH>
  void operator()(const FETCH& fetch, int oh, int ow, typename CFG::out_t* y) const {
#pragma HLS INLINE
    typedef conv_group_dense<CFG> G;
    typename CFG::in_t win[G::n_in];
  CONV_GROUPS:
    for (int g = 0; g < CFG::groups; g++) {
      gather_window<CFG>(fetch, g, oh, ow, typename CFG::in_t(0), win);
      dense_core<G>(win, y + g * G::n_out, wts.at(g * G::n_out * G::n_in), b + g * G::n_out);
    }
  }
};

template <class CFG>
void conv2d(hls::stream<pixel<typename CFG::in_t, CFG::in_c> >& x,
            hls::stream<pixel<typename CFG::out_t, CFG::out_c> >& y,
            const typename raw_storage<typename CFG::weight_t>::type
                w[CFG::out_c * (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w],
            const typename raw_storage<typename CFG::bias_t>::type b[CFG::out_c]) {
  const int red_unroll = CFG::red_unroll;
  (void)red_unroll;
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=red_unroll
  const conv2d_pixel<CFG, const_weights<typename CFG::weight_t> > op = {
      QFX_CONST_WEIGHTS(CFG, typename CFG::weight_t,
                        CFG::out_c * (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w, w),
      b};
  window<CFG, CFG::in_c, typename CFG::out_t, CFG::out_c>(x, y, op);
}

template <class CFG>
void conv2d_khot(hls::stream<pixel<typename CFG::in_t, CFG::in_c> >& x,
                 hls::stream<pixel<typename CFG::out_t, CFG::out_c> >& y,
                 const typename raw_storage<typename CFG::dsign_t>::type* sg,
                 const typename raw_storage<typename CFG::dshift_t>::type* sh,
                 const typename raw_storage<typename CFG::bias_t>::type b[CFG::out_c]) {
  const conv2d_pixel<CFG, khot_weights<CFG, typename CFG::weight_t> > op = {{sg, sh}, b};
  window<CFG, CFG::in_c, typename CFG::out_t, CFG::out_c>(x, y, op);
}

/// conv2d with per-channel formats (qfx_layers.h's shifted_weights): mantissas w, shifts s.
template <class CFG>
void conv2d_shifted(hls::stream<pixel<typename CFG::in_t, CFG::in_c> >& x,
                    hls::stream<pixel<typename CFG::out_t, CFG::out_c> >& y,
                    const typename raw_storage<typename CFG::weight_t>::type
                        w[CFG::out_c * (CFG::in_c / CFG::groups) * CFG::k_h * CFG::k_w],
                    const typename raw_storage<typename CFG::shift_t>::type s[CFG::out_c],
                    const typename raw_storage<typename CFG::bias_t>::type b[CFG::out_c]) {
  const int red_unroll = CFG::red_unroll;
  (void)red_unroll;
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=red_unroll
  typedef conv2d_shifted_weights<CFG> W;
  const conv2d_pixel<CFG, typename W::type> op = {W::of(w, s), b};
  window<CFG, CFG::in_c, typename CFG::out_t, CFG::out_c>(x, y, op);
}

/// Pooling output pixel: OP (max_pool, avg_by_shift, avg_by_recip; qfx_layers.h) for every
/// channel.
template <class CFG, class OUT_T, class OP>
struct pool_pixel {
  OP op;
  template <class FETCH>
  void operator()(const FETCH& fetch, int oh, int ow, OUT_T* y) const {
#pragma HLS INLINE
    const int unroll = CFG::unroll;
    (void)unroll;
  POOL_CHAN:
    for (int c = 0; c < CFG::chan; c++) {
#pragma HLS UNROLL factor=unroll
      y[c] = op(fetch, c, oh, ow);
    }
  }
};

template <class CFG>
void maxpool2d(hls::stream<pixel<typename CFG::in_t, CFG::chan> >& x,
               hls::stream<pixel<typename CFG::in_t, CFG::chan> >& y) {
  const pool_pixel<CFG, typename CFG::in_t, max_pool<CFG> > op = {max_pool<CFG>()};
  window<CFG, CFG::chan, typename CFG::in_t, CFG::chan>(x, y, op);
}

template <class CFG>
void avgpool2d_shift(hls::stream<pixel<typename CFG::in_t, CFG::chan> >& x,
                     hls::stream<pixel<typename CFG::out_t, CFG::chan> >& y) {
  const pool_pixel<CFG, typename CFG::out_t, avg_by_shift<CFG> > op = {avg_by_shift<CFG>()};
  window<CFG, CFG::chan, typename CFG::out_t, CFG::chan>(x, y, op);
}

template <class CFG>
void avgpool2d_recip(hls::stream<pixel<typename CFG::in_t, CFG::chan> >& x,
                     hls::stream<pixel<typename CFG::out_t, CFG::chan> >& y,
                     const typename raw_storage<typename CFG::recip_t>::type recip[1]) {
  const pool_pixel<CFG, typename CFG::out_t, avg_by_recip<CFG> > op = {{recip}};
  window<CFG, CFG::chan, typename CFG::out_t, CFG::chan>(x, y, op);
}

template <class CFG>
void avgpool2d_recip_map(hls::stream<pixel<typename CFG::in_t, CFG::chan> >& x,
                         hls::stream<pixel<typename CFG::out_t, CFG::chan> >& y,
                         const typename raw_storage<typename CFG::recip_t>::type
                             recip[CFG::out_h * CFG::out_w]) {
  const pool_pixel<CFG, typename CFG::out_t, avg_by_recip_map<CFG> > op = {{recip}};
  window<CFG, CFG::chan, typename CFG::out_t, CFG::chan>(x, y, op);
}

/// binary_conv2d output pixel: binary_conv2d_pixel into a copy of the store aimed at y.
template <class CFG, class STORE>
struct binary_conv2d_pixel_op {
  const typename raw_storage<typename CFG::word_t>::type* w;
  STORE store;  // y is set per pixel
  template <class FETCH>
  void operator()(const FETCH& fetch, int oh, int ow, typename CFG::out_t* y) const {
#pragma HLS INLINE
    STORE st = store;
    st.y = y;
    ::qfx::binary_conv2d_pixel<CFG>(fetch, oh, ow, w, st, 0);
  }
};

template <class CFG, class STORE>
void binary_conv2d_window(hls::stream<pixel<typename CFG::in_t, CFG::in_c> >& x,
                          hls::stream<pixel<typename CFG::out_t, CFG::out_c> >& y,
                          const typename raw_storage<typename CFG::word_t>::type* w, const STORE& store) {
#pragma HLS INLINE
  const binary_conv2d_pixel_op<CFG, STORE> op = {w, store};
  window<CFG, CFG::in_c, typename CFG::out_t, CFG::out_c>(x, y, op);
}

template <class CFG>
void binary_conv2d(hls::stream<pixel<typename CFG::in_t, CFG::in_c> >& x,
                   hls::stream<pixel<typename CFG::out_t, CFG::out_c> >& y,
                   const typename raw_storage<typename CFG::word_t>::type w[CFG::out_c * CFG::n_words]) {
  const binary_store_plain<CFG> st = {0, 1};
  binary_conv2d_window<CFG>(x, y, w, st);
}

template <class CFG>
void binary_conv2d_scale(hls::stream<pixel<typename CFG::in_t, CFG::in_c> >& x,
                         hls::stream<pixel<typename CFG::out_t, CFG::out_c> >& y,
                         const typename raw_storage<typename CFG::word_t>::type w[CFG::out_c * CFG::n_words],
                         const typename raw_storage<typename CFG::scale_t>::type
                             scale[CFG::out_c]) {
  const binary_store_scale<CFG> st = {0, 1, scale};
  binary_conv2d_window<CFG>(x, y, w, st);
}

template <class CFG>
void binary_conv2d_khot(hls::stream<pixel<typename CFG::in_t, CFG::in_c> >& x,
                        hls::stream<pixel<typename CFG::out_t, CFG::out_c> >& y,
                        const typename raw_storage<typename CFG::word_t>::type w[CFG::out_c * CFG::n_words],
                        const typename raw_storage<typename CFG::dsign_t>::type
                            sg[CFG::out_c * CFG::khot],
                        const typename raw_storage<typename CFG::dshift_t>::type
                            sh[CFG::out_c * CFG::khot]) {
  const binary_store_khot<CFG> st = {0, 1, sg, sh};
  binary_conv2d_window<CFG>(x, y, w, st);
}

// ------------------------------------------------------------------------------ concat, mul,
// upsample, pad (ops-graph)
/// Channel concatenation, pixel by pixel: a's channels then b's (CFG: the array layer's with
/// n0, n1 the channels of one pixel; n_pixels).
template <class CFG>
void concat(hls::stream<pixel<typename CFG::in0_t, CFG::n0> >& a,
            hls::stream<pixel<typename CFG::in1_t, CFG::n1> >& b,
            hls::stream<pixel<typename CFG::out_t, CFG::px_out> >& y) {
CONCAT_PIXELS:
  for (int i = 0; i < CFG::n_pixels; i++) {
    const pixel<typename CFG::in0_t, CFG::n0> pa = a.read();
    const pixel<typename CFG::in1_t, CFG::n1> pb = b.read();
    pixel<typename CFG::out_t, CFG::px_out> out;
    ::qfx::concat<CFG>(pa.v, pb.v, out.v);
    y.write(out);
  }
}

/// Element-wise product, pixel by pixel (CFG: the array layer's with n = px_in, spatial = 1;
/// gate_once: the second input is a per-channel gate, ONE pixel read before the first pixel
/// of x and applied to every pixel).
template <class CFG>
void mul(hls::stream<pixel<typename CFG::in0_t, CFG::px_in> >& x,
         hls::stream<pixel<typename CFG::in1_t, CFG::px_in> >& g,
         hls::stream<pixel<typename CFG::out_t, CFG::px_out> >& y) {
  pixel<typename CFG::in1_t, CFG::px_in> pg;
MUL_PIXELS:
  for (int i = 0; i < CFG::n_pixels; i++) {
    if (!CFG::gate_once || i == 0) pg = g.read();
    const pixel<typename CFG::in0_t, CFG::px_in> px = x.read();
    pixel<typename CFG::out_t, CFG::px_out> out;
    ::qfx::mul<CFG>(px.v, pg.v, out.v);
    y.write(out);
  }
}

/// Nearest upsampling: each input row is kept in a row buffer and written scale_h times, each
/// pixel scale_w times (raster order).
template <class CFG>
void upsample(hls::stream<pixel<typename CFG::in_t, CFG::chan> >& x,
              hls::stream<pixel<typename CFG::out_t, CFG::chan> >& y) {
  static pixel<typename CFG::in_t, CFG::chan> row[CFG::in_w];
UPSAMPLE_ROWS:
  for (int ih = 0; ih < CFG::in_h; ih++) {
  UPSAMPLE_READ:
    for (int iw = 0; iw < CFG::in_w; iw++) {
#pragma HLS PIPELINE II=1
      row[iw] = x.read();
    }
  UPSAMPLE_WRITE:
    for (int o = 0; o < CFG::scale_h * CFG::out_w; o++) {
#pragma HLS PIPELINE II=1
      const pixel<typename CFG::in_t, CFG::chan>& px = row[(o % CFG::out_w) / CFG::scale_w];
      pixel<typename CFG::out_t, CFG::chan> out;
      for (int c = 0; c < CFG::chan; c++) out.v[c] = px.v[c];
      y.write(out);
    }
  }
}

/// Constant padding in raster order: a border pixel is value_raw in every channel, an inside
/// pixel is the next input pixel.
template <class CFG>
void pad(hls::stream<pixel<typename CFG::in_t, CFG::chan> >& x,
         hls::stream<pixel<typename CFG::out_t, CFG::chan> >& y) {
  const typename CFG::in_t value = from_raw<typename CFG::in_t>((long long)CFG::value_raw);
PAD_PIXELS:
  for (int i = 0; i < CFG::out_h * CFG::out_w; i++) {
#pragma HLS PIPELINE II=1
    int ih, iw;
    pixel<typename CFG::out_t, CFG::chan> out;
    if (pad_inside<CFG>(i / CFG::out_w, i % CFG::out_w, ih, iw)) {
      const pixel<typename CFG::in_t, CFG::chan> px = x.read();
      for (int c = 0; c < CFG::chan; c++) out.v[c] = px.v[c];
    } else {
      for (int c = 0; c < CFG::chan; c++) out.v[c] = value;
    }
    y.write(out);
  }
}

}  // namespace stream
}  // namespace qfx

#if defined(__GNUC__) && !defined(__SYNTHESIS__)
#pragma GCC diagnostic pop
#endif

#endif  // QFX_STREAM_H_
