"""Table ops (sigmoid, tanh, exp, softmax): the executor reads the IR's tables and equals the
qfx.nn layers' eval output on every input code; verify recomputes the tables; freeze refuses an
input too wide to tabulate by node, width and the cast to make; the converter maps nn.Sigmoid,
nn.Tanh and nn.Softmax and training runs the float function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.fixed import FixedQuantizer, FixedType
from qfx.fixed.tables import function_table, table_codes
from qfx.ir import verify
from qfx.nn import QConfig, QExp, QInput, QLinear, QSigmoid, QSoftmax, QTanh


def _all_codes(t: FixedType, features: int) -> torch.Tensor:
    """Every code of ``t`` in every feature: sample k, feature j holds code (k + j) mod 2**W."""
    codes = t.from_int(table_codes(t))
    n = len(codes)
    idx = (np.arange(n)[:, None] + np.arange(features)[None, :]) % n
    return torch.from_numpy(codes[idx])


def _fixed(layer: nn.Module, width: int, int_bits: int, signed: bool) -> nn.Module:
    layer.output_quantizer = FixedQuantizer(width, signed, "RND", "SAT", int_bits=int_bits)
    return layer


@pytest.mark.parametrize("cls,fn,signed", [(QSigmoid, "sigmoid", False), (QTanh, "tanh", True),
                                           (QExp, "exp", False)])
def test_table_op_reads_its_table_and_equals_eval_on_every_code(cls, fn, signed):
    in_t = FixedType(7, 3, rounding="RND", overflow="SAT")
    net = nn.Sequential(_fixed(QInput(7), 7, 3, True),
                        _fixed(cls(), 6, 2 if fn == "exp" else 1, signed))
    x = _all_codes(in_t, 3)
    graph = qfx.freeze(net.eval(), x[:1])
    node = graph.nodes[1]
    out_t = graph.edges[node.output].type
    assert node.op == fn and node.params["table"].shape == (128,)
    raw = qfx.run_graph(graph, x).raw[0]
    # an integer reference: index the table by the input's raw bits
    assert np.array_equal(raw, node.params["table"][in_t.to_int(x.numpy()) & 127])
    with torch.no_grad():
        assert np.array_equal(raw, out_t.to_int(net(x)).numpy())
    if fn == "exp":  # large inputs saturate
        assert raw.max() == out_t.raw_max


def _softmax_net(channels: int) -> nn.Sequential:
    torch.manual_seed(1)
    cfg = QConfig(act_width=6)
    net = nn.Sequential(_fixed(QInput(6, config=cfg), 6, 3, True),
                        QLinear(4, channels, config=cfg),
                        QSoftmax(config=cfg))
    with qfx.calibration(net):
        net(torch.randn(64, 4))
    return net.eval()


def test_softmax_executor_equals_eval_and_an_exact_reference():
    net = _softmax_net(5)
    x = torch.cat([torch.randn(40, 4), torch.randn(40, 4) * 20])  # saturating logits
    graph = qfx.freeze(net, x[:1])
    node = graph.nodes[-1]
    a = node.attrs
    assert a["exp_type"].cpp() == "ap_ufixed<6,1,AP_RND,AP_SAT>"
    assert a["sum_type"].cpp() == "ap_ufixed<9,4>" and node.params["recip_table"].size == 512
    res = qfx.run_graph(graph, x, trace=True)
    out_t = graph.edges[node.output].type
    with torch.no_grad():
        assert np.array_equal(res.raw[0], out_t.to_int(net(x)).numpy())
    # exact reference from the logits' raw values, with Fractions
    from fractions import Fraction

    logits_t = graph.edges[node.inputs[0]].type
    logits = res.trace[graph.nodes[-2].name]
    e_t, r_t = a["exp_type"], a["recip_type"]
    exp_tab = function_table("exp_neg", a["diff_type"], e_t)
    for row, got in zip(logits[:10], res.raw[0][:10], strict=True):
        d = row.max() - row  # raw on the logits' grid = diff_type's raw
        e = exp_tab[d]
        s = Fraction(int(e.sum()), 2**e_t.frac_bits)
        r = int(function_table("recip", a["sum_type"], r_t)[int(e.sum())])
        assert r == int(r_t.to_int(np.array([float(1 / s)]))[0]) or s.denominator == 1
        prod = e.astype(object) * r
        expect = out_t.cast_int(np.array(prod, dtype=np.int64),
                                FixedType(40, 40 - e_t.frac_bits - r_t.frac_bits, False))
        assert got.tolist() == expect.tolist()
    assert logits_t.width == a["diff_type"].width


def test_verify_recomputes_the_tables():
    net = _softmax_net(3)
    graph = qfx.freeze(net, torch.randn(1, 4))
    node = graph.nodes[-1]
    node.params["recip_table"] = node.params["recip_table"].copy()
    node.params["recip_table"][7] += 1
    with pytest.raises(ValueError, match=r"node 'n_2' \(softmax\): recip_table\[7\] = .* is not "
                       r"recip of that code"):
        verify(graph)


def test_freeze_refuses_an_input_too_wide_to_tabulate():
    net = nn.Sequential(_fixed(QInput(16), 16, 4, True), _fixed(QSigmoid(), 8, 1, False))
    with pytest.raises(ValueError, match=r"layer '1' \(sigmoid\) input ap_fixed<16,4.*: 16 bits "
                       r"would need a table of 65536 entries.*cast the input to a narrower "
                       r"format"):
        qfx.freeze(net.eval(), torch.zeros(1, 3))
    with qfx.config(table_max_bits=16):
        wide = nn.Sequential(_fixed(QInput(12), 12, 4, True), _fixed(QSigmoid(), 8, 1, False))
    assert wide[1].table_max_bits == 16
    assert qfx.freeze(wide.eval(), torch.zeros(1, 3)).nodes[1].params["table"].size == 4096


def test_converter_maps_plain_activations_and_training_uses_the_float_function():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(4, 6), nn.Sigmoid(), nn.Linear(6, 6), nn.Tanh(),
                          nn.Linear(6, 3), nn.Softmax(dim=1))
    x = torch.randn(32, 4)
    q = qfx.quantize_model(plain, {"bits": 8}, x)
    kinds = [type(m).__name__ for m in q.modules()]
    assert {"QSigmoid", "QTanh", "QSoftmax"} <= set(kinds)
    q.train()
    q(x).sum().backward()  # the float function's gradient reaches the first layer
    first = next(m for m in q.modules() if isinstance(m, QLinear))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"nn.Softmax over dim=0"):
        qfx.quantize_model(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=0)), {"bits": 8}, x)
