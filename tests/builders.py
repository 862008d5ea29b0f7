"""Model builders shared by the tests: the C-simulation set (an MLP, a CNN with every window
option, a residual net, a 16-bit model), each seeded and calibrated so that SAT and WRAP formats
are exercised, and the zoo models quantized the way the zoo C-sim tests do."""

from __future__ import annotations

import torch
from torch import nn

import qfx
from qfx.nn import (
    QAdd,
    QAvgPool2d,
    QBatchNorm2d,
    QConcat,
    QConfig,
    QConv2d,
    QFlatten,
    QGlobalAvgPool2d,
    QHardTanh,
    QInput,
    QLinear,
    QMaxPool2d,
    QMul,
    QPad,
    QReLU,
    QUpsample,
)
from qfx.zoo import get_model, model_spec


def quant_config(overflow: str, rounding: str = "RND") -> QConfig:
    return QConfig(act_overflow=overflow, weight_overflow=overflow, act_rounding=rounding,
                   weight_rounding=rounding, per_channel_weights=True)


def mlp(overflow: str, rounding: str = "RND") -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    with qfx.config(quant_config(overflow, rounding).replace(act_width=6, weight_width=5)):
        net = nn.Sequential(QInput(8), QLinear(10, 7), QReLU(), QLinear(7, 3, bias=False),
                            QHardTanh(-1.0, 0.75), QLinear(3, 2))
    x = torch.randn(48, 10)
    with qfx.calibration(net):
        net(x)
    return net, x


