"""The IR op registry: one module per op family, each op declared once (see :mod:`.base`).

Adding an op: subclass :class:`OpSpec` in the family's module (schema, traits,
``infer_shape``, ``check_types`` with the exactness proof, ``execute``, ``cost``), decorate it
with :func:`register`, and give each backend one rule for it (see ARCHITECTURE.md).

Example:
    >>> sorted(OPS)[:3]
    ['add', 'avgpool2d', 'batchnorm']
"""

from qfx.ir.ops import (  # noqa: F401
    activation,
    binary,
    io,
    linear,
    merge,
    multithreshold,
    norm,
    pooling,
    spatial,
    table,
)
from qfx.ir.ops.base import BINARY_TYPE, OPS, NodeCost, OpSpec, pair, register, spec

__all__ = ["BINARY_TYPE", "OPS", "NodeCost", "OpSpec", "pair", "register", "spec"]
