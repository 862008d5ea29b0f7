"""Learned word lengths (WidthQuantizer): the width gradient moves widths the right way, the
exact path equals FixedType per granule, pruned granules are zero (C-sim: tests/csim/
test_learned_width_csim.py)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import qfx
from qfx.fixed.learned_width import WidthQuantizer
from qfx.nn import QConfig, QInput, QLinear


def _steps(q: WidthQuantizer, loss_fn, n: int = 40, lr: float = 0.1) -> None:
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    for _ in range(n):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()


def test_too_narrow_range_grows_when_the_loss_wants_it():
    torch.manual_seed(0)
    x = torch.randn(4096) * 4
    q = WidthQuantizer(6, int_bits=1).train()  # range 1: most values clip
    w0 = float(q.bit_widths().detach())
    _steps(q, lambda: (q(x) - x).square().mean())
    assert float(q.log2_range.detach()) > 1.5 and float(q.bit_widths().detach()) > w0


def test_too_coarse_step_refines_when_the_loss_wants_it():
    torch.manual_seed(0)
    x = torch.rand(4096) * 0.9
    q = WidthQuantizer(3, signed=False, int_bits=0).train()  # step 1/8 on [0, 1)
    _steps(q, lambda: (q(x) - x).square().mean())
    assert float(torch.round(q.log2_lsb)) < -3 and float(q.bit_widths()) > 3


@pytest.mark.parametrize("role", ["activation", "constant"])
def test_too_wide_shrinks_under_the_penalty(role):
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    q = WidthQuantizer(12, role=role, granularity="tensor" if role == "activation" else
                       "channel", shape=None if role == "activation" else (64,)).train()
    q.calibrate(x)
    w0 = float(q.bit_widths(None if role == "activation" else x).mean())
    _steps(q, lambda: q.bit_widths(None if role == "activation" else x).sum())
    assert float(q.bit_widths(None if role == "activation" else x).mean()) < w0 - 3


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["tensor", "channel", "element"]),
       st.sampled_from(["RND", "TRN", "RND_CONV", "RND_ZERO"]))
def test_constant_formats_are_the_granules_fixed_types(seed, granularity, rounding):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64) * 3
    x[1] = x[1].abs()  # an unsigned channel
    q = WidthQuantizer(5, rounding=rounding, role="constant", granularity=granularity,
                       shape=None if granularity == "tensor" else
                       ((5,) if granularity == "channel" else (5, 3)))
    q.calibrate(x)
    with torch.no_grad():
        q.log2_lsb.add_(torch.randint(-3, 4, q.log2_lsb.shape, generator=gen).double())
    types = q.granule_types(x)
    got = q.quantize_exact(x)
    if granularity == "tensor":
        groups = [(x, got, types[0])]
    elif granularity == "channel":
        groups = list(zip(x, got, types, strict=True))
    else:
        groups = list(zip(x.reshape(-1), got.reshape(-1), types, strict=True))
    for xs, gs, t in groups:
        if t is None:  # pruned: everything rounds to zero
            assert torch.equal(gs, torch.zeros_like(gs))
        else:  # the least type holding the rounded values: no constant is clipped
            assert torch.equal(gs, t.quantize(xs))
            assert torch.equal(t.replace(overflow="WRAP", rounding="TRN").quantize(gs), gs)
    raw, t = q.raw_and_type(x)
    assert torch.equal(torch.ldexp(raw.double(), torch.tensor(-t.frac_bits).double()), got)


def test_pruned_weights_are_zero_and_cost_nothing():
    from qfx.fixed.hwcost import multiplier_cost

    torch.manual_seed(0)
    with qfx.config(QConfig(learn_widths=True, width_granularity="channel")):
        net = nn.Sequential(QInput(8), QLinear(6, 4))
    x = torch.randn(32, 6)
    with qfx.calibration(net):
        net(x)
    q = net[1].weight_quantizer
    with torch.no_grad():
        q.log2_lsb[2] = 20.0  # channel 2: a step far above every weight: width 0
    widths = q.bit_widths(net[1].weight)
    assert float(widths[2]) == 0 and bool((widths[[0, 1, 3]] > 0).all())
    assert q.granule_types(net[1].weight)[2] is None
    dsp, lut = multiplier_cost(torch.tensor(8.0), widths, torch.tensor(8.0), widths)
    assert float(dsp[2]) == 0 and float(lut[2]) == 0
    g = qfx.freeze(net.eval(), x[:1])
    w = g.nodes[1].params["weight"]
    assert not w[2].any() and w[[0, 1, 3]].any(axis=1).all()


def test_an_activation_pushed_to_one_bit_keeps_its_top_bit():
    # The penalty alone drives the width to its floor; the step must stop at half the range
    # (the range's top bit) rather than pass it and leave every value at zero.
    torch.manual_seed(0)
    q = WidthQuantizer(6, signed=False)
    x = torch.rand(4096) * 4
    q.calibrate(x)
    _penalty_only(q, x)
    q.train()(x)
    assert q.fixed_type.width == 1
    assert float(q.log2_lsb) <= float(q.log2_range) - 1.0
    assert (q.eval()(x) > 0).any()  # not dead


def test_a_per_tensor_constant_under_the_penalty_keeps_one_bit():
    # per channel or per weight a width may reach 0 (pruned); a whole tensor may not
    torch.manual_seed(0)
    w = torch.randn(16, 8)
    q = WidthQuantizer(8, role="constant")
    q.calibrate(w)
    _penalty_only(q, w)
    assert float(q.bit_widths(w)) == 2.0  # sign + one magnitude bit
    assert (q.eval()(w) != 0).any()


def test_a_per_channel_constant_under_the_penalty_keeps_a_live_channel():
    torch.manual_seed(0)
    w = torch.randn(16, 8)
    q = WidthQuantizer(8, role="constant", granularity="channel", shape=(16,))
    q.calibrate(w)
    _penalty_only(q, w)
    widths = q.bit_widths(w)
    assert (widths == 0).sum() >= 8  # channels are pruned ...
    assert (widths > 0).any() and (q.eval()(w) != 0).any()  # ... but not all of them


def _penalty_only(q: WidthQuantizer, x: torch.Tensor, steps: int = 400) -> None:
    """Train ``q``'s formats on its width alone (no loss): the penalty's pull, unopposed."""
    opt = torch.optim.Adam(q.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        q.train()(x)
        q.bit_widths(x if q.role == "constant" else None).sum().backward()
        opt.step()


def test_an_activation_whose_range_is_held_far_above_the_data_stays_alive():
    # The range only moves when values clip; held high, the penalty alone would take the step
    # past every value (all zeros, and a ReLU after it passes no gradient back).
    torch.manual_seed(0)
    x = torch.rand(4096) * 0.5
    q = WidthQuantizer(8, signed=False, int_bits=6)  # range 64 for data below 0.5
    q.log2_range.requires_grad_(False)
    _penalty_only(q, x)
    out = q.train()(x)
    assert float((out > 0).double().mean()) >= 0.1
    assert float(torch.round(q.log2_lsb)) <= float(torch.log2(x.quantile(0.9)))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.booleans(), st.integers(-8, 8), st.integers(-8, 8),
       st.sampled_from(["RND", "TRN", "RND_ZERO"]))
def test_a_training_forward_leaves_a_tenth_of_the_values_nonzero(seed, signed, p, scale,
                                                                 rounding):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1000, generator=gen) * 2.0 ** scale
    q = WidthQuantizer(4, signed=signed, rounding=rounding, int_bits=0)
    with torch.no_grad():
        q.log2_lsb.fill_(p)
        q.log2_range.fill_(p + 3)
    out = q.train()(x)
    held = x.abs() if signed else x.clamp_min(0)
    assert int((out != 0).sum()) >= min(100, int((held > 0).sum()))
    assert torch.equal(q.eval()(x), out)  # eval changes nothing: the formats are the trained


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["tensor", "channel", "element"]),
       st.sampled_from(["RND", "TRN", "RND_ZERO"]), st.floats(0.1, 16.0))
def test_a_held_constant_saturates_at_its_format_and_never_widens(seed, granularity, rounding,
                                                                  grow):
    """hold_format: values that grow (or turn negative) after the hold saturate at the held
    range and sign, values that rounded to 0 stay 0, every granule is at most as wide as it
    was, the exact path (raw integers in the granules' FixedTypes) equals the eval forward,
    and the state dict carries it."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64) * 3
    x[1] = x[1].abs()  # an unsigned channel
    shape = None if granularity == "tensor" else ((5,) if granularity == "channel" else (5, 3))
    q = WidthQuantizer(5, rounding=rounding, role="constant", granularity=granularity,
                       shape=shape)
    q.calibrate(x)
    y = x * grow
    y[1, 0] = -abs(float(y[1, 0])) - 1.0  # the unsigned channel turns negative
    before, free = q.granule_types(x), q.granule_types(y)
    zero = q.to_int(x) == 0
    q.hold_format(x)
    assert q.granule_types(x) == before  # holding changes nothing now
    held = q.granule_types(y)
    for b, h in zip(before, held, strict=True):
        assert h is None or (b is not None  # values that shrink may round to zero
                             and h.width <= b.width and h.int_bits <= b.int_bits
                             and h.signed <= b.signed)
    got = q.quantize_exact(y)
    assert torch.equal(q.eval()(y), got)
    assert not got[zero].any()  # what rounded to 0 stays 0
    per_value = {"tensor": held * 15, "channel": [t for t in held for _ in range(3)],
                 "element": held}[granularity]
    for v, t in zip(got.reshape(-1), per_value, strict=True):
        assert torch.equal(v, torch.zeros_like(v)) if t is None else torch.equal(t.quantize(v), v)
    again = WidthQuantizer(5, rounding=rounding, role="constant", granularity=granularity,
                           shape=shape)
    again.load_state_dict(q.state_dict())
    assert again.granule_types(y) == held
    q.release_format()
    assert q.granule_types(y) == free


def test_a_held_activation_keeps_its_step_in_training():
    """The alive rule refines an activation's step in training; held, the step stays where
    the budget measured it (and refines again once released)."""
    x = torch.rand(4096) * 0.5
    q = WidthQuantizer(4, signed=False, int_bits=0)
    with torch.no_grad():
        q.log2_lsb.fill_(-1.0)  # step 1/2 for data below 0.5: most values round to 0
    q.hold_format()
    q.train()(x)
    assert float(q.log2_lsb) == -1.0
    q.release_format()
    q.train()(x)
    assert float(q.log2_lsb) < -1.0
