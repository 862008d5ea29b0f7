"""Post-training quantisation: hardware-friendly PTQ (HPTQ) and data generation (DGH).

``qfx.ptq(float_model, calib, config)`` -> a frozen qfx Graph; ``qfx.ptq.hptq`` also returns
the calibrated qfx model and a per-layer report; ``qfx.generate_calibration_data`` makes a
calibration set from a float model's BatchNorm statistics when no real data is at hand.
"""

import sys
import types

from qfx.ptq.dgh import generate_calibration_data, load_calibration_data, save_calibration_data
from qfx.ptq.hptq import CALIB_KINDS, LayerFormat, PTQConfig, PTQReport, PTQResult, hptq, ptq
from qfx.ptq.thresholds import CRITERIA, choose_int_bits, no_clip_int_bits

__all__ = ["ptq", "hptq", "PTQConfig", "PTQReport", "PTQResult", "LayerFormat", "CALIB_KINDS",
           "CRITERIA", "choose_int_bits", "no_clip_int_bits", "generate_calibration_data",
           "load_calibration_data", "save_calibration_data"]


class _CallableModule(types.ModuleType):
    """``qfx.ptq`` is both this package and :func:`ptq`: ``qfx.ptq(model, calib, config)``."""

    def __call__(self, *args, **kwargs):  # noqa: D102
        return ptq(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
