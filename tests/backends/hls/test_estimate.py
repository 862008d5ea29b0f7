"""The resource/latency ESTIMATE of the HLS design (qfx.backends.hls.estimate): it follows the
writer's folding, moves with the reuse factor as documented (more reuse -> fewer DSPs, more
latency; monotone), counts K-hot and binary layers as 0 DSP, maps small products to LUTs, puts
large folded weights in BRAM18K, and reports over-budget designs. No synthesis is run: these are
golden-structure tests of the documented model, not of Vivado."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.backends.hls.boards import BoardError
from qfx.backends.hls.estimate import (
    BRAM_MIN_BITS,
    FABRIC_MULT_MAX_PRODUCT,
    ResourceReport,
    dsp_per_multiply,
    estimate_resources,
)
from qfx.backends.hls.reuse import MAX_UNROLL, fold
from qfx.fixed.fixed_type import FixedType
from qfx.ir import cost_report
from qfx.nn import (
    QBatchNorm2d,
    QConfig,
    QConv2d,
    QFlatten,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
)

REUSES = (1, 2, 3, 4, 6, 8, 16, 32, 64, 128, 512, 4096)


def _non_increasing(values: list[int]) -> bool:
    return all(values[i] >= values[i + 1] for i in range(len(values) - 1))


def _non_decreasing(values: list[int]) -> bool:
    return _non_increasing([-v for v in values])


def _freeze(net: nn.Module, x: torch.Tensor) -> qfx.Graph:
    net.train()
    with qfx.calibration(net):
        net(x)
    return qfx.freeze(net.eval(), x[:1])


def _cnn(cfg: QConfig | None = None) -> qfx.Graph:
    torch.manual_seed(1)
    with qfx.config(cfg or QConfig()):
        net = nn.Sequential(QInput(8), QConv2d(2, 4, 3, padding=1), QBatchNorm2d(4), QReLU(),
                            QMaxPool2d(2), QFlatten(), QLinear(16, 5))
    return _freeze(net, torch.randn(32, 2, 4, 4))


def _mlp(n_in: int, n_out: int, bits: int = 8) -> qfx.Graph:
    torch.manual_seed(2)
    with qfx.config(QConfig(weight_width=bits, act_width=bits, input_width=bits)):
        net = nn.Sequential(QInput(bits), QLinear(n_in, n_out))
    return _freeze(net, torch.randn(64, n_in))


@pytest.fixture(scope="module")
def cnn() -> qfx.Graph:
    return _cnn()


# ---------------------------------------------------------------------------- reuse factor
def test_more_reuse_means_fewer_dsps_and_more_latency_monotonically(cnn):
    reports = [estimate_resources(cnn, reuse=r, board="ultra96") for r in REUSES]
    dsp = [r.total.dsp for r in reports]
    cycles = [r.latency_cycles for r in reports]
    assert _non_increasing(dsp), dsp
    assert _non_decreasing(cycles), cycles
    assert dsp[0] > dsp[-1] > 0 and cycles[-1] > cycles[0]
    # per layer too: multipliers never grow, latency never shrinks
    for node in ("n_1", "n_2", "n_6"):
        rows = [r.layer(node) for r in reports]
        assert _non_increasing([r.dsp for r in rows]), node
        assert _non_decreasing([r.latency_cycles for r in rows]), node
        assert _non_decreasing([r.ii for r in rows]), node


def test_parallelism_is_the_writers_folding(cnn):
    """multipliers = ceil(n_mults / reuse) (conv: per output channel), capped at 4096, rounded
    down to whole reduction rows as the writer unrolls them."""
    conv = cnn.node("n_1")
    k = int(np.prod(conv.params["weight"].shape[1:]))  # C/groups * KH * KW = 18
    pix = 16
    for reuse in (1, 4, 64, 1000):
        row = estimate_resources(cnn, reuse=reuse).layer("n_1")
        assert row.parallel == min(math.ceil(k * pix / reuse), MAX_UNROLL)
        red, lanes = fold(k, pix, reuse)
        # the 4 output channels in turn, each ceil(P/lanes) passes of ceil(K/red) cycles
        assert row.ii == 4 * math.ceil(pix / lanes) * math.ceil(k / red)
        assert row.ii >= math.ceil(4 * k * pix / row.parallel)
    # ceil(288 / 5) = 58 multipliers fold as 18 (one reduction row) x 3 output pixels
    assert estimate_resources(cnn, reuse=5).layer("n_1").parallel == 18 * 3
    dense = estimate_resources(cnn, reuse=5).layer("n_6")
    assert dense.parallel == math.ceil(16 * 5 / 5) and dense.n_mults == 80
    # a dense layer of 8192 multiplications is folded at Vivado's 4096 unroll limit
    big = estimate_resources(_mlp(128, 64), reuse=1)
    row = big.layers[1]
    assert row.op == "dense" and row.parallel == MAX_UNROLL and row.ii == 2
    assert any("4096" in n for n in row.notes)


def test_latency_in_microseconds_follows_the_clock(cnn):
    at_board = estimate_resources(cnn, reuse=2, board="ultra96")
    assert at_board.clock_mhz == 200.0
    assert at_board.latency_us == pytest.approx(at_board.latency_cycles / 200.0)
    at_100 = estimate_resources(cnn, reuse=2, board="ultra96", clock_mhz=100)
    assert at_100.latency_cycles == at_board.latency_cycles
    assert at_100.latency_us == pytest.approx(2 * at_board.latency_us)
    assert at_100.throughput_per_s == pytest.approx(1e8 / at_100.interval_cycles)
    # the total is the sum of the layers (they run one after another) plus the stream I/O
    assert at_board.latency_cycles == sum(r.latency_cycles for r in at_board.layers)
    assert at_board.layers[-1].op == "axis"
    assert estimate_resources(cnn).latency_us is None  # no board, no clock


# ---------------------------------------------------------------------------- multipliers
def test_dsp_model_of_one_multiply():
    assert dsp_per_multiply(FixedType(8, 3), FixedType(8, 1)) == 1
    assert dsp_per_multiply(27, 18) == 1
    assert dsp_per_multiply(28, 18) == 2
    assert dsp_per_multiply(36, 36) == 4
    # an unsigned operand needs one more bit on the signed DSP ports
    assert dsp_per_multiply(FixedType(18, 1, signed=False), FixedType(27, 1)) == 2
    # products of at most 55 partial-product bits (binary operands among them) map to LUTs
    assert FABRIC_MULT_MAX_PRODUCT == 55
    assert dsp_per_multiply(5, 11) == 0 and dsp_per_multiply(7, 7) == 0
    assert dsp_per_multiply(1, 30) == 0
    assert dsp_per_multiply(8, 7) == 1 and dsp_per_multiply(3, 19) == 1
    # Zynq-7000 (PYNQ-Z2) has 25x18 DSP48E1
    assert dsp_per_multiply(26, 18, (25, 18)) == 2


def test_small_products_use_luts_not_dsps():
    g = _mlp(16, 8, bits=4)
    row = estimate_resources(g, reuse=1).layers[1]
    assert row.mult_impl == "lut" and row.dsp == 0 and row.multipliers > 0
    assert row.lut > row.multipliers * 16  # a*b LUTs per multiplier plus adders


def test_zero_and_power_of_two_weights_need_no_dsp_when_fully_unrolled():
    g = _mlp(8, 4)
    node = g.nodes[1]
    w = node.params["weight"]
    w[0, :4] = [0, 1, -2, 4]  # 0 and +-2**k: no multiplier (qfx.ir.cost)
    w[1, :2] = [3, -5]
    true_mults = cost_report(g).node(node.name).mult_ops
    assert true_mults <= w.size - 4
    row = estimate_resources(g, reuse=1).layers[1]
    assert row.multipliers == true_mults and row.dsp == true_mults * row.dsp_per_mult


def test_k_hot_layers_report_zero_dsp():
    cfg = QConfig(weight_khot=2, bn_scale_khot=2)
    g = _cnn(cfg)
    for name in ("n_1", "n_2", "n_6"):
        node = g.node(name)
        key = "scale" if node.op == "batchnorm" else "weight"
        assert node.attrs[f"{key}_khot"] == 2 and f"{key}_digits" in node.params
    plain = _cnn()
    for reuse in (1, 4, 64):
        rep = estimate_resources(g, reuse=reuse, board="ultra96")
        for name in ("n_1", "n_2", "n_6"):
            row = rep.layer(name)
            assert row.dsp == 0 and row.multipliers == 0, (reuse, name)
            assert row.mult_impl == "shift-add"
            assert any("K-hot" in n and "0 DSP" in n for n in row.notes)
            assert row.lut > 0  # the shifts and adds are fabric
        assert rep.total.dsp == 0
        assert estimate_resources(plain, reuse=reuse).total.dsp > 0


def test_a_hand_marked_k_hot_dense_node_reports_zero_dsp():
    """K-hot from the IR attributes alone (digits rebuilt from the weights)."""
    from qfx.fixed.khot import csd_weight, khot_digits

    g = _mlp(8, 4)
    node = g.nodes[1]
    before = estimate_resources(g).layers[1]
    assert before.dsp > 0
    raw = torch.from_numpy(node.params["weight"])
    k = int(csd_weight(raw).max())
    node.params["weight_digits"] = khot_digits(raw, k).numpy()
    node.attrs["weight_khot"] = k
    node.validate()
    row = estimate_resources(g).layers[1]
    assert row.dsp == 0 and row.mult_impl == "shift-add"


def test_binary_layers_use_no_dsp():
    from qfx.zoo import get_model

    torch.manual_seed(0)
    net = get_model("digits_bnn")
    g = _freeze(net, torch.randn(32, 1, 8, 8))
    rep = estimate_resources(g, reuse=16, board="ultra96")
    binary = [r for r in rep.layers if r.op.startswith("binary_")]
    assert binary and all(r.dsp == 0 and r.mult_impl == "xnor" for r in binary)
    assert all(r.lut > 0 for r in binary)


# ---------------------------------------------------------------------------- memories
def test_large_folded_weights_go_to_bram18k():
    g = _mlp(256, 256)
    low = estimate_resources(g, reuse=4096).layers[1]
    # 65,536 8-bit weights in ceil(65536/4096) = 16 banks of 4096 x 8 bits: 2 BRAM18K each
    assert low.parallel == 16
    assert 16 * 2 <= low.bram18k <= 16 * 2 + 2  # + bias and output arrays
    assert 4096 * 8 >= BRAM_MIN_BITS
    # fully unrolled weights are logic, not memory
    tiny = estimate_resources(_mlp(8, 4), reuse=1).layers[1]
    assert tiny.bram18k == 0 and any("constants are logic" in n for n in tiny.notes)


# ---------------------------------------------------------------------------- budget
def test_a_model_too_large_for_the_ultra96_is_over_budget():
    g = _mlp(64, 64, bits=16)  # 4096 16x16 multipliers at reuse 1
    rep = estimate_resources(g, reuse=1, board="ultra96")
    assert not rep.fits
    over = rep.over_budget()
    assert any(m.startswith("DSP ") and "> 360 on ultra96v2 (estimate)" in m for m in over)
    assert rep.total.dsp > 360
    assert rep.utilisation()["DSP"] > 1
    assert "OVER BUDGET" in rep.summary()
    assert estimate_resources(g, reuse=64, board="ultra96").fits
    # the same design fits the bigger ZCU104 budget better
    assert (estimate_resources(g, reuse=1, board="zcu104").utilisation()["DSP"]
            < rep.utilisation()["DSP"])


def test_report_is_plain_data_labelled_estimate(cnn):
    rep = estimate_resources(cnn, reuse=4, board="ultra96")
    assert isinstance(rep, ResourceReport)
    d = json.loads(json.dumps(rep.as_dict()))
    assert d["kind"] == "estimate" and "not a synthesis result" in d["note"]
    assert set(d["estimate"]) >= {"lut", "ff", "dsp", "bram18k", "latency_cycles", "latency_us"}
    assert d["estimate"]["dsp"] == rep.total.dsp
    assert all(set(r["estimate"]) >= {"dsp", "lut", "ff", "bram18k", "latency_cycles"}
               for r in d["layers"])
    assert d["board"]["part"] == "xczu3eg-sbva484-1-i" and d["fits_estimate"] is True
    assert "ESTIMATE" in rep.summary()
    assert rep.layer("n_1").input_types == (cnn.edges[cnn.node("n_1").inputs[0]].type.cpp(),)
    assert rep.layer("n_1").weight_type == cnn.node("n_1").attrs["weight_type"].cpp()
    with pytest.raises(KeyError, match="no layer named"):
        rep.layer("nope")


def test_bad_arguments_are_one_line_errors(cnn):
    with pytest.raises(ValueError, match="reuse must be an integer >= 1"):
        estimate_resources(cnn, reuse=0)
    with pytest.raises(BoardError, match="ultra96v2"):
        estimate_resources(cnn, board="nexys")
    with pytest.raises(ValueError, match="clock_mhz"):
        estimate_resources(cnn, board="ultra96", clock_mhz=-5)


# ---------------------------------------------------------------------------- io="stream"
def test_stream_estimate_moves_with_reuse_and_overlaps_the_layers(cnn):
    reports = [estimate_resources(cnn, reuse=r, board="ultra96", io="stream") for r in REUSES]
    dsp = [r.total.dsp for r in reports]
    assert _non_increasing(dsp) and dsp[0] > dsp[-1] > 0, dsp
    assert _non_decreasing([r.interval_cycles for r in reports])
    for rep in reports:
        assert rep.io == "stream" and rep.as_dict()["io"] == "stream"
        busy = [row.latency_cycles for row in rep.layers]
        # DATAFLOW: one inference every busiest-process cycles, the latency below the sum
        assert rep.interval_cycles == max(busy)
        assert max(busy) <= rep.latency_cycles < sum(busy)
        assert any("DATAFLOW" in n for n in rep.notes)


def test_stream_conv_folds_one_output_pixel(cnn):
    """The streaming conv computes one output pixel (all 4 channels) at a time: the writer's
    fold(K, C_out, reuse), over 16 output pixels, plus one cycle per input pixel read into the
    line buffer (2 rows of 4 pixels of 2 channels: 3x3 kernel, padding 1 -> span 3)."""
    k, cout, pixels = 18, 4, 16
    for reuse in (1, 4, 64):
        row = estimate_resources(cnn, reuse=reuse, io="stream").layer("n_1")
        red, lanes = fold(k, cout, reuse)
        assert row.parallel == red * lanes
        assert row.ii == pixels * math.ceil(cout / lanes) * math.ceil(k / red)
        assert any("line buffer: 3 rows x 4 x 2" in n for n in row.notes)


def test_stream_has_fifos_not_activation_arrays():
    """A wide CNN: the parallel architecture stores every feature map (BRAM18K), the streaming
    one keeps 2-pixel FIFOs and 3-row line buffers."""
    torch.manual_seed(3)
    net = nn.Sequential(QInput(8), QConv2d(8, 32, 3, padding=1), QReLU(),
                        QConv2d(32, 32, 3, padding=1), QReLU(), QFlatten(),
                        QLinear(32 * 32 * 32, 2))
    g = _freeze(net, torch.randn(4, 8, 32, 32))
    par = estimate_resources(g, reuse=4096)
    st = estimate_resources(g, reuse=4096, io="stream")
    relu = [n.name for n in g.nodes if n.op == "relu"][0]
    assert par.layer(relu).bram18k > 0 and st.layer(relu).bram18k == 0
    assert st.total.bram18k < par.total.bram18k


def test_stream_k_hot_layers_report_zero_dsp():
    g = _cnn(QConfig(weight_khot=2, bn_scale_khot=2))
    for reuse in (1, 8):
        rep = estimate_resources(g, reuse=reuse, board="ultra96", io="stream")
        assert rep.total.dsp == 0
        for name in ("n_1", "n_2", "n_6"):
            assert rep.layer(name).mult_impl == "shift-add"


def test_stream_estimate_refuses_an_unknown_architecture(cnn):
    with pytest.raises(ValueError, match="io must be 'parallel' or 'stream'"):
        estimate_resources(cnn, io="dataflow")
