"""The C++ pins every multiply to the side of the LUT / DSP threshold that the estimate counts.

``qfx::mul`` in ``qfx_layers.h`` binds a product to LUTs or DSPs (``BIND_OP``) by its operands'
widths; :func:`qfx.fixed.hwcost.multiply_on_fabric` is the estimate's rule. Both are compiled or
evaluated over a grid of widths and compared, and ``qfx::mul`` must give the operator's own
product, bit for bit.
"""

from __future__ import annotations

import subprocess

from qfx.backends.hls.writer import templates_dir
from qfx.csim.toolchain import ap_types_include_dir, compile_cpp
from qfx.fixed.hwcost import FABRIC_MULT_MAX_PRODUCT, multiply_on_fabric

WIDTHS_A = range(1, 41)
WIDTHS_B = (1, 2, 3, 4, 5, 7, 8, 11, 13, 18, 27, 40)


def test_cpp_binding_follows_the_estimate_rule(tmp_path):
    lines = ['#include "qfx_layers.h"', "int main() {"]
    for wa in WIDTHS_A:
        for wb in WIDTHS_B:
            lines.append(f'  std::printf("%d %d %d\\n", {wa}, {wb}, '
                         f"(int)qfx::mul_on_fabric<ap_fixed<{wa}, 1>, ap_uint<{wb}> >::value);")
    # the bound product is the operator's own (type and bits), on ap_fixed and on ap_int
    lines += [
        "  const ap_fixed<7, 2> a = -1.78125; const ap_ufixed<9, 3> b = 5.4375;",
        "  const ap_int<30> c = -123456789; const ap_int<20> d = 345678;",
        '  std::printf("fixed %d\\n", (int)(qfx::mul(a, b) == a * b));',
        '  std::printf("int %d\\n", (int)(qfx::mul(c, d) == c * d));',
        '  std::printf("width %d\\n", (int)decltype(qfx::mul(c, d))::width);',
        "  return 0;", "}",
    ]
    src = tmp_path / "rule.cpp"
    src.write_text("\n".join(lines) + "\n")
    exe = compile_cpp([src], tmp_path / "rule",
                      include_dirs=[ap_types_include_dir(), templates_dir() / "firmware"])
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True)
    rows = out.stdout.split("\n")
    grid = {(int(a), int(b)): bool(int(f)) for a, b, f in
            (r.split() for r in rows if r and r[0].isdigit())}
    assert len(grid) == len(WIDTHS_A) * len(WIDTHS_B)
    assert grid == {(a, b): multiply_on_fabric(a, b) for a in WIDTHS_A for b in WIDTHS_B}
    # the threshold sits where the grid says it does: 55 on the fabric, 56 on a DSP
    assert grid[(5, 11)] and not grid[(8, 7)] and FABRIC_MULT_MAX_PRODUCT == 55
    assert "fixed 1" in rows and "int 1" in rows and "width 50" in rows


def test_every_synthesis_multiply_of_a_layer_is_bound():
    """No ``a * b`` on values is left outside ``qfx::mul`` in the synthesis path of the layers
    (the native path multiplies int64 raw values, which synthesis never compiles)."""
    text = (templates_dir() / "firmware" / "qfx_layers.h").read_text()
    synth = []
    native = 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#if QFX_NATIVE"):
            native = 1
        elif native and stripped.startswith("#else"):
            native = 0
        elif native and stripped.startswith("#endif"):
            native = 0
        elif not native and not stripped.startswith("//"):
            synth.append(line)
    body = "\n".join(synth)
    for product in ("x * v[idx]", "raw_bits(x) * wts.raw(idx)", "e[c] * r",
                    "x[i] * g[", "s * from_raw<recip_t>"):
        assert product not in body, product
    assert body.count("mul(") >= 10
