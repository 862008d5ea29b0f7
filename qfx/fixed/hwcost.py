"""Hardware cost primitives shared by the HLS resource estimate and the training penalty.

One formula serves both: :mod:`qfx.backends.hls.costmodel` calls these on integer widths (the
export estimate) and :mod:`qfx.training.resources` calls them on learned widths held in torch
tensors (the differentiable cost). On tensors ``ceil`` is straight-through (the rounded value
forward, the identity backward) and a choice between two implementations (LUT or DSP
multiplier) takes the branch the integer formula takes, with that branch's gradient.

Example:
    >>> multiplier_cost(8, 8, 8, 8)
    (1, 0)
    >>> multiplier_cost(4, 3, 4, 3)
    (0, 12)
    >>> d, l = multiplier_cost(torch.tensor(4.0), torch.tensor(3.0), torch.tensor(4.0),
    ...                        torch.tensor(3.0))
    >>> float(d), float(l)
    (0.0, 12.0)
"""

from __future__ import annotations

from typing import TypeVar

import torch

__all__ = ["LUT_MULT_MAX_BITS", "DSP48E2_PORTS", "ceil_div", "multiplier_cost", "adder_luts",
           "ebops"]

#: Both operands at most this wide (or one of them 1 bit): the multiply maps to LUTs.
LUT_MULT_MAX_BITS = 4
#: (A, B) operand widths of a DSP48E2 multiplier (UltraScale+).
DSP48E2_PORTS = (27, 18)

Num = TypeVar("Num", int, torch.Tensor)


def ceil_div(a: Num, b: int) -> Num:
    """ceil(a / b): exact on integers, straight-through on tensors.

    Example:
        >>> ceil_div(19, 18), float(ceil_div(torch.tensor(19.0), 18))
        (2, 2.0)
    """
    if isinstance(a, torch.Tensor):
        v = a / b
        return v + (torch.ceil(v) - v).detach()
    return -(-int(a) // int(b))


def _dsp(sa: Num, sb: Num, ports: tuple[int, int]) -> Num:
    pa, pb = ports
    if isinstance(sa, torch.Tensor) or isinstance(sb, torch.Tensor):
        sa, sb = torch.as_tensor(sa), torch.as_tensor(sb)
        hi, lo = torch.maximum(sa, sb), torch.minimum(sa, sb)
        return torch.minimum(ceil_div(hi, pa) * ceil_div(lo, pb),
                             ceil_div(lo, pa) * ceil_div(hi, pb))
    hi, lo = max(sa, sb), min(sa, sb)
    return min(ceil_div(hi, pa) * ceil_div(lo, pb), ceil_div(lo, pa) * ceil_div(hi, pb))


def multiplier_cost(wa: Num, wb: Num, sa: Num, sb: Num,
                    ports: tuple[int, int] = DSP48E2_PORTS) -> tuple[Num, Num]:
    """(DSP slices, LUTs) of one multiplier of operand widths ``wa`` x ``wb`` (``sa``, ``sb``:
    the widths as signed operands, one more bit for an unsigned one: the DSP ports are signed).

    Both operands at most :data:`LUT_MULT_MAX_BITS` bits, or one of them 1 bit: LUTs, one per
    partial-product bit (``wa * wb``), no DSP. Otherwise ``ceil(A/27) * ceil(B/18)`` DSP48E2
    (the cheaper of the two port assignments), no LUT. A 0-bit operand (a pruned weight or
    channel) costs nothing.
    """
    if isinstance(wa, torch.Tensor) or isinstance(wb, torch.Tensor):
        wa, wb = torch.as_tensor(wa), torch.as_tensor(wb)
        wa, wb = torch.broadcast_tensors(wa, wb)
        sa, sb = torch.broadcast_tensors(torch.as_tensor(sa), torch.as_tensor(sb))
        rw_a, rw_b = torch.round(wa.detach()), torch.round(wb.detach())
        live = (rw_a > 0) & (rw_b > 0)
        lut_path = (torch.maximum(rw_a, rw_b) <= LUT_MULT_MAX_BITS) | \
            (torch.minimum(rw_a, rw_b) == 1)
        zero = torch.zeros_like(wa)
        dsp = _dsp(sa, sb, ports)
        # The DSP is saved entirely once both operands reach the LUT path: a gradient along
        # the bits still to remove (``excess``), so that a penalty on DSPs pulls the widths
        # toward that step, which the ports' ceil alone (1/18 per bit) barely sees.
        excess = (wa - LUT_MULT_MAX_BITS).clamp_min(0) + (wb - LUT_MULT_MAX_BITS).clamp_min(0)
        held = excess.detach().clamp_min(1.0)
        dsp = dsp + dsp.detach() * (excess - excess.detach()) / held
        dsp = torch.where(live & ~lut_path, dsp, zero)
        lut = torch.where(live & lut_path, wa * wb, zero)
        return dsp, lut
    if wa <= 0 or wb <= 0:
        return 0, 0
    if max(wa, wb) <= LUT_MULT_MAX_BITS or min(wa, wb) == 1:
        return 0, int(wa) * int(wb)
    return _dsp(sa, sb, ports), 0


def adder_luts(width: Num) -> Num:
    """LUTs of one adder of ``width`` bits (one per bit on the carry chain)."""
    return width


def ebops(bits_a: torch.Tensor, bits_b: torch.Tensor) -> torch.Tensor:
    """Effective bit operations of the products ``a * b`` as HGQ defines them: the sum over the
    multiplications of the product of the operands' widths (broadcast ``bits_a * bits_b``).

    Example:
        >>> float(ebops(torch.tensor([4.0, 2.0]), torch.tensor([3.0, 0.0])))
        12.0
    """
    return (bits_a * bits_b).sum()
