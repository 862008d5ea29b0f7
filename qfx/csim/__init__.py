"""C-simulation support: compile and run HLS C++ (with the ``ap_types`` headers) on the host.

:func:`csim` proves that an exported HLS project computes exactly the software model's bits;
``qfx csim PROJECT_DIR`` is its command line (:mod:`qfx.cli.csim`).

The package itself is callable, so ``qfx.csim(project, inputs)`` is :func:`csim`.

Example:
    >>> import qfx
    >>> from qfx.csim import csim, CSimReport, Divergence, CompileError
    >>> callable(csim) and callable(qfx.csim) and issubclass(CompileError, RuntimeError)
    True
"""

import sys
import types

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


class _CallableModule(types.ModuleType):
    """``qfx.csim`` is both this package and the function :func:`csim`."""

    def __call__(self, *args, **kwargs):  # noqa: D102
        return csim(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
