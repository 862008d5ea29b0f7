"""FixedQuantizer: exact eval path, STE/binary-point gradients, calibration, training."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from qfx import ROUNDING_MODES, FixedQuantizer, FixedType, calibration
from qfx.fixed.fake_quant import fake_quantize


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("overflow", ["SAT", "SAT_SYM", "SAT_ZERO", "WRAP", "WRAP_SM"])
def test_eval_output_is_exactly_fixed_type_quantize(rounding, overflow):
    q = FixedQuantizer(6, True, rounding, overflow, int_bits=2).eval()
    x = torch.randn(2000, dtype=torch.float64) * 4
    x[:8] = torch.tensor([0.03125, -0.03125, 0.09375, -0.09375, 2.0, -2.0, -2.03125, 1.96875],
                         dtype=torch.float64)
    expected = FixedType(6, 2, True, rounding, overflow).quantize(x)
    assert torch.equal(q(x), expected)
    assert torch.equal(q.to_int(x), FixedType(6, 2, True, rounding, overflow).to_int(x))


def test_per_channel_eval_uses_each_channels_type():
    q = FixedQuantizer(5, per_channel=True, num_channels=3, channel_dim=1, int_bits=1)
    with torch.no_grad():
        q.log2_lsb.copy_(torch.tensor([-4.0, -2.0, 0.0]))
    q.eval()
    x = torch.randn(7, 3, 4, 4) * 5
    out = q(x)
    for c, t in enumerate(q.fixed_types):
        assert t == FixedType(5, [1, 3, 5][c], rounding="RND", overflow="SAT")
        assert torch.equal(out[:, c], t.quantize(x[:, c]))
    with pytest.raises(ValueError, match="fixed_types"):
        _ = q.fixed_type


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ROUNDING_MODES), st.integers(2, 12), st.integers(-4, 6),
       st.lists(st.floats(-1e3, 1e3, width=32, allow_subnormal=False), min_size=1,
                max_size=50))
def test_training_forward_matches_exact_values_in_saturating_mode(rounding, width, int_bits,
                                                                   values):
    # float32 fake quantisation rounds like the exact path (normal floats: a subnormal
    # divided by the step can underflow to zero in float32, which training may ignore).
    x = torch.tensor(values, dtype=torch.float32)
    q = FixedQuantizer(width, True, rounding, "SAT", int_bits=int_bits).train()
    exact = q.fixed_type.quantize(x.double())
    assert torch.equal(q(x).double(), exact)


def test_wrap_modes_train_with_exact_values():
    x = torch.linspace(-20, 20, 401)
    for overflow, n in (("WRAP", 0), ("WRAP", 2), ("WRAP_SM", 0), ("WRAP_SM", 1)):
        q = FixedQuantizer(6, True, "TRN", overflow, n, int_bits=3).train()
        assert torch.equal(q(x).double(), q.fixed_type.quantize(x.double())), (overflow, n)


def test_binary_point_gradient_formula():
    p = torch.tensor(-2.0, requires_grad=True)  # lsb 0.25, width 4 signed: range [-2, 1.75]
    x = torch.tensor([0.3, 5.0, -5.0])
    y = fake_quantize(x, p, width=4, signed=True, rounding="RND", overflow="SAT")
    y.backward(torch.ones(3))
    ln2 = float(np.log(2.0))
    # inside: ln2*lsb*(round(x/lsb)-x/lsb) = ln2*0.25*(1-1.2); clamped: ln2*0.25*qmax / qmin
    expected = ln2 * 0.25 * ((1 - 1.2) + 7 + (-8))
    assert abs(p.grad.item() - expected) < 1e-6


def test_value_gradient_is_straight_through_inside_and_zero_outside():
    x = torch.tensor([0.3, 5.0, -5.0, -1.0], requires_grad=True)
    q = FixedQuantizer(4, int_bits=2)
    q(x).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("start, grows", [(0, True), (9, False)])
def test_binary_point_moves_in_the_right_direction(start, grows):
    torch.manual_seed(0)
    x = torch.randn(8192) * 4  # wants about 4 integer bits at width 8
    q = FixedQuantizer(8, int_bits=start)
    opt = torch.optim.Adam(q.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        ((q(x) - x) ** 2).mean().backward()
        opt.step()
    if grows:
        assert 4 <= q.int_bits <= 5  # reaches the MSE optimum
    else:
        assert 4 <= q.int_bits < start  # shrinks towards it, never past it


def test_calibration_picks_the_mse_optimal_int_bits():
    torch.manual_seed(1)
    x = torch.randn(5000) * 2.5
    q = FixedQuantizer(6, rounding="RND", overflow="SAT")
    q.calibrate(x)
    errors = {i: ((FixedType(6, i, rounding="RND", overflow="SAT").quantize(x.double())
                   - x.double()) ** 2).mean().item() for i in range(-4, 10)}
    assert q.int_bits == min(errors, key=errors.get)
    assert bool(q.initialized)


def test_per_channel_calibration_and_context_manager():
    net = nn.Sequential(FixedQuantizer(8, per_channel=True, num_channels=2, channel_dim=1))
    scales = torch.tensor([0.1, 30.0]).reshape(1, 2, 1)
    with calibration(net):
        for _ in range(3):
            out = net(torch.randn(16, 2, 50) * scales)
            assert out.dtype == torch.float32  # observing passes data through
    bits = net[0].int_bits
    assert bits[0] < bits[1]
    assert bits == [FixedQuantizer(8, int_bits=0)._type(b).int_bits for b in bits]


def test_first_training_batch_initialises_the_binary_point():
    q = FixedQuantizer(8).train()
    assert not bool(q.initialized)
    q(torch.randn(1000) * 100)
    assert bool(q.initialized) and q.int_bits >= 7


def test_disabled_quantizer_is_identity():
    q = FixedQuantizer(4, int_bits=1)
    q.enabled = False
    x = torch.randn(10)
    assert q(x) is x


def test_per_channel_needs_num_channels():
    with pytest.raises(ValueError, match="num_channels"):
        FixedQuantizer(8, per_channel=True)
    with pytest.raises(ValueError, match="WRAP_SM"):
        FixedQuantizer(8, signed=False, overflow="WRAP_SM")


def _train_tiny_regressor(learn: bool, int_bits: int | None) -> float:
    torch.manual_seed(0)
    x = torch.rand(512, 4) * 8 - 4
    y = (x @ torch.tensor([[1.5], [-0.7], [0.3], [2.0]]) + 0.5).squeeze(1)
    lin = nn.Linear(4, 1)
    qin = FixedQuantizer(6, int_bits=int_bits, learn_binary_point=learn)
    qw = FixedQuantizer(6, int_bits=int_bits, learn_binary_point=learn)
    qout = FixedQuantizer(8, int_bits=int_bits, learn_binary_point=learn)
    params = list(lin.parameters()) + [p for m in (qin, qw, qout) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        pred = qout(nn.functional.linear(qin(x), qw(lin.weight), lin.bias)).squeeze(1)
        loss = ((pred - y) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for m in (qin, qw, qout):
            m.eval()
        pred = qout(nn.functional.linear(qin(x).float(), qw(lin.weight).float(), lin.bias))
        return ((pred.squeeze(1) - y) ** 2).mean().item()


def test_learned_binary_points_beat_a_badly_chosen_fixed_one():
    learned = _train_tiny_regressor(True, None)
    fixed_bad = _train_tiny_regressor(False, 1)  # range [-1, 1): clips inputs and outputs
    assert learned < fixed_bad / 10


@pytest.mark.parametrize("per_channel", [False, True])
def test_binary_point_gradient_is_accurate_on_large_tensors(per_channel):
    # The gradient sums millions of per-element errors: float32 sums of large terms that
    # cancel would give a wrong (even sign-flipped) result. Compare with float64.
    torch.manual_seed(5)
    x = torch.rand(4, 1 << 20) * 1.98  # inside the range: a small sum of +-lsb/2 terms
    q = FixedQuantizer(8, int_bits=2, per_channel=per_channel, num_channels=4 if per_channel
                       else None, channel_dim=0)
    q(x).backward(torch.ones_like(x))
    lsb = 2.0 ** -6
    xd = x.double()
    qd = torch.floor(xd / lsb + 0.5)
    qc = qd.clamp(-128, 127)
    err = torch.where(qc == qd, qc - xd / lsb, qc) * lsb * np.log(2.0)
    expected = err.sum(1) if per_channel else err.sum()
    assert torch.allclose(q.log2_lsb.grad.double(), expected, rtol=1e-3, atol=1e-3)


def test_quantize_relu_equals_relu_then_cast():
    """``quantize_relu`` is ``q(relu(x))``: in training on the untouched output of a cast whose
    grid it holds (the relu cast is skipped when the C kernel runs) the same values and
    gradients of x, of the upstream binary point and its own (zero); in eval the same exact
    values."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 5) * 3
    g = torch.linspace(-1.0, 1.0, x.numel()).reshape(x.shape)
    runs = []
    for fused in (True, False):
        up = FixedQuantizer(8, int_bits=3).train()
        q = FixedQuantizer(8, signed=False, int_bits=2).train()
        xi = x.clone().requires_grad_(True)
        h = up(xi)
        y = q.quantize_relu(h) if fused else q(torch.relu(h))
        y.backward(g)
        runs.append((y.detach(), xi.grad, up.log2_lsb.grad, q.log2_lsb.grad))
        assert torch.equal(q.eval().quantize_relu(x), q(torch.relu(x)))
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)
