"""quantize_model: torch.nn models (torchvision-style ResNets included) become qfx models
whose eval output is exactly the frozen graph; what cannot be converted is named."""

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx import freeze, quantize_model
from qfx.ir import run_graph
from qfx.nn import QAdd, QBatchNorm2d, QConv2d, QInput, QReLU


class BasicBlock(nn.Module):
    """torchvision's BasicBlock shape: functional ``out += identity`` and ``self.relu``."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layer1(x))
        x = torch.flatten(x, 1)
        return self.fc(x)


def _warm_bn(model, x):
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


def test_torchvision_style_resnet_converts_and_freezes_exactly():
    torch.manual_seed(0)
    x = torch.randn(16, 3, 16, 16)
    net = _warm_bn(TinyResNet(), x)
    q = quantize_model(net, qfx.QConfig.uniform(8), x)
    mods = dict(q.named_modules())
    assert isinstance(mods["conv1"], QConv2d) and isinstance(mods["bn1"], QBatchNorm2d)
    assert sum(isinstance(m, QAdd) for m in mods.values()) == 2
    assert isinstance(mods["qinput"], QInput) and mods["qinput"].output_quantizer.signed
    q.eval()
    graph = freeze(q, x[:1])
    with torch.no_grad():
        expected = q(x * 4)
    res = run_graph(graph, x * 4)
    out_t = graph.edges[graph.outputs[0]].type
    assert np.array_equal(out_t.to_int(expected).numpy(), res.raw[0])
    ops = [n.op for n in graph.nodes]
    assert ops.count("add") == 2 and "avgpool2d" in ops and "maxpool2d" in ops
    # 8-bit fixed point stays close to the float model it came from
    with torch.no_grad():
        ref, out = net(x), q(x).float()
    assert torch.corrcoef(torch.stack([ref.flatten(), out.flatten()]))[0, 1] > 0.9


def test_reused_relu_module_becomes_separate_casts():
    torch.manual_seed(1)
    x = torch.randn(8, 8, 8, 8)
    q = quantize_model(_warm_bn(BasicBlock(8, 8), x), None, x)
    relus = [n for n in q.graph.nodes if n.op == "call_module" and
             isinstance(q.get_submodule(n.target), QReLU)]
    assert len(relus) == 2  # the same nn.ReLU module called twice: two calls


def test_unsigned_input_when_data_is_non_negative():
    q = quantize_model(nn.Sequential(nn.Linear(4, 2)), None, torch.rand(32, 4))
    assert not q.get_submodule("qinput").output_quantizer.signed


def test_fold_batchnorm_into_conv():
    torch.manual_seed(2)
    x = torch.randn(8, 3, 6, 6)
    net = _warm_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), x)
    q = quantize_model(net, {"bits": 12}, x, fold_batchnorm=True)
    assert not any(isinstance(m, QBatchNorm2d) for m in q.modules())
    conv = q.get_submodule("0")
    assert conv.bias is not None
    with torch.no_grad():
        ref = net(x)
        out = q.eval()(x).float()
    assert (out - ref).abs().max() < 0.1


class _Weird(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.GELU())

    def forward(self, x):
        return self.body(x)


def test_unsupported_module_is_named_with_its_path_and_type():
    with pytest.raises(ValueError, match=r"'body\.1' of type GELU"):
        quantize_model(_Weird(), None, torch.randn(2, 4))


class _Cumsum(nn.Module):  # torch.cat converts since concat is an op (ops-graph)
    def forward(self, x):
        return torch.cumsum(x, 1)


def test_unsupported_function_is_named():
    with pytest.raises(ValueError, match="cumsum"):
        quantize_model(_Cumsum(), None, torch.randn(2, 4))


def test_quantized_model_trains_and_keeps_exactness():
    torch.manual_seed(3)
    x = torch.randn(64, 3, 8, 8)
    y = torch.randint(0, 5, (64,))
    q = quantize_model(_warm_bn(TinyResNet(), x), qfx.QConfig.uniform(6), x)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    q.train()
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(q(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    q.eval()
    graph = freeze(q, x[:1])
    with torch.no_grad():
        expected = q(x)
    out_t = graph.edges[graph.outputs[0]].type
    assert np.array_equal(out_t.to_int(expected).numpy(), run_graph(graph, x).raw[0])


def test_config_rejects_unknown_options():
    with pytest.raises(ValueError, match="allowed: bits"):
        quantize_model(nn.Linear(2, 2), {"weigth_width": 4})


def test_conv_before_batchnorm_hands_on_its_accumulator_unless_configured():
    torch.manual_seed(4)
    x = torch.randn(8, 3, 6, 6)
    net = _warm_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.Conv2d(4, 2, 1)), x)
    q = quantize_model(net, None, x)
    assert q.get_submodule("0").output_quantizer is None  # feeds the BatchNorm
    assert q.get_submodule("3").output_quantizer is not None  # feeds the output
    q2 = quantize_model(net, {"quantize_before_batchnorm": True}, x)
    assert q2.get_submodule("0").output_quantizer is not None


@pytest.mark.parametrize("quant", [{"bits": 8}, {"bits": 8, "learn_widths": True}])
def test_the_logits_format_holds_every_value_seen_in_training(quant):
    # The rounding-error gradient alone would narrow the logits' range (clipping confident
    # logits costs the cross-entropy nothing); quantize_model makes their format cover them.
    torch.manual_seed(0)
    float_net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3))
    q = quantize_model(float_net, quant, torch.randn(64, 6))
    out_q = q.get_submodule("3").output_quantizer
    assert out_q.covers and not q.get_submodule("0").output_quantizer.covers
    x, y = 8 * torch.randn(256, 6), torch.randint(0, 3, (256,))
    opt = torch.optim.Adam(q.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(q.train()(x), y).backward()
        opt.step()
    q(x)  # the range seen by the last training batch counts too
    g = freeze(q.eval(), x[:1])
    sat = qfx.ir.report.output_saturation(g, x)
    assert sat.clipped == 0 and sat.ties_at_max == 0
    off = quantize_model(float_net, {**quant, "cover_outputs": False}, torch.randn(64, 6))
    assert not off.get_submodule("3").output_quantizer.covers
