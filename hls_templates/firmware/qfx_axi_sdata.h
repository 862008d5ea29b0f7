// qfx_axi_sdata.h -- AXI4-Stream side-channel word `ap_axiu` (static: shipped with qfx).
//
// Vitis HLS / Vivado HLS provide <ap_axi_sdata.h>; synthesis and the vendors' C-simulation use
// theirs (under __SYNTHESIS__, with -DQFX_USE_AP_AXI_SDATA, or whenever the compiler can see the
// header). The ap_types headers shipped with hls4ml (used by qfx's host C-simulation) do not
// include it; for that case this file defines a minimal, field-compatible `ap_axiu<D, U, TI, TD>`
// for C-simulation only: data, keep, strb, user, last, id, dest, with the vendor's field names
// and widths (a side channel of width 0 is modelled by a 1-bit field that is never used).

#ifndef QFX_AXI_SDATA_H_
#define QFX_AXI_SDATA_H_

#if defined(__SYNTHESIS__) || defined(QFX_USE_AP_AXI_SDATA)
#include <ap_axi_sdata.h>
#define QFX_HAVE_AP_AXI_SDATA 1
#elif defined(__has_include)
#if __has_include(<ap_axi_sdata.h>)
#include <ap_axi_sdata.h>
#define QFX_HAVE_AP_AXI_SDATA 1
#endif
#endif

#ifndef QFX_HAVE_AP_AXI_SDATA
#include <ap_int.h>

template <int D, int U, int TI, int TD>
struct ap_axiu {
  ap_uint<D> data;
  ap_uint<(D + 7) / 8> keep;
  ap_uint<(D + 7) / 8> strb;
  ap_uint<(U > 0) ? U : 1> user;
  ap_uint<1> last;
  ap_uint<(TI > 0) ? TI : 1> id;
  ap_uint<(TD > 0) ? TD : 1> dest;
};
#endif

#endif  // QFX_AXI_SDATA_H_
