"""freeze(fold_thresholds=True): QBatchNorm + QReLU / QHardTanh become one multithreshold whose
integer comparisons give the unfolded graph's codes on EVERY input code: ties on the output
grid under every rounding mode, negative BatchNorm scales, saturating and wrapping formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import qfx
from qfx.fixed.quantizer import FixedQuantizer
from qfx.ir.executor import run_graph
from qfx.nn import QBatchNorm1d, QBatchNorm2d, QHardTanh, QInput, QReLU


def _q(width: int, int_bits: int, signed: bool = True, rounding: str = "RND",
       overflow: str = "SAT") -> FixedQuantizer:
    return FixedQuantizer(width, signed, rounding, overflow, int_bits=int_bits,
                          learn_binary_point=False)


def _bn_net(bn: nn.Module, act: nn.Module, in_width: int, scale: list[float],
            shift: list[float], rounding: str = "RND", overflow: str = "SAT",
            out_width: int = 4) -> nn.Sequential:
    """QInput(in_width, 3 int bits) -> bn with the given scale/shift (8-bit scale, 12-bit
    shift, 10-bit saturating output) -> act (out_width bits, rounding and overflow given)."""
    net = nn.Sequential(QInput(in_width), bn, act)
    net[0].output_quantizer = _q(in_width, 3)
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)  # scale == weight (then quantized)
        bn.weight.copy_(torch.tensor(scale))
        bn.bias.copy_(torch.tensor(shift))
    bn.scale_quantizer, bn.shift_quantizer = _q(8, 3), _q(12, 3)
    bn.output_quantizer = _q(10, 5)
    relu = isinstance(act, QReLU)
    act.output_quantizer = _q(out_width, 1 if relu else 2, not relu, rounding, overflow)
    return net.eval()


def _all_codes(g: qfx.Graph) -> np.ndarray:
    """Every input code in every channel (and spatial position) of the graph's input."""
    t, shape = g.edges[g.inputs[0]].type, g.edges[g.inputs[0]].shape
    codes = np.arange(t.raw_min, t.raw_max + 1, dtype=np.float64) * 2.0 ** -t.frac_bits
    return np.broadcast_to(codes.reshape((-1,) + (1,) * len(shape)), (codes.size, *shape)).copy()


def _fold_equals_unfolded(net: nn.Module, example: torch.Tensor) -> qfx.Graph:
    plain = qfx.freeze(net, example)
    folded = qfx.freeze(net, example, fold_thresholds=True)
    assert [n.op for n in folded.nodes] == ["input", "multithreshold"]
    x = _all_codes(plain)
    want, got = run_graph(plain, x).raw[0], run_graph(folded, x).raw[0]
    np.testing.assert_array_equal(got, want)
    with torch.no_grad():  # and the qfx.nn eval output itself
        ref = net(torch.from_numpy(x)).double()
    out_t = folded.edges[folded.outputs[0]].type
    np.testing.assert_array_equal(got, out_t.to_int(ref).numpy())
    x_t = folded.edges[folded.inputs[0]].type
    assert folded.nodes[1].attrs["threshold_type"].width <= x_t.width + 1
    return folded


@pytest.mark.parametrize("rounding", ["RND", "RND_CONV", "RND_ZERO", "RND_MIN_INF", "RND_INF",
                                      "TRN", "TRN_ZERO"])
def test_ties_round_as_the_unfolded_model_with_negative_scales(rounding):
    # scale +-0.5, shift 0 / 0.25: with 2 fractional input bits and 1 output bit, half of the
    # input codes land exactly halfway between two output codes (a tie for every RND mode)
    net = _bn_net(QBatchNorm2d(4), QHardTanh(-1.5, 1.5), 6, [0.5, -0.5, 0.75, -1.25],
                  [0.0, 0.25, -0.5, 0.125], rounding)
    x_t = net[0].output_quantizer.fixed_type
    with torch.no_grad():
        scale, shift = net[1].quantized_scale_shift()
        v = torch.arange(x_t.raw_min, x_t.raw_max + 1).double() * 2.0 ** -x_t.frac_bits
        bn = v[:, None] * scale + shift
    grid = 2.0 ** -net[2].output_quantizer.fixed_type.frac_bits
    assert bool(((bn / grid) % 1 == 0.5).any())  # the ties are really there
    g = _fold_equals_unfolded(net, torch.zeros(1, 4, 2, 2))
    assert list(g.nodes[1].params["direction"]) == [1, -1, 1, -1]


@settings(max_examples=8, deadline=None)
@given(st.integers(3, 8), st.integers(2, 5), st.sampled_from(["RND", "TRN", "RND_CONV"]),
       st.sampled_from(["SAT", "SAT_SYM", "WRAP"]), st.booleans(),
       st.lists(st.floats(-3, 3, allow_nan=False), min_size=6, max_size=6),
       st.lists(st.floats(-2, 2, allow_nan=False), min_size=3, max_size=3))
def test_folded_graph_equals_unfolded_on_every_input_code(in_w, out_w, rounding, overflow, relu,
                                                          scale, shift):
    act = QReLU() if relu else QHardTanh(-1.0, 0.75)
    net = _bn_net(QBatchNorm1d(3), act, in_w, scale[:3], shift, rounding, overflow, out_w)
    if overflow == "WRAP":  # a wrapping activation may not be monotone: kept unless it can't wrap
        plain = qfx.freeze(net, torch.zeros(1, 3))
        folded = qfx.freeze(net, torch.zeros(1, 3), fold_thresholds=True)
        x = _all_codes(plain)
        np.testing.assert_array_equal(run_graph(folded, x).raw[0], run_graph(plain, x).raw[0])
        return
    _fold_equals_unfolded(net, torch.zeros(1, 3))


def test_a_wrapping_batchnorm_is_not_folded():
    net = _bn_net(QBatchNorm1d(2), QReLU(), 8, [3.0, -3.0], [0.5, 0.0])
    net[1].output_quantizer = _q(4, 2, overflow="WRAP")
    g = qfx.freeze(net, torch.zeros(1, 2), fold_thresholds=True)
    assert [n.op for n in g.nodes] == ["input", "batchnorm", "relu"]


def test_without_the_option_nothing_changes():
    net = _bn_net(QBatchNorm1d(2), QReLU(), 6, [1.0, -1.0], [0.5, 0.0])
    assert [n.op for n in qfx.freeze(net, torch.zeros(1, 2)).nodes] == ["input", "batchnorm",
                                                                        "relu"]
