"""qfx: fixed-point PyTorch training with learned binary points, exported bit-exactly to HLS."""

from qfx.fixed import (
    MAX_WIDTH,
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedQuantizer,
    FixedType,
    calibration,
)
from qfx.fixed.khot import KHotQuantizer
from qfx.ir import Graph, cost_report, load_graph, run_graph, save_graph
from qfx.nn import QConfig, config, freeze, quantize_model

__version__ = "0.1.0"

__all__ = [
    "FixedType", "FixedQuantizer", "calibration", "ROUNDING_MODES", "OVERFLOW_MODES", "MAX_WIDTH",
    "Graph", "load_graph", "run_graph", "save_graph", "QConfig", "config", "freeze",
    "quantize_model", "__version__", "KHotQuantizer", "cost_report",
]
