"""Float zoo: shapes, parameter counts, converter-friendly structure, and digits accuracy."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx as fx
from torch import nn

from qfx.data import get_dataset
from qfx.training import train
from qfx.zoo import Add, BasicBlock, Concat, UNet, get_model, model_names, model_spec

ALLOWED = (nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d,
           nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear, Add, Concat, nn.Upsample, nn.Softmax)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name, shape", [("digits_cnn", (1, 8, 8)), ("resnet8", (3, 32, 32)),
                                         ("resnet20", (3, 32, 32))])
def test_output_shapes(name: str, shape: tuple[int, ...]) -> None:
    model = get_model(name).eval()
    assert model_spec(name).input_shape == shape
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
    assert get_model(name, num_classes=7).eval()(torch.zeros(1, *shape)).shape == (1, 7)


def test_parameter_counts() -> None:
    # ResNet-8 equals the MLPerf-Tiny style peer model (stem 16, 16/32/64, 1x1 shortcuts).
    assert _params(get_model("resnet8")) == 78_042
    # ResNet-20 with option-B (1x1 conv + BN) shortcuts: ~0.27M as in He et al.
    assert _params(get_model("resnet20")) == 272_474
    assert 2_000 < _params(get_model("digits_cnn")) < 10_000


def test_block_structure() -> None:
    r8, r20 = get_model("resnet8"), get_model("resnet20")
    blocks8 = [m for m in r8.modules() if isinstance(m, BasicBlock)]
    blocks20 = [m for m in r20.modules() if isinstance(m, BasicBlock)]
    assert len(blocks8) == 3 and len(blocks20) == 9
    assert [b.shortcut is not None for b in blocks8] == [False, True, True]
    assert sum(b.shortcut is not None for b in blocks20) == 2
    assert [b.conv1.stride for b in blocks8] == [(1, 1), (2, 2), (2, 2)]
    n_convs = sum(isinstance(m, nn.Conv2d) for m in r20.modules())
    assert n_convs == 1 + 18 + 2  # stem + 2 per block + 2 projection shortcuts


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (Add, Concat)) or super().is_leaf_module(m, qualname)


@pytest.mark.parametrize("name", model_names("float"))
def test_every_op_is_a_distinct_standard_module(name: str) -> None:
    model = get_model(name)
    graph = _LeafTracer().trace(model)
    calls = [n for n in graph.nodes if n.op == "call_module"]
    functions = [n.target for n in graph.nodes if n.op in ("call_function", "call_method")]
    # No bare `+`, relu or other function: the converter sees every op as a module ...
    assert not functions, functions
    assert all(isinstance(model.get_submodule(n.target), ALLOWED) for n in calls)
    # ... and each module is called exactly once, so each gets its own quantizer.
    targets = [n.target for n in calls]
    assert len(targets) == len(set(targets))
    adds = [t for t in targets if isinstance(model.get_submodule(t), Add)]
    assert len(adds) == sum(isinstance(m, BasicBlock) for m in model.modules())
    assert operator.add not in functions


def test_add_module() -> None:
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(Add()(a, b), a + b)


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'vgg'; known models: digits_cnn, "
                                         r"resnet8, resnet20"):
        get_model("vgg")
    with pytest.raises(ValueError, match=r"unknown option\(s\) depth for model 'resnet8'; "
                                         r"allowed: num_classes"):
        get_model("resnet8", depth=3)


def test_digits_cnn_reaches_95_percent_in_float() -> None:
    split = get_dataset("digits")
    torch.manual_seed(0)
    result = train(get_model("digits_cnn"), split.train, split.test, epochs=12, batch_size=32,
                   lr=3e-3, progress=False, seed=0)
    assert result.final_test_acc >= 0.95


def test_unet_keeps_the_input_size_and_converts_to_graph_ops() -> None:
    model = get_model("unet").eval()
    assert model_spec("unet").input_shape == (1, 16, 16)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 2, 16, 16)
    assert _params(model) == 3_726
    with pytest.raises(ValueError, match="input_size must be divisible by 4"):
        UNet(input_size=10)


def test_cancer_mlp_quantizes_trains_and_freezes_bit_exactly() -> None:
    """issue #16's second task: the hls4ml-style MLP on the breast-cancer split converts like
    digits_cnn (8-bit formats), learns the task in a few epochs, and its frozen integer graph
    gives the eval model's raw outputs."""
    import numpy as np

    import qfx

    assert model_spec("cancer_mlp").input_shape == (30,)
    assert model_spec("cancer_mlp").dataset == "breast_cancer"
    split = get_dataset("breast_cancer")
    torch.manual_seed(0)
    model = qfx.quantize_model(get_model("cancer_mlp"), {"bits": 8}, split.train.tensors[0])
    result = train(model, split.train, split.test, epochs=4, batch_size=32, lr=3e-3,
                   progress=False, plot=False, seed=0)
    x, y = split.test.tensors
    graph = qfx.freeze(model.eval(), x[:1])
    out = qfx.run_graph(graph, x)
    with torch.no_grad():
        expected = graph.edges[graph.outputs[0]].type.to_int(model(x)).numpy()
    assert np.array_equal(out.raw[0], expected)
    assert [n.op for n in graph.nodes].count("dense") == 3
    acc = float((torch.from_numpy(out.outputs[0]).argmax(1) == y).double().mean())
    assert acc == pytest.approx(result.final_test_acc) and acc >= 0.93
