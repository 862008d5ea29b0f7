"""Randomly generated architectures (plain torch.nn, converted with quantize_model) export and
C-simulate bit-exactly on both arithmetic paths (native and -DQFX_AP_ARITH, what synthesis
compiles), in both architectures, with K-hot or ordinary weights and saturating inputs; nothing
here was hand-picked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.fixed import OVERFLOW_MODES, ROUNDING_MODES


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


def _random_model(rng: np.random.Generator) -> tuple[nn.Module, tuple[int, ...]]:
    """A random CNN (conv/BN/ReLU/Hardtanh/pool/residual blocks) ending in linear layers."""
    c, h = int(rng.integers(1, 4)), int(rng.integers(6, 11))
    shape = (c, h, h)
    layers: list[nn.Module] = []
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["conv", "residual", "pool"])
        if kind == "pool" and h >= 4:
            layers.append(nn.MaxPool2d(2) if rng.random() < 0.5 else nn.AvgPool2d(2))
            h //= 2
            continue
        out = int(rng.integers(2, 7))
        k = int(rng.choice([1, 3]))
        if kind == "residual":
            layers.append(_Residual(nn.Sequential(nn.Conv2d(c, c, 3, padding=1),
                                                  nn.BatchNorm2d(c))))
            continue
        layers += [nn.Conv2d(c, out, k, padding=k // 2, bias=bool(rng.random() < 0.7)),
                   nn.BatchNorm2d(out),
                   nn.ReLU() if rng.random() < 0.7 else nn.Hardtanh(-1.0, 1.0)]
        c = out
    layers += [nn.Flatten(), nn.Linear(c * h * h, int(rng.integers(3, 9))), nn.ReLU()]
    layers.append(nn.Linear(layers[-2].out_features, int(rng.integers(2, 5))))
    model = nn.Sequential(*layers)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model.eval(), shape


@pytest.mark.parametrize("seed", [11, 23, 37])
def test_random_model_is_bit_exact_on_both_paths(seed, tmp_path):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model, shape = _random_model(rng)
    width = int(rng.integers(4, 10))
    quant = {"bits": width,
             "act_rounding": str(rng.choice([r for r in ROUNDING_MODES])),
             "act_overflow": str(rng.choice([o for o in OVERFLOW_MODES if o != "WRAP_SM"])),
             "per_channel_weights": bool(rng.random() < 0.5)}
    khot = int(rng.integers(0, 4))  # 0: ordinary weights; K: multiplier-free K-hot weights
    if khot:
        quant["weight_khot"] = khot
    calib = torch.randn(32, *shape)
    qmodel = qfx.quantize_model(model, quant, calib).eval()
    io = "stream" if seed % 2 else "parallel"
    project = qfx.export_hls(qmodel, calib[:1], tmp_path / "prj", board="ultra96", io=io,
                             reuse=16, on_budget="ignore", test_vectors=calib[:2].numpy())
    x = torch.cat([torch.randn(3, *shape), torch.randn(3, *shape) * 8])  # saturate / wrap
    report = qfx.csim(project, x, arith="both")
    assert report.bit_exact and report.mismatches == 0, str(report)
    # the software model (the qfx layers in eval) equals the frozen graph the C++ matched
    graph = qfx.freeze(qmodel, calib[:1])
    out_t = graph.edges[graph.outputs[0]].type
    with torch.no_grad():
        expected = out_t.to_int(qmodel(x)).numpy()
    assert np.array_equal(qfx.run_graph(graph, x).raw[0], expected)


@pytest.mark.parametrize("seed", [5, 21])
def test_random_learned_width_model_trains_to_a_budget_and_is_bit_exact(seed, tmp_path):
    """Learned widths (a random granularity) trained to a random share of their start's
    export estimate: the budget holds, and eval output == frozen executor == ONNX (float64,
    onnxruntime) == C-simulation on both arithmetic paths, saturating inputs included."""
    from torch.utils.data import TensorDataset

    from qfx.backends.onnx import build_onnx_model, run_onnx
    from qfx.flows.measure import estimate_measure
    from qfx.training import train
    from qfx.training.budget import BudgetRegularizer

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model, shape = _random_model(rng)
    granularity = str(rng.choice(["tensor", "channel", "element"]))
    calib = torch.randn(64, *shape)
    qmodel = qfx.quantize_model(model, {"bits": int(rng.integers(3, 9)), "learn_widths": True,
                                        "width_granularity": granularity}, calib)
    classes = int(model(calib[:1]).shape[1])
    data = TensorDataset(calib, torch.randint(0, classes, (64,)))
    measure = estimate_measure(board="ultra96", reuse=4)
    start = measure(qmodel, calib[:1]).total["lut_equiv"]
    budget = float(rng.uniform(0.4, 0.8)) * start
    reg = BudgetRegularizer(qmodel, calib[:1], {"lut_equiv": budget},
                            measure=lambda m: measure(m, calib[:1]))
    res = train(qmodel, data, data, epochs=3, lr=0.01, batch_size=16, seed=seed,
                progress=False, plot=False, regularizer=reg)
    assert res.history[-1]["fits_budget"]
    assert measure(qmodel, calib[:1]).total["lut_equiv"] <= budget
    qmodel.eval()
    graph = qfx.freeze(qmodel, calib[:1])
    x = torch.cat([torch.randn(3, *shape), torch.randn(3, *shape) * 8])
    with torch.no_grad():
        expected = graph.edges[graph.outputs[0]].type.to_int(qmodel(x)).numpy()
    ran = qfx.run_graph(graph, x.double().numpy())
    assert np.array_equal(ran.raw[0], expected)
    assert np.array_equal(run_onnx(build_onnx_model(graph), [x.double().numpy()])[0],
                          ran.outputs[0])
    project = qfx.export_hls(graph, None, tmp_path / "prj", board="ultra96", reuse=4,
                             io="stream" if seed % 2 else "parallel", on_budget="ignore",
                             test_vectors=x[:2].numpy())
    report = qfx.csim(project, x, arith="both")
    assert report.bit_exact and report.mismatches == 0, str(report)
