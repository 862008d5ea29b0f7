"""C-simulation support: compile and run HLS C++ (with the ``ap_types`` headers) on the host.

:func:`csim` proves that an exported HLS project computes exactly the software model's bits;
``qfx csim PROJECT_DIR`` is its command line (:mod:`qfx.csim.cli`).

Example:
    >>> from qfx.csim import csim, CSimReport, Divergence, CompileError
    >>> callable(csim) and issubclass(CompileError, RuntimeError)
    True
"""

from qfx.csim.harness import (
    RANDOM_INPUT_SCALES,
    Build,
    CSimError,
    CSimReport,
    CSimTimeout,
    Divergence,
    build_key,
    build_testbench,
    csim,
    random_inputs,
)
from qfx.csim.toolchain import CompileError, CompileTimeout

__all__ = [
    "Build",
    "CSimError",
    "CSimReport",
    "CSimTimeout",
    "CompileError",
    "CompileTimeout",
    "Divergence",
    "RANDOM_INPUT_SCALES",
    "build_key",
    "build_testbench",
    "csim",
    "random_inputs",
]
