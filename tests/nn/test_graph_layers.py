"""QConcat, QMul, QUpsample, QPad and the converter rules for torch.cat, x * gate, nn.Upsample /
F.interpolate, ZeroPad2d / ConstantPad2d and ``padding='same'``: the converted model in eval equals
the frozen graph bit for bit, and what cannot be exact is refused naming the module or node."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qfx
from qfx.nn import QConcat, QInput, QMul, QPad, QUpsample


class _SEUNetish(nn.Module):
    """Every converter rule of the graph ops in one plain torch model."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding="same")
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.pad = nn.ZeroPad2d((1, 0, 0, 1))
        self.c2 = nn.Conv2d(6, 3, (3, 1), padding="same", dilation=2)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Conv2d(3, 3, 1)
        self.cpad = nn.ConstantPad2d(1, 0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.relu(self.c1(x))
        d = torch.cat([self.up(self.pool(e)), x], dim=1)
        y = self.c2(d)
        gate = torch.relu(self.excite(self.squeeze(y)))
        z = y * gate
        return self.cpad(F.interpolate(self.pad(z), scale_factor=(1, 2))), torch.cat([e, x], 1)


def test_converted_graph_ops_equal_the_frozen_graph():
    torch.manual_seed(0)
    calib = torch.randn(32, 2, 6, 6)
    q = qfx.quantize_model(_SEUNetish().eval(), {"bits": 7}, calib).eval()
    kinds = {type(m).__name__ for m in q.modules()}
    assert {"QConcat", "QMul", "QUpsample", "QPad"} <= kinds
    assert q.get_submodule("c1").padding == (1, 1) and q.get_submodule("c2").padding == (2, 0)
    g = qfx.freeze(q, calib[:1])
    ops = [n.op for n in g.nodes]
    assert ops.count("concat") == 2 and ops.count("upsample") == 2 and ops.count("pad") == 2
    assert "mul" in ops
    x = torch.cat([torch.randn(8, 2, 6, 6), torch.randn(8, 2, 6, 6) * 16])
    ref = qfx.run_graph(g, x)
    with torch.no_grad():
        outs = q(x)
    for name, raw, out in zip(g.outputs, ref.raw, outs, strict=True):
        assert np.array_equal(raw, g.edges[name].type.to_int(out).numpy()), name


class _TwoInOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qa, self.qb = QInput(8), QInput(6)
        self.cat, self.mul = QConcat(), QMul()
        self.up, self.pad = QUpsample((1, 2)), QPad((0, 1, 1, 0))

    def forward(self, a, b):
        a, b = self.qa(a), self.qb(b)
        return self.pad(self.up(self.cat(a, b, a))), self.mul(a, b)


def test_qfx_layers_with_two_inputs_freeze_to_the_same_bits():
    torch.manual_seed(1)
    net = _TwoInOut()
    a, b = torch.randn(32, 2, 3, 3), torch.randn(32, 2, 3, 3)
    with qfx.calibration(net):
        net(a, b)
    g = qfx.freeze(net.eval(), (a[:1], b[:1]))
    assert len(g.inputs) == 2 and len(g.outputs) == 2
    assert [n.op for n in g.nodes].count("concat") == 2  # a 3-way cat: one exact inner step
    xs = [torch.randn(6, 2, 3, 3) * 8, torch.randn(6, 2, 3, 3) * 8]
    ref = qfx.run_graph(g, xs)
    with torch.no_grad():
        outs = net(*xs)
    for name, raw, out in zip(g.outputs, ref.raw, outs, strict=True):
        assert np.array_equal(raw, g.edges[name].type.to_int(out).numpy()), name


class _Up(nn.Module):
    def __init__(self, up: nn.Module) -> None:
        super().__init__()
        self.up = up

    def forward(self, x):
        return self.up(x)


class _Cat2(nn.Module):
    def forward(self, x):
        return torch.cat([x, x], dim=2)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("model, match", [
    (_Up(nn.Upsample(scale_factor=1.5)), r"'up' \(Upsample\): scale factor 1.5 is not a "
                                         "positive integer"),
    (_Up(nn.Upsample(scale_factor=2, mode="bilinear")), r"only mode='nearest'"),
    (_Up(nn.Conv2d(2, 2, 2, padding="same")), r"'up' \(nn.Conv2d padding='same'\): kernel "
                                              r"\(2, 2\)"),
    (_Cat2(), r"torch.cat at node 'cat': only the channel axis"),
])
def test_what_cannot_be_exact_is_refused_naming_it(model, match):
    with pytest.raises(ValueError, match=match) as err:
        qfx.quantize_model(model, {"bits": 6}, torch.randn(4, 2, 4, 4))
    assert "\n" not in str(err.value)


def test_layer_arguments_are_checked():
    with pytest.raises(ValueError, match="QUpsample scale_factor must be a positive integer"):
        QUpsample((2, 0))
    with pytest.raises(ValueError, match=r"QPad padding must be an int or \(left, right, top"):
        QPad((1, 2))
    with pytest.raises(ValueError, match="QConcat needs at least two tensors"):
        QConcat()(torch.ones(1, 2))
