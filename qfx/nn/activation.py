"""Fixed-point activations: the output format is where the non-linearity's range lives."""

from __future__ import annotations

import math

import torch

from qfx.fixed.fixed_type import FixedType
from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QReLU", "QHardTanh", "QLeakyReLU", "QHardSigmoid", "QHardSwish", "pow2_shift"]


class QReLU(QLayer):
    """ReLU with an unsigned fixed-point output; saturation at the format's max gives
    ReLU6-like clipping for free.

    Example:
        >>> QReLU().output_quantizer.signed
        False
    """

    def __init__(self, *, act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.output_quantizer = cfg.act_quantizer(act_width, signed=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_quantizer.quantize_relu(self._prepare(x))


class QHardTanh(QLayer):
    """Clamp to ``[min_val, max_val]`` (exact power-of-two fractions), then cast.

    Example:
        >>> QHardTanh(-1.0, 1.0).min_val
        -1.0
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, *,
                 act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        for v in (min_val, max_val):
            if not torch.isfinite(torch.tensor(v)) or v != float(torch.tensor(v).double()):
                raise ValueError(f"QHardTanh bounds must be finite numbers, got {v!r}")
        if min_val >= max_val:
            raise ValueError(f"QHardTanh needs min_val < max_val, got {min_val}, {max_val}")
        cfg = config or current_config()
        self.min_val, self.max_val = float(min_val), float(max_val)
        self.output_quantizer = cfg.act_quantizer(act_width, signed=min_val < 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_quantizer(torch.clamp(self._prepare(x), self.min_val, self.max_val))


# ---------------------------------------------------------------------- exact piecewise-linear
def pow2_shift(slope: float, what: str) -> int:
    """``k`` with ``slope == 2**-k`` (a positive power of two), else a clear error.

    Example:
        >>> pow2_shift(0.125, "LeakyReLU")
        3
    """
    s = float(slope)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"{what}: negative_slope must be a positive power of two (2**-k), "
                         f"got {slope!r}")
    mant, exp = math.frexp(s)
    if mant != 0.5:
        raise ValueError(f"{what}: negative_slope {slope!r} is not a power of two; qfx computes "
                         "LeakyReLU exactly only with a slope 2**-k (a shift), e.g. 0.125 or "
                         "0.0078125 (= 2**-7, close to PyTorch's default 0.01)")
    return 1 - exp


class QLeakyReLU(QLayer):
    """LeakyReLU with a power-of-two slope ``2**-k``: the negative branch is an exact shift,
    then one cast to the output format. Other slopes are refused (they would need a rounded
    constant multiplier).

    Example:
        >>> QLeakyReLU(0.125).shift
        3
    """

    def __init__(self, negative_slope: float = 2.0 ** -7, *, act_width: int | None = None,
                 config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.negative_slope = float(negative_slope)
        self.shift = pow2_shift(negative_slope, "QLeakyReLU")
        self.output_quantizer = cfg.act_quantizer(act_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        return self.output_quantizer(torch.where(x >= 0, x, x * 2.0 ** -self.shift))


class _QHardGate(QLayer):
    """The gate ``clamp(x * c + 1/2, 0, 1)``: ``c`` is 1/6 rounded (AP_RND) to an unsigned
    ``scale_width``-bit fixed-point constant whose MSB is 1/6's leading one (``scale_type``,
    ``scale_raw``), so the frozen graph states the constant the hardware multiplies by. Eval is
    exact (float64 on fixed-point inputs), as the frozen executor computes."""

    def __init__(self, signed: bool, *, scale_width: int = 16, act_width: int | None = None,
                 config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.scale_type = FixedType(scale_width, -2, False, "RND", "SAT")  # 1/6 in [1/8, 1/4)
        self.scale_raw = int(self.scale_type.to_int(torch.tensor(1.0 / 6.0,
                                                                 dtype=torch.float64)))
        self.scale = math.ldexp(self.scale_raw, -self.scale_type.frac_bits)  # exact double
        self.output_quantizer = cfg.act_quantizer(act_width, signed=signed)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * self.scale + 0.5, 0.0, 1.0)


class QHardSigmoid(_QHardGate):
    """``hardsigmoid(x) = clamp(x * c + 1/2, 0, 1)``, c = 1/6 as a fixed-point constant, then
    one cast to an unsigned output format.

    Example:
        >>> QHardSigmoid().scale_type.cpp(), QHardSigmoid().scale_raw
        ('ap_ufixed<16,-2,AP_RND,AP_SAT>', 43691)
    """

    def __init__(self, *, scale_width: int = 16, act_width: int | None = None,
                 config: QConfig | None = None) -> None:
        super().__init__(False, scale_width=scale_width, act_width=act_width, config=config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_quantizer(self.gate(self._prepare(x)))


class QHardSwish(_QHardGate):
    """``hardswish(x) = x * clamp(x * c + 1/2, 0, 1)``, c = 1/6 as a fixed-point constant,
    computed exactly, then one cast to a signed output format.

    Example:
        >>> QHardSwish()(torch.tensor([[-4.0, 0.0, 4.0]])).shape
        torch.Size([1, 3])
    """

    def __init__(self, *, scale_width: int = 16, act_width: int | None = None,
                 config: QConfig | None = None) -> None:
        super().__init__(True, scale_width=scale_width, act_width=act_width, config=config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        return self.output_quantizer(x * self.gate(x))
