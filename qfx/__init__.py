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
from qfx.frontends.pytorch import freeze
from qfx.ir import Graph, cost_report, load_graph, run_graph, save_graph
from qfx.nn import QConfig, config, quantize_model

__version__ = "0.1.0"

__all__ = [
    "FixedType", "FixedQuantizer", "calibration", "ROUNDING_MODES", "OVERFLOW_MODES", "MAX_WIDTH",
    "Graph", "load_graph", "run_graph", "save_graph", "QConfig", "config", "freeze",
    "quantize_model", "__version__", "KHotQuantizer", "cost_report",
]

# Heavier entry points load on first use so that `import qfx` stays quick (onnx, jinja2, ...).
_LAZY = {
    "export_hls": ("qfx.flows.api", "export_hls"),  # a model, a graph or a file
    "csim": ("qfx.csim", None),  # a callable package: qfx.csim(project, inputs)
    "export_onnx": ("qfx.backends.onnx.export", "export_onnx"),
    "export_qonnx": ("qfx.backends.onnx.qonnx_export", "export_qonnx"),
    "import_onnx": ("qfx.frontends.onnx", "import_onnx"),
    "run_flow": ("qfx.flows.flow", "run_flow"),
    "ptq": ("qfx.ptq", None),  # a callable package: qfx.ptq(float_model, calib, config)
    "generate_calibration_data": ("qfx.ptq.dgh", "generate_calibration_data"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'qfx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
