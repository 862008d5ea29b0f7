"""Hardware cost primitives shared by the HLS resource estimate and the training penalty.

One formula serves both: :mod:`qfx.backends.hls.costmodel` calls these on integer widths (the
export estimate) and :mod:`qfx.training.resources` calls them on learned widths held in torch
tensors (the differentiable cost). On tensors ``ceil`` is straight-through (the rounded value
forward, the identity backward) and a choice between two implementations (LUT or DSP
multiplier) takes the branch the integer formula takes, with that branch's gradient.

The LUT-or-DSP choice is continuous in the logic it costs: a multiply of ``wa x wb`` bits
takes ``wa * wb`` LUTs (one per partial-product bit) up to :data:`FABRIC_MULT_MAX_PRODUCT` = 55,
the LUTs a DSP48 counts for (HGQ's LUT + 55 x DSP), and a DSP above it, so one more bit never
makes a multiply dearer by more than it adds. The exported C++ pins every multiply to the side
chosen here (``qfx::mul`` in ``qfx_layers.h``: ``BIND_OP impl=fabric`` or ``impl=dsp``), so
synthesis builds what the estimate counts.

Example:
    >>> multiplier_cost(8, 8, 8, 8)
    (1, 0)
    >>> multiplier_cost(6, 6, 6, 6)
    (0, 36)
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

__all__ = ["DSP_LUT_EQUIV", "FABRIC_MULT_MAX_PRODUCT", "DSP48E2_PORTS", "ceil_div",
           "multiplier_cost", "multiply_on_fabric", "adder_luts", "ebops"]

#: LUTs a DSP48 counts for in one figure of the logic (HGQ's LUT + 55 x DSP).
DSP_LUT_EQUIV = 55
#: A multiply whose operand widths' product is at most this maps to LUTs (that many), else to
#: DSPs: the cheaper side of one DSP counted as :data:`DSP_LUT_EQUIV` LUTs. ``qfx_layers.h``
#: pins the same rule (``QFX_FABRIC_MULT_MAX_PRODUCT``; a test keeps the two equal).
FABRIC_MULT_MAX_PRODUCT = DSP_LUT_EQUIV
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


def multiply_on_fabric(wa: int, wb: int) -> bool:
    """True when a ``wa x wb``-bit multiply maps to LUTs (``wa * wb`` <=
    :data:`FABRIC_MULT_MAX_PRODUCT`), False when it maps to DSPs.

    Example:
        >>> multiply_on_fabric(7, 7), multiply_on_fabric(8, 7)
        (True, False)
    """
    return int(wa) * int(wb) <= FABRIC_MULT_MAX_PRODUCT


def multiplier_cost(wa: Num, wb: Num, sa: Num, sb: Num,
                    ports: tuple[int, int] = DSP48E2_PORTS) -> tuple[Num, Num]:
    """(DSP slices, LUTs) of one multiplier of operand widths ``wa`` x ``wb`` (``sa``, ``sb``:
    the widths as signed operands, one more bit for an unsigned one: the DSP ports are signed).

    At most :data:`FABRIC_MULT_MAX_PRODUCT` partial-product bits (``wa * wb``): that many LUTs,
    no DSP (:func:`multiply_on_fabric`). Otherwise ``ceil(A/27) * ceil(B/18)`` DSP48E2
    (the cheaper of the two port assignments), no LUT. A 0-bit operand (a pruned weight or
    channel) costs nothing.
    """
    if isinstance(wa, torch.Tensor) or isinstance(wb, torch.Tensor):
        wa, wb = torch.as_tensor(wa), torch.as_tensor(wb)
        wa, wb = torch.broadcast_tensors(wa, wb)
        sa, sb = torch.broadcast_tensors(torch.as_tensor(sa), torch.as_tensor(sb))
        rw_a, rw_b = torch.round(wa.detach()), torch.round(wb.detach())
        live = (rw_a > 0) & (rw_b > 0)
        prod = wa * wb
        lut_path = rw_a * rw_b <= FABRIC_MULT_MAX_PRODUCT
        zero = torch.zeros_like(wa)
        dsp = _dsp(sa, sb, ports)
        # A DSP gives way to LUTs as the partial-product bits fall to the threshold: the DSP
        # count's gradient follows the product (a DSP per its ``wa * wb`` bits, the LUT side's
        # slope in DSP units), so that a penalty on DSPs pulls the widths toward that step,
        # which the ports' ceil alone (1/18 per bit) barely sees.
        dsp = dsp + dsp.detach() * (prod - prod.detach()) / prod.detach().clamp_min(1.0)
        dsp = torch.where(live & ~lut_path, dsp, zero)
        lut = torch.where(live & lut_path, prod, zero)
        return dsp, lut
    if wa <= 0 or wb <= 0:
        return 0, 0
    if multiply_on_fabric(wa, wb):
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
