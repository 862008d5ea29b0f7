"""Global average pooling after a functional relu, a residual add, or as the first layer
(issue #17, item 9): nodes inserted during conversion carry their shape."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qfx
from qfx import freeze, quantize_model
from qfx.ir.executor import run_graph


class PoolAfterRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))


class ResNetHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        shortcut = x
        out = self.conv(x)
        return self.fc(torch.flatten(self.pool(F.relu(out + shortcut)), 1))


class PoolAfterAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x) + x).flatten(1))


class PoolFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.mark.parametrize("cls", [PoolAfterRelu, ResNetHead, PoolAfterAdd, PoolFirst])
def test_global_pool_converts_calibrates_and_freezes_exactly(cls):
    torch.manual_seed(0)
    x = torch.randn(32, 3, 6, 6)
    q = quantize_model(cls().eval(), qfx.QConfig.uniform(8), x)
    q.eval()
    graph = freeze(q, x[:1])
    assert "avgpool2d" in [n.op for n in graph.nodes]
    xt = torch.randn(16, 3, 6, 6) * 2
    with torch.no_grad():
        expected = q(xt)
    out_t = graph.edges[graph.outputs[0]].type
    assert np.array_equal(out_t.to_int(expected).numpy(), run_graph(graph, xt).raw[0])


def test_unknown_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match="'pool'.*input size is unknown"):
        quantize_model(PoolFirst().eval(), None)
