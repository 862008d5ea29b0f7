"""K-hot shift-add layers and binarized layers of the HLS layer library, C-simulated bit for bit.

Exported firmware + testbench are compiled with g++ and the ap_types headers (both arithmetic
paths of qfx_layers.h: the native C-simulation path and the ap_fixed path that synthesis
compiles, -DQFX_AP_ARITH) and their raw outputs compared with the exact executor using `==`.

* K-hot (K = 1, 2) MLPs and conv nets (weights and BatchNorm scales): emitted as digit tables
  (sign, shift) and computed by shifts and adds; inputs x1, x16, x256 force saturation/wrap.
* Binarized: ``qfx.zoo.digits_bnn`` (thermometer and fixed-point first layers) and a small
  hand-built binary conv net with padding, stride, groups, per-channel scales (plain and K-hot)
  and a binary dense layer; XNOR-popcount on packed 32-bit words.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.backends.hls.layout import read_vectors
from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.writer import export_firmware
from qfx.csim.toolchain import ap_types_include_dir, compile_cpp
from qfx.ir import run_graph
from qfx.nn import (
    QBatchNorm1d,
    QBatchNorm2d,
    QBinaryConv2d,
    QBinaryLinear,
    QConfig,
    QConv2d,
    QFlatten,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
    QSign,
    QThermometer,
)
from qfx.zoo import digits_bnn

FLAGS = ("-O1", "-std=c++14", "-DNDEBUG")

AP_TYPES = ap_types_include_dir()  # hls4ml (a required dependency) ships the headers



# ---------------------------------------------------------------------------- helpers
def _build(prj: HLSProject, *defines: str) -> Path:
    tag = "".join(d.lower().replace("-dqfx_", "_") for d in defines) or "_native"
    return compile_cpp([prj.tb_source, *prj.sources], prj.root / "build" / f"tb{tag}",
                       include_dirs=[AP_TYPES, *prj.include_dirs], flags=[*FLAGS, *defines],
                       timeout=300)


def _reference(prj: HLSProject) -> np.ndarray:
    g = prj.graph
    raw_in = read_vectors(prj.input_vectors)
    e = g.edges[g.inputs[0]]
    res = run_graph(g, e.type.from_int(raw_in.reshape(-1, *e.shape)))
    return res.raw[0].reshape(len(raw_in), -1)


def _assert_bit_exact(prj: HLSProject, *defines: str) -> None:
    exe = _build(prj, *defines)
    out = prj.root / f"out_{exe.name}.txt"
    proc = subprocess.run([str(exe), str(prj.input_vectors), str(out), str(prj.expected_vectors)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got, ref = read_vectors(out), _reference(prj)
    assert got.dtype == np.int64 and got.shape == ref.shape
    assert np.array_equal(got, ref), f"{int((got != ref).sum())} mismatching outputs"
    assert f"{len(ref)} samples, 0 mismatches" in proc.stdout


def _export(tmp: Path, name: str, net: nn.Module, x: torch.Tensor, scales, *,
            saturate: bool = True) -> HLSProject:
    net.eval()
    graph = qfx.freeze(net, x[:1])
    xs = np.concatenate([x.numpy() * s for s in scales])
    prj = export_firmware(graph, tmp / name, project_name=name, test_vectors=xs)
    if saturate:  # the scaled inputs really overflow the input format
        assert run_graph(graph, xs).overflow[graph.nodes[0].name] > 0
    return prj


def _calibrate(net: nn.Module, x: torch.Tensor, steps: int = 2) -> nn.Module:
    net.train()
    with torch.no_grad():
        for _ in range(steps):
            net(x)
    return net.eval()


# ---------------------------------------------------------------------------- K-hot
def _khot_mlp(k: int, overflow: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(10 + k)
    cfg = QConfig(weight_khot=k, bn_scale_khot=k, per_channel_weights=True, act_width=6,
                  act_overflow=overflow, weight_overflow=overflow)
    with qfx.config(cfg):
        net = nn.Sequential(QInput(8), QLinear(12, 9), QBatchNorm1d(9), QReLU(),
                            QLinear(9, 6, bias=False), QReLU(), QLinear(6, 4))
    x = torch.randn(32, 12)
    return _calibrate(net, x), x


def _khot_cnn(k: int, overflow: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(20 + k)
    cfg = QConfig(weight_khot=k, bn_scale_khot=k, per_channel_weights=True, act_width=6,
                  act_overflow=overflow, weight_overflow=overflow)
    with qfx.config(cfg):
        net = nn.Sequential(
            QInput(8), QConv2d(3, 8, 3, padding=1), QBatchNorm2d(8), QReLU(),
            QConv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=False), QBatchNorm2d(8),
            QReLU(), QMaxPool2d(2), QFlatten(), QLinear(8 * 2 * 2, 5))
    x = torch.randn(24, 3, 8, 8)
    return _calibrate(net, x), x


def _khot_nodes(graph: qfx.Graph) -> list:
    return [n for n in graph.nodes if "weight_digits" in n.params or "scale_digits" in n.params]


@pytest.mark.parametrize("kind, k, overflow", [
    ("mlp", 1, "SAT"), ("mlp", 2, "WRAP"), ("cnn", 1, "WRAP"), ("cnn", 2, "SAT"),
])
def test_khot_layers_are_shift_add_and_bit_exact(tmp_path, kind, k, overflow):
    net, x = (_khot_mlp if kind == "mlp" else _khot_cnn)(k, overflow)
    prj = _export(tmp_path, f"khot_{kind}{k}", net, x, (1.0, 16.0, 256.0))
    g = prj.graph
    khot = _khot_nodes(g)
    assert {n.op for n in khot} == {"dense", "batchnorm"} | ({"conv2d"} if kind == "cnn" else set())
    top = prj.top_source.read_text()
    for node in khot:
        key = "weight" if "weight_digits" in node.params else "scale"
        prefix = "w" if key == "weight" else "scale"
        assert f"qfx::{node.op}_khot<" in top
        # digit tables instead of the constant: no multiplier operand is emitted
        sign = (prj.weights_dir / f"{node.name}_{prefix}_dsign.h").read_text()
        shift = (prj.weights_dir / f"{node.name}_{prefix}_dshift.h").read_text()
        assert f"[{node.params[f'{key}_digits'][..., 0].size}]" in sign and "K-hot" in shift
        assert not (prj.weights_dir / f"{node.name}_{prefix}.h").exists()
    layers = (prj.firmware_dir / "qfx_layers.h").read_text()
    # one loop nest per family (dense_core, ...); the K-hot wrappers pass the shift-add policy
    policy = layers.split("struct khot_weights {", 1)[1].split("\n};\n", 1)[0]
    assert "khot_product<" in policy and " * from_raw<" not in policy and "mul(" not in policy
    product = layers.split("khot_product(const IN_T& x", 1)[1].split("\n}\n", 1)[0]
    assert "<<" in product and " * " not in product  # shifts and adds, no multiplication
    for func in ("dense_khot", "conv2d_khot", "batchnorm_khot"):
        body = layers.split(f"void {func}(", 1)[1].split("\n}\n", 1)[0]
        assert "khot_weights<CFG," in body
        assert f"{func[:-len('_khot')]}_core<CFG>(" in body and "const_weights<" not in body
    _assert_bit_exact(prj)
    _assert_bit_exact(prj, "-DQFX_AP_ARITH")


# ---------------------------------------------------------------------------- binary
def test_digits_bnn_thermometer_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    net = digits_bnn()
    x = torch.rand(24, 1, 8, 8) / 2
    _calibrate(net, x, 3)
    prj = _export(tmp_path, "digits_bnn", net, torch.cat([x, torch.randn(8, 1, 8, 8)]),
                  (1.0, 4.0))
    ops = [n.op for n in prj.graph.nodes]
    assert {"thermometer", "binary_conv2d", "threshold", "binary_dense"} <= set(ops)
    top = prj.top_source.read_text()
    assert "qfx::binary_conv2d<" in top and "qfx::binary_dense<" in top
    assert "qfx::thermometer<" in top and "qfx::threshold<" in top
    _assert_bit_exact(prj)
    _assert_bit_exact(prj, "-DQFX_AP_ARITH")


def test_digits_bnn_fixed_first_layer_is_bit_exact(tmp_path):
    torch.manual_seed(1)
    net = digits_bnn(first_layer="fixed", channels=(8, 16), hidden=32)
    x = torch.rand(24, 1, 8, 8) / 2
    _calibrate(net, x, 3)
    prj = _export(tmp_path, "digits_bnn_fixed", net, x, (1.0, 16.0))
    assert [n.op for n in prj.graph.nodes][1:3] == ["conv2d", "threshold"]
    _assert_bit_exact(prj)


class _BinaryNet(nn.Module):
    """Thermometer -> binary conv (padding 2, stride 2, scale) -> sign -> grouped binary conv
    (padding 1, dilation 2, no scale) -> sign -> max pool -> binary dense (K-hot scale) -> sign
    -> binary dense (no scale) -> fixed-point linear."""

    def __init__(self) -> None:
        super().__init__()
        cfg = QConfig(bn_scale_khot=2, act_width=7)
        self.qin = QInput(8, config=cfg)
        self.thermo = QThermometer(3, -1.0, 1.0)
        self.c1 = QBinaryConv2d(6, 8, 3, stride=2, padding=2, scale=True, config=QConfig())
        self.bn1 = QBatchNorm2d(8, config=cfg)
        self.s1 = QSign()
        self.c2 = QBinaryConv2d(8, 12, 3, padding=1, dilation=2, groups=4, config=cfg)
        self.bn2 = QBatchNorm2d(12, config=cfg)
        self.s2 = QSign()
        self.pool = QMaxPool2d(2, ceil_mode=True)
        self.flat = QFlatten()
        self.fc1 = QBinaryLinear(12 * 2 * 2, 40, scale=True, config=cfg)
        self.bn3 = QBatchNorm1d(40, config=cfg)
        self.s3 = QSign()
        self.fc2 = QBinaryLinear(40, 33, config=cfg)
        self.s4 = QSign()
        self.fc3 = QLinear(33, 4, config=cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.thermo(self.qin(x))
        x = self.s1(self.bn1(self.c1(x)))
        x = self.s2(self.bn2(self.c2(x)))
        x = self.flat(self.pool(x))
        x = self.s3(self.bn3(self.fc1(x)))
        return self.fc3(self.s4(self.fc2(x)))


def test_hand_built_binary_conv_net_is_bit_exact(tmp_path):
    torch.manual_seed(2)
    net = _BinaryNet()
    x = torch.randn(24, 2, 7, 7)
    _calibrate(net, x, 3)
    prj = _export(tmp_path, "bnet", net, x, (1.0, 8.0))
    g = prj.graph
    binary = {n.name: n for n in g.nodes if n.op.startswith("binary_")}
    assert "scale" in binary["c1"].params and "scale_digits" not in binary["c1"].params
    assert "scale_digits" in binary["fc1"].params and "scale" not in binary["fc2"].params
    assert g.node("c2").attrs["groups"] == 4
    top = prj.top_source.read_text()
    assert "qfx::binary_conv2d_scale<" in top and "qfx::binary_dense_khot<" in top
    assert "qfx::binary_dense<" in top and "qfx::binary_conv2d<" in top
    # packed weights: 32-bit words, ceil(fan_in / 32) per output channel
    words = (prj.weights_dir / "c2_wbits.h").read_text()
    assert f"c2_wbits[{12 * 1}]" in words  # fan_in 2*3*3 = 18 bits: one word per channel
    _assert_bit_exact(prj)
    _assert_bit_exact(prj, "-DQFX_AP_ARITH")


def test_binary_layers_refuse_a_non_binary_input(tmp_path):
    torch.manual_seed(3)
    net = _BinaryNet()
    x = torch.randn(8, 2, 7, 7)
    _calibrate(net, x, 1)
    graph = qfx.freeze(net, x[:1])
    node = graph.node("c2")
    node.inputs = [graph.node("c1").output]  # an integer edge instead of the sign's output
    with pytest.raises(ValueError, match="binary input edge"):
        export_firmware(graph, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
