"""ops-window layers against direct references: PyTorch's average-pooling divisors (padding,
ceil_mode, count_include_pad) and integer references for the average pool and the exact
piecewise-linear activations (LeakyReLU 2**-k, hardsigmoid, hardswish), for all inputs
(hypothesis); the qfx.nn eval output equals the frozen executor; bad slopes and adaptive sizes
are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import qfx
from qfx.fixed.fixed_type import FixedType
from qfx.nn import QInput
from qfx.nn.activation import QHardSigmoid, QHardSwish, QLeakyReLU, pow2_shift
from qfx.nn.pooling import QAvgPool2d, QGlobalMaxPool2d, avgpool_divisors


@st.composite
def _pools(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    hw = (draw(st.integers(k[0], 9)), draw(st.integers(k[1], 9)))
    return hw, k, s, p, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(_pools())
def test_avgpool_divisors_are_pytorchs(cfg):
    hw, k, s, p, ceil, include = cfg
    ones = torch.ones(1, 1, *hw, dtype=torch.float64)
    total = F.avg_pool2d(ones, k, s, p, ceil, include, divisor_override=1)[0, 0]
    mean = F.avg_pool2d(ones, k, s, p, ceil, include)[0, 0]
    want = torch.round(total / mean).to(torch.int64).numpy()  # count / (count / divisor)
    assert np.array_equal(avgpool_divisors(hw, k, s, p, ceil, include), want)


def _cast(t: FixedType, raw: np.ndarray, frac: int) -> np.ndarray:
    """Cast exact raw values at ``frac`` fractional bits to ``t`` (its rounding, overflow)."""
    v = torch.ldexp(torch.from_numpy(raw).double(), torch.tensor(-float(frac),
                                                                  dtype=torch.float64))
    return t.to_int(t.quantize(v)).numpy()


@settings(max_examples=25, deadline=None)
@given(_pools(), st.integers(0, 2**31 - 1))
def test_avgpool_equals_an_integer_reference(cfg, seed):
    hw, k, s, p, ceil, include = cfg
    torch.manual_seed(seed)
    net = nn.Sequential(QInput(6), QAvgPool2d(k, s, p, ceil, include, act_width=7))
    x = torch.randn(2, 2, *hw) * 3
    with qfx.calibration(net):
        net(x)
    net.eval()
    with torch.no_grad():
        y = net(x)
    x_t, pool = net[0].output_quantizer.fixed_type, net[1]
    xr = x_t.to_int(net[0](x)).numpy()
    d = avgpool_divisors(hw, k, s, p, ceil, include)
    oh, ow = d.shape
    sums = np.zeros((2, 2, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s[0] - p[0], j * s[1] - p[1]
            win = xr[:, :, max(r0, 0):max(r0 + k[0], 0), max(c0, 0):max(c0 + k[1], 0)]
            sums[:, :, i, j] = win.sum(axis=(2, 3))
    out_t = pool.output_quantizer.fixed_type
    if pool.recip_type is None:  # a power-of-two divisor everywhere: a shift
        want = _cast(out_t, sums, x_t.frac_bits + pool.shift)
    else:
        r_t = pool.recip_type
        r = r_t.to_int(torch.from_numpy(1.0 / d.astype(np.float64))).numpy()
        if int(d.min()) == int(d.max()):
            assert pool.recip_map is None
        want = _cast(out_t, sums * r, x_t.frac_bits + r_t.frac_bits)
    assert np.array_equal(out_t.to_int(y).numpy(), want)
    graph = qfx.freeze(net, x[:1])
    assert np.array_equal(qfx.run_graph(graph, x).raw[0], want)


def _act_net(layer: nn.Module, seed: int, width: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    net = nn.Sequential(QInput(width), layer)
    x = torch.randn(256, 8) * 4
    with qfx.calibration(net):
        net(x)
    return net.eval(), x


@settings(max_examples=24, deadline=None)
@given(st.sampled_from(["leaky", "hardsigmoid", "hardswish"]), st.integers(0, 2**31 - 1),
       st.integers(3, 10), st.integers(4, 16), st.integers(0, 6))
def test_activations_equal_an_integer_reference(kind, seed, width, scale_width, k):
    layer = {"leaky": lambda: QLeakyReLU(2.0 ** -k, act_width=width),
             "hardsigmoid": lambda: QHardSigmoid(scale_width=scale_width, act_width=width),
             "hardswish": lambda: QHardSwish(scale_width=scale_width, act_width=width)}[kind]()
    net, x = _act_net(layer, seed, width)
    x_t, out_t = net[0].output_quantizer.fixed_type, layer.output_quantizer.fixed_type
    # every raw input of the input format, and the calibration data (saturating ends included)
    xr = np.arange(x_t.raw_min, x_t.raw_max + 1, dtype=np.int64)
    xv = torch.ldexp(torch.from_numpy(xr).double(), torch.tensor(-float(x_t.frac_bits),
                                                                   dtype=torch.float64))
    with torch.no_grad():
        got = out_t.to_int(layer(xv.view(-1, 1))).numpy().ravel()
    if kind == "leaky":
        want = _cast(out_t, np.where(xr >= 0, xr << k, xr), x_t.frac_bits + k)
    else:
        c_t, c = layer.scale_type, layer.scale_raw
        frac = max(x_t.frac_bits + c_t.frac_bits, 1)
        one = 1 << frac
        g = np.clip((xr * c << (frac - x_t.frac_bits - c_t.frac_bits)) + one // 2, 0, one)
        want = (_cast(out_t, g, frac) if kind == "hardsigmoid"
                else _cast(out_t, xr * g, x_t.frac_bits + frac))
        # and the gate is PyTorch's within the constant's rounding: |g - hs(x)| <= |x| |c - 1/6|
        err = abs(c * 2.0 ** -c_t.frac_bits - 1 / 6)
        ref = F.hardsigmoid(xv).numpy()
        assert np.all(np.abs(g / one - ref) <= np.abs(xv.numpy()) * err + 1e-12)
    assert np.array_equal(got, want)
    graph = qfx.freeze(net, x[:1])
    with torch.no_grad():
        assert np.array_equal(qfx.run_graph(graph, x).raw[0], out_t.to_int(net(x)).numpy())


def test_leaky_relu_slope_must_be_a_power_of_two():
    assert pow2_shift(0.25, "x") == 2 and pow2_shift(1.0, "x") == 0
    with pytest.raises(ValueError, match="not a power of two"):
        QLeakyReLU(0.1)
    with pytest.raises(ValueError, match=r"cannot convert LeakyReLU '0'.*not a power of two"):
        qfx.quantize_model(nn.Sequential(nn.LeakyReLU(0.01)), {"bits": 8}, torch.randn(8, 3))


def test_adaptive_pools_convert_where_the_size_divides():
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.AdaptiveAvgPool2d(3), nn.AdaptiveMaxPool2d(1))
    x = torch.randn(16, 1, 6, 6)
    q = qfx.quantize_model(net, {"bits": 8}, x).eval()
    assert type(q.get_submodule("2")) is QGlobalMaxPool2d
    graph = qfx.freeze(q, x[:1])
    pools = [n for n in graph.nodes if n.op in ("avgpool2d", "maxpool2d")]
    assert [(n.op, n.attrs["kernel"]) for n in pools] == [("avgpool2d", [2, 2]),
                                                          ("maxpool2d", [3, 3])]
    with torch.no_grad():
        want = graph.edges[graph.outputs[0]].type.to_int(q(x)).numpy()
        pooled = q.get_submodule("1")(q.get_submodule("0")(q.qinput(x)))  # the exact avg pool
        assert torch.equal(q(x), pooled.amax((2, 3), keepdim=True))
    assert np.array_equal(qfx.run_graph(graph, x).raw[0], want)
    with pytest.raises(ValueError, match=r"'1' \(nn.AdaptiveAvgPool2d\(4\)\).*does not divide"):
        qfx.quantize_model(nn.Sequential(nn.Conv2d(1, 2, 1), nn.AdaptiveAvgPool2d(4)),
                           {"bits": 8}, x)


def test_amax_over_space_is_global_max_pooling():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)

        def forward(self, x):
            return torch.flatten(self.conv(x).amax((2, 3), keepdim=True), 1)

    x = torch.randn(16, 2, 7, 5)
    q = qfx.quantize_model(Net(), {"bits": 8}, x).eval()
    graph = qfx.freeze(q, x[:1])
    node = next(n for n in graph.nodes if n.op == "maxpool2d")
    assert node.attrs["kernel"] == [5, 3] and node.attrs["stride"] == [5, 3]
    with torch.no_grad():
        want = graph.edges[graph.outputs[0]].type.to_int(q(x)).numpy()
    assert np.array_equal(qfx.run_graph(graph, x).raw[0], want)
