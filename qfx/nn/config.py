"""Model-wide quantisation defaults (`QConfig`) and the `qfx.config(...)` context manager."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from qfx.fixed.fixed_type import OVERFLOW_MODES, ROUNDING_MODES
from qfx.fixed.khot import KHotQuantizer
from qfx.fixed.learned_width import GRANULARITIES, WidthQuantizer
from qfx.fixed.quantizer import FixedQuantizer

__all__ = ["QConfig", "config", "current_config"]


@dataclass(frozen=True)
class QConfig:
    """Widths and modes every qfx layer takes unless given its own.

    ``weight_khot=K`` makes every conv/linear weight K-hot (at most K non-zero signed
    power-of-two digits, :class:`qfx.fixed.khot.KHotQuantizer`: multiplier-free) and
    ``bn_scale_khot=K`` does the same for BatchNorm scales and binary-layer scales; ``None``
    (the default) keeps plain fixed-point constants.

    Example:
        >>> QConfig.uniform(4).weight_width
        4
        >>> with config(act_width=6):
        ...     current_config().act_width
        6
    """

    input_width: int = 8
    weight_width: int = 8
    bias_width: int = 16
    act_width: int = 8
    bn_scale_width: int = 8
    bn_shift_width: int = 12
    add_width: int = 8
    pool_recip_width: int = 16
    weight_rounding: str = "RND"
    act_rounding: str = "RND"
    weight_overflow: str = "SAT"
    act_overflow: str = "SAT"
    per_channel_weights: bool = False
    learn_binary_point: bool = True
    weight_khot: int | None = None
    bn_scale_khot: int | None = None
    # quantize_model: a Conv2d/Linear followed by a BatchNorm hands it its exact accumulator
    # (False) or casts to an activation format first (True)
    quantize_before_batchnorm: bool = False
    # table activations (QSigmoid, QTanh, QExp, QSoftmax): the widest input qfx.freeze
    # tabulates (a table has 2**width entries)
    table_max_bits: int = 14
    # Learned word lengths (qfx.fixed.learned_width.WidthQuantizer): every format's width is
    # learned, the widths above are the initial ones; constants (weights, biases, BatchNorm
    # scale/shift) get one format per ``width_granularity`` (tensor, channel or element).
    # Per element pays off in the export only through zeros: the multipliers read a
    # channel's mantissas on its finest step, so a channel is as wide as its widest span.
    # Under a budget measured by the export estimate, prefer "channel" (breast cancer MLP,
    # LUT + 55 DSP <= 2000, seeds 0-3: element 73-90% test accuracy, channel 94-96%).
    learn_widths: bool = False
    width_granularity: str = "channel"
    # quantize_model: the model's outputs (logits) hold every value seen in training
    # (FixedQuantizer.cover): clipped logits tie the argmax at no cost to the cross-entropy
    cover_outputs: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_width") and not (isinstance(value, int) and 1 <= value <= 62):
                raise ValueError(f"QConfig.{f.name} must be an integer width 1..62, got {value!r}")
        for name in ("weight_khot", "bn_scale_khot"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"QConfig.{name} must be None or an integer K >= 1 (digits "
                                 f"per value), got {value!r}")
        if self.width_granularity not in GRANULARITIES:
            raise ValueError(f"QConfig.width_granularity={self.width_granularity!r}; allowed: "
                             f"{', '.join(GRANULARITIES)}")
        if self.learn_widths and (self.weight_khot or self.bn_scale_khot):
            raise ValueError("QConfig.learn_widths cannot be combined with K-hot constants "
                             "(weight_khot / bn_scale_khot)")
        for name in ("weight_rounding", "act_rounding"):
            if getattr(self, name).upper().removeprefix("AP_") not in ROUNDING_MODES:
                raise ValueError(f"QConfig.{name}={getattr(self, name)!r}; allowed: "
                                 f"{', '.join(ROUNDING_MODES)}")
        for name in ("weight_overflow", "act_overflow"):
            mode = getattr(self, name).upper().removeprefix("AP_")
            if mode not in OVERFLOW_MODES:
                raise ValueError(f"QConfig.{name}={getattr(self, name)!r}; allowed: "
                                 f"{', '.join(OVERFLOW_MODES)}")
            if self.learn_widths and mode != "SAT":  # it was silently replaced by SAT
                raise ValueError(f"QConfig.learn_widths saturates (a learned width that wraps "
                                 f"has no useful gradient): {name}={getattr(self, name)!r} "
                                 f"cannot be honoured; use 'SAT'")

    @classmethod
    def uniform(cls, bits: int, **overrides: object) -> QConfig:
        """Every weight, activation, BN parameter and shortcut at ``bits``; biases at 2x."""
        values = dict(input_width=bits, weight_width=bits, bias_width=2 * bits, act_width=bits,
                      bn_scale_width=bits, bn_shift_width=bits, add_width=bits)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> QConfig:
        """Build from a mapping (e.g. a flow's ``quantization:`` section); unknown keys fail."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"bits"})
        if unknown:
            raise ValueError(f"unknown quantization option(s) {', '.join(unknown)}; "
                             f"allowed: bits, {', '.join(sorted(known))}")
        data = dict(data)
        bits = data.pop("bits", None)
        return cls.uniform(int(bits), **data) if bits is not None else cls(**data)

    def replace(self, **changes: object) -> QConfig:
        return dataclasses.replace(self, **changes)

    # factories used by the layers -------------------------------------------------------
    def weight_quantizer(self, num_channels: int | None = None, width: int | None = None,
                         channel_dim: int = 0, shape: tuple[int, ...] | None = None
                         ) -> FixedQuantizer:
        if self.learn_widths:
            return self.constant_quantizer(width or self.weight_width, shape or (num_channels,),
                                           channel_dim, self.weight_rounding)
        per_channel = self.per_channel_weights and num_channels is not None
        if self.weight_khot is not None:
            return KHotQuantizer(self.weight_khot, width or self.weight_width, True,
                                 learn_binary_point=self.learn_binary_point,
                                 per_channel=per_channel,
                                 num_channels=num_channels if per_channel else None,
                                 channel_dim=channel_dim)
        return FixedQuantizer(width or self.weight_width, True, self.weight_rounding,
                              self.weight_overflow, learn_binary_point=self.learn_binary_point,
                              per_channel=per_channel,
                              num_channels=num_channels if per_channel else None,
                              channel_dim=channel_dim)

    def scale_quantizer(self, width: int | None = None, signed: bool = True) -> FixedQuantizer:
        """Quantizer of a per-channel multiplier (BatchNorm scale, binary-layer scale):
        K-hot when ``bn_scale_khot`` is set, else like an activation constant."""
        if self.learn_widths:
            return self.constant_quantizer(width or self.bn_scale_width)
        if self.bn_scale_khot is not None:
            return KHotQuantizer(self.bn_scale_khot, width or self.bn_scale_width, signed,
                                 learn_binary_point=self.learn_binary_point)
        return self.act_quantizer(width or self.bn_scale_width, signed)

    def act_quantizer(self, width: int | None = None, signed: bool = True) -> FixedQuantizer:
        if self.learn_widths:
            return WidthQuantizer(width or self.act_width, signed, self.act_rounding)
        return FixedQuantizer(width or self.act_width, signed, self.act_rounding,
                              self.act_overflow, learn_binary_point=self.learn_binary_point)


    def constant_quantizer(self, width: int, shape: tuple[int | None, ...] = (None,),
                           channel_dim: int = 0, rounding: str | None = None
                           ) -> FixedQuantizer:
        """Quantizer of a constant (bias, BatchNorm shift, and with ``learn_widths`` every
        constant) of ``shape`` (first entry: its channels, ``None`` if unknown): a
        :class:`WidthQuantizer` at ``width_granularity`` when widths are learned, else an
        activation-like quantizer."""
        if not self.learn_widths:
            return self.act_quantizer(width)
        g = self.width_granularity if shape and shape[0] is not None else "tensor"
        if g == "channel":
            shape = (shape[channel_dim],) if len(shape) > 1 else shape
        return WidthQuantizer(width, True, rounding or self.act_rounding, role="constant",
                              granularity=g, shape=None if g == "tensor" else tuple(shape),
                              channel_dim=channel_dim)


_STACK: list[QConfig] = [QConfig()]


def current_config() -> QConfig:
    """The QConfig new qfx layers use (the innermost ``qfx.config`` block)."""
    return _STACK[-1]


@contextlib.contextmanager
def config(base: QConfig | None = None, **changes: object) -> Iterator[QConfig]:
    """Set model-wide defaults for the qfx layers built inside the block.

    Example:
        >>> from qfx.nn import QLinear
        >>> with config(QConfig.uniform(6)):
        ...     layer = QLinear(4, 2)
        >>> layer.weight_quantizer.width
        6
    """
    cfg = (base or current_config()).replace(**changes)
    _STACK.append(cfg)
    try:
        yield cfg
    finally:
        _STACK.pop()
