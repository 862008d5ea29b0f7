"""The fused fake quantisation (``_FakeQuant``, the torch path: forced here, the C kernel is
tested in test_fake_quant_kernel.py) against the unfused reference (``_FakeQuantReference``):
same forward values, same input and binary-point gradients, for every rounding x overflow
mode, per tensor and per channel.

Both run exactly the same float operations per element (the fused one only reorders *when*
they run), and the reductions are the same calls, so the comparison is ``==`` throughout.
"""

from __future__ import annotations

import pytest
import torch

from qfx.fixed import fake_quant
from qfx.fixed.fixed_type import OVERFLOW_MODES, ROUNDING_MODES
from qfx.fixed.quantizer import FixedQuantizer

CASES = [(r, o, n) for r in ROUNDING_MODES for o in OVERFLOW_MODES for n in (0,)] + \
    [(r, "WRAP", 2) for r in ("RND", "TRN")]


def _run(q: FixedQuantizer, x: torch.Tensor, reference: bool):
    q.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    if reference:
        from qfx.fixed.fake_quant import fake_quantize

        y = fake_quantize(
            x, q.log2_lsb, width=q.width, signed=q.signed, rounding=q.rounding,
            overflow=q.overflow, channel_dim=q.channel_dim if q.per_channel else None,
            exact_fn=q._exact_from_p if q._needs_exact_forward else None, _reference=True)
    else:
        y = q(x)
    g = torch.linspace(-1.0, 1.5, y.numel()).reshape(y.shape)
    (y * g).sum().backward()
    return y.detach(), x.grad.clone(), q.log2_lsb.grad.clone()


# WRAP_SM (sign-magnitude wrap) exists for signed types only
SIGNED_CASES = [(*c, s) for c in CASES for s in (True, False) if c[1] != "WRAP_SM" or s]


@pytest.mark.parametrize("rounding,overflow,sat_bits,signed", SIGNED_CASES)
@pytest.mark.parametrize("per_channel", [False, True])
def test_fused_equals_reference(monkeypatch, rounding, overflow, sat_bits, signed, per_channel):
    monkeypatch.setattr(fake_quant, "_FORCE_TORCH_FUSED", True)
    torch.manual_seed(0)
    q = FixedQuantizer(6, signed, rounding, overflow, sat_bits, int_bits=2,
                       per_channel=per_channel, num_channels=3 if per_channel else None,
                       channel_dim=1)
    if per_channel:
        q.log2_lsb.data = torch.tensor([-4.0, -3.2, -5.4])
    q.train()
    # Values on the grid, exact ties, out-of-range values and random values.
    x = torch.cat([torch.arange(-48, 48) / 16.0, torch.arange(-48, 48) / 16.0 + 1 / 32,
                   torch.randn(96) * 3]).reshape(-1, 3, 8)
    fused = _run(q, x, reference=False)
    ref = _run(q, x, reference=True)
    for a, b in zip(fused, ref, strict=True):
        assert torch.equal(a, b)


def test_fused_without_binary_point_gradient():
    """A fixed (buffer) binary point: no error tensor is formed, the STE is unchanged."""
    q = FixedQuantizer(8, int_bits=2, learn_binary_point=False).train()
    x = (torch.randn(100) * 5).requires_grad_(True)
    q(x).sum().backward()
    inside = (x.detach() * 64).round().clamp(-128, 127) == (x.detach() * 64).round()
    assert torch.equal(x.grad != 0, inside)


def test_training_forward_does_not_read_initialized_back():
    """After the first calibration, the training forward no longer syncs on ``initialized``."""
    q = FixedQuantizer(8).train()
    q(torch.randn(10))
    assert q._ready
    q.initialized.fill_(False)  # not re-read: the host mirror is authoritative once True
    q(torch.randn(10))
    q.load_state_dict(q.state_dict())  # loading re-reads the buffer
    assert not q._ready
