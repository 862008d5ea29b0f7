"""Table activations: ``QSigmoid``, ``QTanh``, ``QExp`` and ``QSoftmax``.

Training: the float function, then the output's fake quantisation (learned binary point, as every
qfx layer). Eval: exactly what the frozen table computes -- the exact function at each input
value quantised onto the output format (:func:`qfx.fixed.tables.quantized_function`, the code
that fills the IR's tables), so eval output == executor == C-simulation bit for bit. ``QSoftmax``
(over the channel / feature axis, dim 1) in eval: exp(-(max - x)) onto ``exp_type``, the exact
sum, 1/sum onto ``recip_type``, the exact product cast to the output (see
:mod:`qfx.ir.ops.table`).
"""

from __future__ import annotations

import torch

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.tables import quantized_function
from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QExp", "QSigmoid", "QSoftmax", "QTanh", "TableLayer"]


class TableLayer(QLayer):
    """A lookup-table activation (one function, one output format).

    ``table_max_bits``: the widest input ``qfx.freeze`` tabulates (default
    ``QConfig.table_max_bits``).
    """

    function: str
    signed_output: bool = True

    def __init__(self, *, act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.table_max_bits = cfg.table_max_bits
        self.output_quantizer = cfg.act_quantizer(act_width, signed=self.signed_output)

    def _float(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _exact(self) -> bool:
        """True in eval once the output format is known (not while calibrating)."""
        q = self.output_quantizer
        return (not self.training and q.enabled and q._observed is None  # noqa: SLF001
                and q._is_ready())  # noqa: SLF001

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        if not self._exact():
            return self.output_quantizer(self._float(x))
        t = self.output_type
        return t.from_int(quantized_function(self.function, x, t))


class QSigmoid(TableLayer):
    """Sigmoid; an unsigned output (its values lie in (0, 1)).

    Example:
        >>> from qfx.fixed import FixedQuantizer
        >>> s = QSigmoid().eval()
        >>> s.output_quantizer = FixedQuantizer(8, signed=False, int_bits=1)
        >>> s(torch.tensor([0.0, 100.0])).tolist()
        [0.5, 1.0]
    """

    function = "sigmoid"
    signed_output = False

    def _float(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


class QTanh(TableLayer):
    """Tanh (signed output).

    Example:
        >>> QTanh().output_quantizer.signed
        True
    """

    function = "tanh"

    def _float(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class QExp(TableLayer):
    """exp (unsigned output; its format's overflow mode decides what large inputs give).

    Example:
        >>> QExp().output_quantizer.signed
        False
    """

    function = "exp"
    signed_output = False

    def _float(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class QSoftmax(QLayer):
    """Softmax over dim 1 (channels / features) with declared intermediate formats:
    ``exp_type`` = ap_ufixed<exp_width, 1, RND, SAT> (exp(x - max) in (0, 1]) and
    ``recip_type`` = ap_ufixed<recip_width, 1, RND, SAT> (1 / sum); the output is unsigned
    with a learned binary point. Defaults: ``exp_width`` = act_width, ``recip_width`` =
    2 * act_width.

    Example:
        >>> from qfx.fixed import FixedQuantizer
        >>> sm = QSoftmax().eval()
        >>> sm.output_quantizer = FixedQuantizer(8, signed=False, int_bits=1)
        >>> sm(torch.tensor([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
    """

    def __init__(self, dim: int = 1, *, exp_width: int | None = None,
                 recip_width: int | None = None, act_width: int | None = None,
                 config: QConfig | None = None) -> None:
        super().__init__()
        if dim != 1:
            raise ValueError(f"QSoftmax works over dim 1 (channels / features), got dim={dim}")
        cfg = config or current_config()
        self.dim = 1
        self.table_max_bits = cfg.table_max_bits
        self.exp_type = FixedType(exp_width or cfg.act_width, 1, False, "RND", "SAT")
        self.recip_type = FixedType(recip_width or 2 * cfg.act_width, 1, False, "RND", "SAT")
        self.output_quantizer = cfg.act_quantizer(act_width, signed=False)

    _exact = TableLayer._exact

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        if not self._exact():
            return self.output_quantizer(torch.softmax(x, dim=1))
        e_t, r_t = self.exp_type, self.recip_type
        e = quantized_function("exp_neg", x.amax(dim=1, keepdim=True) - x, e_t)
        s = e_t.from_int(e.sum(dim=1, keepdim=True))  # the exact sum
        r = quantized_function("recip", s, r_t)
        y = torch.ldexp((e * r).double(), torch.tensor(-float(e_t.frac_bits + r_t.frac_bits),
                                                        dtype=torch.float64, device=x.device))
        return self.output_quantizer(y)
