"""Fixed-point numerics: the exact ap_fixed twin and the trainable quantizer."""

from qfx.fixed.fixed_type import MAX_WIDTH, OVERFLOW_MODES, ROUNDING_MODES, FixedType
from qfx.fixed.quantizer import FixedQuantizer, calibration

__all__ = [
    "FixedType", "FixedQuantizer", "calibration", "ROUNDING_MODES", "OVERFLOW_MODES", "MAX_WIDTH",
]