def cnn(overflow: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(1)
    with qfx.config(quant_config(overflow)):
        net = nn.Sequential(
            QInput(8), QConv2d(4, 8, 3, stride=1, padding=1), QBatchNorm2d(8), QReLU(),
            QConv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=8),  # depthwise
            QMaxPool2d(3, stride=2, padding=1),
            QConv2d(8, 12, 3, padding=1, groups=4, bias=False), QBatchNorm2d(12), QReLU(),
            QAvgPool2d(3, stride=1),  # 1/9: a fixed-point reciprocal
            QConv2d(12, 6, 1), QMaxPool2d(2, ceil_mode=True), QGlobalAvgPool2d(),
            QFlatten(), QLinear(6, 5))
    x = torch.randn(24, 4, 17, 17)
    net.train()
    for _ in range(2):
        net(x)
    return net, x


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qin = QInput(8)
        self.a = QConv2d(4, 4, 3, padding=1)
        self.bn = QBatchNorm2d(4)
        self.b = QConv2d(4, 4, 1, act_width=5)
        self.add = QAdd(act_width=7)
        self.relu = QReLU()
        self.pool = QAvgPool2d(2)  # 2**-2: a shift
        self.fc = QLinear(4 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.qin(x)
        y = self.relu(self.add(self.bn(self.a(x)), self.b(x)))
        return self.fc(torch.flatten(self.pool(y), 1))


def residual(overflow: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(3)
    with qfx.config(quant_config(overflow)):
        net = _Residual()
    x = torch.randn(24, 4, 6, 6)
    net.train()
    net(x)
    with torch.no_grad():  # branches with very different binary points
        net.b.output_quantizer.log2_lsb.fill_(-1.0)
        net.bn.output_quantizer.log2_lsb.fill_(-6.0)
    return net, x


def wide(overflow: str) -> tuple[nn.Module, torch.Tensor]:
    """16-bit everything: accumulators wider than 31 bits (the native path's int64 branch)."""
    torch.manual_seed(4)
    cfg = quant_config(overflow).replace(input_width=16, weight_width=16, act_width=16,
                                    bias_width=24, bn_scale_width=16, bn_shift_width=20)
    with qfx.config(cfg):
        net = nn.Sequential(QInput(), QConv2d(3, 4, 3, padding=1), QBatchNorm2d(4), QReLU(),
                            QFlatten(), QLinear(4 * 5 * 5, 3))
    x = torch.randn(24, 3, 5, 5)
    net.train()
    net(x)
    return net, x


MODELS = {"mlp": mlp, "cnn": cnn, "residual": residual, "wide": wide}


def zoo_model(name: str, quant: dict | None) -> tuple[nn.Module, torch.Tensor]:
    """A zoo model in eval mode and its calibration batch (seed 0): float models quantized by
    ``quant`` on 64 normal samples; binarized ones (``quant=None``) with BatchNorm statistics and
    first-batch binary points from 32 uniform samples."""
    torch.manual_seed(0)
    shape = model_spec(name).input_shape
    if quant is None:
        model = get_model(name)
        calib = torch.rand(32, *shape)
        model.train()
        with torch.no_grad():
            model(calib)
        return model.eval(), calib
    calib = torch.randn(64, *shape)
    return qfx.quantize_model(get_model(name), quant, calib).eval(), calib


def tiny_graph() -> qfx.Graph:
    """A frozen 4 -> 2 dense layer: the smallest graph every backend exports (no training)."""
    torch.manual_seed(7)
    net = nn.Sequential(QInput(8), QLinear(4, 2))
    with qfx.calibration(net):
        net(torch.randn(16, 4))
    return qfx.freeze(net, torch.randn(1, 4))


def folded_threshold_cnn() -> tuple[nn.Module, qfx.Graph, torch.Tensor]:
    """conv/BN/QReLU(3 bits) -> conv/BN(two negative scales)/QHardTanh(4 bits) -> linear,
    frozen with ``fold_thresholds=True`` (two multithreshold nodes, falling channels)."""
    torch.manual_seed(3)
    with qfx.config(QConfig(act_width=6, per_channel_weights=True)):
        net = nn.Sequential(QInput(8), QConv2d(2, 4, 3, padding=1), QBatchNorm2d(4),
                            QReLU(act_width=3), QConv2d(4, 3, 3), QBatchNorm2d(3),
                            QHardTanh(-1.0, 1.0, act_width=4), QFlatten(), QLinear(48, 3))
    x = torch.randn(32, 2, 6, 6)
    net.train()
    for _ in range(2):
        net(x)
    with torch.no_grad():
        net[5].weight.mul_(torch.tensor([-1.0, 1.0, -2.0]))  # falling channels
    net.eval()
    return net, qfx.freeze(net, x[:1], fold_thresholds=True), x
# ---------------------------------------------------------------------- graph ops (ops-graph)
class GraphOpsNet(nn.Module):
    """Two inputs ([2, 4, 4] and a [6] or [6, 1, 1] gate), two outputs: a 3-way QConcat
    (narrow SAT output: saturates), nearest upsampling by (2, 1), padding with 0.5, a
    per-channel QMul gate (narrow WRAP output: wraps), and the plain ``torch.cat`` /
    ``torch.mul`` of the first input (exact types, no cast)."""

    def __init__(self) -> None:
        super().__init__()
        sat = QConfig(act_overflow="SAT")
        wrap = QConfig(act_overflow="WRAP", act_width=5)
        self.qa, self.qg = QInput(8, config=sat), QInput(6, config=sat)
        self.relu = QReLU(config=sat)
        self.cat = QConcat(act_width=6, config=sat)
        self.up = QUpsample((2, 1))
        self.pad = QPad((1, 0, 2, 1), value=0.5)
        self.gate = QMul(config=wrap)

    def forward(self, a: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.qa(a)
        r = self.relu(a)
        y = self.pad(self.up(self.cat(a, r, a)))
        return self.gate(y, self.qg(g)), torch.mul(torch.cat([a, r], dim=1), torch.cat([r, a], 1))


def graph_ops_net(gate_shape: tuple[int, ...] = (6,)) -> tuple[GraphOpsNet, list[torch.Tensor]]:
    """The calibrated GraphOpsNet (eval) and its calibration batches (seed 0); the gate input
    has ``gate_shape`` ((6,) or (6, 1, 1))."""
    torch.manual_seed(0)
    net = GraphOpsNet()
    calib = [torch.randn(64, 2, 4, 4), torch.randn(64, *gate_shape)]
    with qfx.calibration(net):
        net(*calib)
    with torch.no_grad():  # narrow: random inputs saturate the concat and wrap the gate
        net.cat.output_quantizer.log2_lsb.fill_(-5.0)
        net.gate.output_quantizer.log2_lsb.fill_(-3.0)
    return net.eval(), calib


class _WindowOpsNet(nn.Module):
    """ops-window: plain torch.nn with every op ops-window adds (converted by quantize_model):
    conv -> LeakyReLU(2**-2) -> depthwise conv -> Hardswish -> AvgPool2d(3, 2, padding=1,
    ceil_mode, count_include_pad=False) -> Hardsigmoid -> 1x1 conv -> ReLU6 -> clamp ->
    AvgPool2d(3, 2, padding=1, ceil_mode) (count_include_pad: divisors 9, 6, 4 by position) ->
    AdaptiveAvgPool2d(2) -> flatten (the output: every value of the last map). 3x11x11 in."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.leaky = nn.LeakyReLU(0.25)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.hswish = nn.Hardswish()
        self.p1 = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.hsig = nn.Hardsigmoid()
        self.c2 = nn.Conv2d(6, 5, 1)
        self.relu6 = nn.ReLU6()
        self.p2 = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)
        self.adapt = nn.AdaptiveAvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.hswish(self.dw(self.leaky(self.c1(x))))
        y = self.relu6(self.c2(self.hsig(self.p1(y))))
        y = torch.clamp(y, -1.0, 3.5)
        return torch.flatten(self.adapt(self.p2(y)), 1)


def window_ops(width: int = 8, **quant: object) -> tuple[nn.Module, torch.Tensor]:
    """ops-window's model (see :class:`_WindowOpsNet`), input 3x11x11, quantized at ``width``
    bits (``quant``: more QConfig options), and its calibration batch."""
    torch.manual_seed(5)
    calib = torch.randn(48, 3, 11, 11) * 2
    return qfx.quantize_model(_WindowOpsNet().eval(), {"bits": width, **quant}, calib).eval(), calib


def conv1d_ops(width: int = 8, **quant: object) -> tuple[nn.Module, torch.Tensor]:
    """ops-window: a plain torch.nn 1-D CNN (3x20 in): Conv1d stride 2 -> LeakyReLU(2**-3) ->
    depthwise dilated Conv1d -> BatchNorm1d -> Hardswish -> flatten -> Linear, quantized at
    ``width`` bits, and its calibration batch."""
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv1d(3, 6, 5, stride=2, padding=2), nn.LeakyReLU(0.125),
                        nn.Conv1d(6, 6, 3, padding=2, dilation=2, groups=6), nn.BatchNorm1d(6),
                        nn.Hardswish(), nn.Flatten(), nn.Linear(60, 4))
    calib = torch.randn(32, 3, 20)
    net(calib)  # BatchNorm statistics
    return qfx.quantize_model(net.eval(), {"bits": width, **quant}, calib).eval(), calib


def quant_value(t: torch.Tensor) -> torch.Tensor:
    """A Brevitas QuantTensor's float value; a plain tensor as is (the dynamo export traces
    plain tensors)."""
    return t.value if hasattr(t, "value") else t


def calibrated_brevitas(model: nn.Module, shape: tuple[int, ...], spread: float = 1.0
                        ) -> nn.Module:
    """A Brevitas model with its parameters drawn uniformly in [-0.6, 0.6] (seeded) and its
    fixed-point activation quantizers calibrated on three N(0, spread**2) batches of
    ``shape``, in eval mode."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.6, 0.6)
    model.train()
    for _ in range(3):  # the fixed-point activation quantizers calibrate their scales
        model(torch.randn(16, *shape) * spread)
    return model.eval()


def brevitas_conv_fc(channels: int, hw: int, classes: int, bias: bool) -> nn.Module:
    """A Brevitas model 2 -> ``channels`` 3x3 conv (padding 1) -> ReLU -> flatten -> linear to
    ``classes`` (8-bit fixed-point quantizers; ``bias``: float biases, Brevitas' default) on
    inputs of shape (2, ``hw``, ``hw``)."""
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFixedPoint as A8
    from brevitas.quant import Int8WeightPerTensorFixedPoint as W8
    from brevitas.quant import Uint8ActPerTensorFixedPoint as U8

    class ConvFC(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = qnn.QuantIdentity(act_quant=A8, return_quant_tensor=True)
            self.c = qnn.QuantConv2d(2, channels, 3, padding=1, weight_quant=W8, bias=bias)
            self.r = qnn.QuantReLU(act_quant=U8, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(channels * hw * hw, classes, weight_quant=W8, bias=bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(quant_value(self.r(self.c(self.q(x)))), 1))

    return ConvFC()


def export_brevitas(model: nn.Module, shape: tuple[int, ...], path) -> None:
    """Brevitas' QONNX export of ``model`` (batch 4 of ``shape``), TorchScript path (its dynamo
    path gives the same graph for these models but takes ~20 s per export here)."""
    import warnings

    from brevitas.export import export_qonnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(4, *shape), str(path), dynamo=False)


# ---------------------------------------------------------------------- pruning (learned widths)
class _PrunedWidthNet(nn.Module):
    """Learned per-channel widths with channels at width 0: conv (2 of 6 channels pruned, their
    BatchNorm shift positive: a nonzero constant through ReLU) -> 1x1 conv (absorbs it; one
    channel pruned, positive bias) and a depthwise conv -> add -> ReLU -> max pool -> concat
    with a second branch -> flatten -> linear (absorbs the pooled constants)."""

    def __init__(self) -> None:
        super().__init__()
        self.qin = QInput(8)
        self.a = QConv2d(2, 6, 3, padding=1)
        self.bn = QBatchNorm2d(6)
        self.relu = QReLU()
        self.b = QConv2d(6, 5, 1)
        self.dw = QConv2d(5, 5, 3, padding=1, groups=5)
        self.add = QAdd()
        self.relu2 = QReLU()
        self.pool = QMaxPool2d(2)
        self.side = QConv2d(2, 3, 2, stride=2)
        self.cat = QConcat()
        self.flat = QFlatten()
        self.fc = QLinear(8 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.qin(x)
        y = self.b(self.relu(self.bn(self.a(x))))
        y = self.pool(self.relu2(self.add(y, self.dw(y))))
        return self.fc(self.flat(self.cat(y, self.side(x))))


def pruned_width_net() -> tuple[nn.Module, torch.Tensor]:
    """A calibrated learned-width model (per-channel granules; channels of different scales, so
    per-channel weight shifts) with zero-width channels: conv ``a`` channels 1 and 4, conv
    ``b`` channel 2 and both ``dw`` and ``b`` channel 2 (so the add's channel 2 is a constant),
    ``side`` channel 0 (a constant 0)."""
    torch.manual_seed(5)
    cfg = QConfig(learn_widths=True, width_granularity="channel", act_width=6, weight_width=5)
    with qfx.config(cfg):
        net = _PrunedWidthNet()
    with torch.no_grad():  # channels of different scales: their learned formats differ
        net.a.weight[3] *= 4
        net.b.weight[0] *= 8
        net.fc.weight[1] *= 16
    x = torch.randn(32, 2, 4, 4)
    with qfx.calibration(net):
        net(x)
    net.eval()
    with torch.no_grad():
        for layer, chans in ((net.a, (1, 4)), (net.b, (2,)), (net.dw, (2,)), (net.side, (0,))):
            for c in chans:  # a step so coarse that every weight of the channel rounds to 0
                layer.weight_quantizer.log2_lsb[c] = 30.0
        net.side.bias_quantizer.log2_lsb[0] = 30.0  # and its bias: a constant 0
        net.bn.bias[[1, 4]] = 1.0
        net.b.bias[2] = 0.7
    return net, x
