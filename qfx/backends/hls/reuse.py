"""The ``reuse`` argument of the HLS backend and the folding it sets.

``reuse`` is the number of multiplications per multiplier: an int for the whole model, or a
mapping ``{node_name: reuse, "*": default}`` (:class:`LayerReuse`). :func:`fold` and
:func:`unroll` turn a layer's factor into its unroll factors (never beyond Vivado's
:data:`MAX_UNROLL`); the firmware writer's config structs and the resource estimate both use
them. Reuse only changes unroll factors (pragmas), never the arithmetic.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from typing import Any

from qfx.ir.graph import Graph, sanitize_identifier

__all__ = ["DEFAULT_REUSE_KEY", "MAX_REUSE", "MAX_UNROLL", "LayerReuse", "ReuseSpec", "fold",
           "normalize_reuse", "resolve_reuse", "unroll"]

#: Vivado/Vitis HLS refuse to unroll a loop further than this.
MAX_UNROLL = 4096
#: The largest reuse factor qfx accepts (the generated C++ holds it in an ``int``); a model's
#: own bound (no layer can use more than its span) is checked at export
#: (:func:`qfx.backends.hls.autofold.check_reuse_bounds`).
MAX_REUSE = 2**31 - 1
#: The key of a per-layer ``reuse`` mapping that sets the factor of every layer not named.
DEFAULT_REUSE_KEY = "*"


class LayerReuse(dict[str, int]):
    """Per-layer reuse factors: ``{node_name: reuse}`` plus the ``"*"`` default that every
    other node gets (always present; :func:`normalize_reuse` builds it). Its ``str`` is the
    one-line description the generated files and reports print.

    Example:
        >>> r = LayerReuse({"fc": 1, "*": 32})
        >>> r.default, r.of("fc"), r.of("conv"), r.overrides, str(r)
        (32, 1, 32, {'fc': 1}, '32 (per layer: fc=1)')
    """

    @property
    def default(self) -> int:
        """The factor of every node the mapping does not name."""
        return int(self.get(DEFAULT_REUSE_KEY, 1))

    @property
    def overrides(self) -> dict[str, int]:
        """The named nodes and their factors (without the default)."""
        return {k: v for k, v in self.items() if k != DEFAULT_REUSE_KEY}

    def of(self, node: str) -> int:
        """The reuse factor of ``node``."""
        return int(self.get(node, self.default))

    def __str__(self) -> str:
        over = ", ".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.default} (per layer: {over})" if over else str(self.default)


#: What ``reuse`` accepts: one factor for every layer, or ``{node_name: factor}`` with an
#: optional ``"*"`` default (1 when absent).
ReuseSpec = int | Mapping[str, int]


def _reuse_value(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    if value > MAX_REUSE:
        raise ValueError(f"{what}={value} is beyond the largest reuse qfx writes ({MAX_REUSE})")
    return int(value)


def normalize_reuse(reuse: Any) -> int | LayerReuse:
    """Check a ``reuse`` argument without a graph: an int >= 1 stays an int; a mapping
    ``{node_name: int >= 1}`` (optional ``"*"`` default, else 1) becomes a :class:`LayerReuse`
    with the default stored under ``"*"``. Node names are checked by :func:`resolve_reuse`.

    Example:
        >>> normalize_reuse(4), normalize_reuse({"fc": 2})
        (4, {'fc': 2, '*': 1})
        >>> normalize_reuse({"fc": 0})
        Traceback (most recent call last):
        ...
        ValueError: reuse['fc'] must be an integer >= 1, got 0
    """
    if isinstance(reuse, Mapping):
        out = LayerReuse()
        for key, value in reuse.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"reuse: keys must be node names (or {DEFAULT_REUSE_KEY!r} for "
                                 f"the default), got {key!r}")
            if key != DEFAULT_REUSE_KEY:
                out[key] = _reuse_value(value, f"reuse[{key!r}]")
        out[DEFAULT_REUSE_KEY] = _reuse_value(reuse.get(DEFAULT_REUSE_KEY, 1),
                                              f"reuse[{DEFAULT_REUSE_KEY!r}]")
        return out
    if isinstance(reuse, bool) or not isinstance(reuse, numbers.Integral):
        raise ValueError(f"reuse must be an integer >= 1 or a mapping {{node_name: integer >= 1}}"
                         f" with an optional {DEFAULT_REUSE_KEY!r} default, got {reuse!r}")
    return _reuse_value(reuse, "reuse")


def resolve_reuse(graph: Graph, reuse: Any) -> dict[str, int]:
    """The reuse factor of every node of ``graph`` (in graph order) from an int or a per-layer
    mapping (see :func:`normalize_reuse`); a mapping that names a node the graph does not have
    is refused with the list of valid node names.

    Example:
        >>> from qfx.fixed.fixed_type import FixedType
        >>> from qfx.ir.graph import Edge, Node
        >>> g = Graph(inputs=["x"], outputs=["y"])
        >>> g.add_edge(Edge("x", (3,), FixedType(8, 3)))
        >>> g.add_edge(Edge("y", (3,), FixedType(8, 3)))
        >>> g.add_node(Node("relu_1", "relu", ["x"], "y"))
        >>> resolve_reuse(g, {"*": 4})
        {'relu_1': 4}
        >>> resolve_reuse(g, {"relu1": 2})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: reuse: ... 'relu1' (did you mean 'relu_1'?); valid node names: relu_1 ...
    """
    spec = normalize_reuse(reuse)
    names = [n.name for n in graph.nodes]
    if isinstance(spec, int):
        return dict.fromkeys(names, spec)
    unknown = [k for k in spec.overrides if k not in set(names)]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(sanitize_identifier(k), names, n=1)
            hints.append(f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k))
        raise ValueError(f"reuse: the graph has no node named {', '.join(hints)}; valid node "
                         f"names: {', '.join(names) or '(none)'} (and {DEFAULT_REUSE_KEY!r} for "
                         "the default of the others)")
    return {n: spec.of(n) for n in names}


# ====================================================================== folding
def fold(k: int, outputs: int, reuse: int) -> tuple[int, int]:
    """(red_unroll, out_unroll) for a reduction of length ``k`` per output, ``outputs`` outputs
    in the unrollable output loop and ``reuse`` multiplications per multiplier.

    At most ``M = min(ceil(k * outputs / reuse), MAX_UNROLL)`` multipliers: the reduction is
    unrolled first (``red = min(k, M)``), then the outputs into ``outputs // reuse`` lanes (at
    least one; each does ``reuse`` or more outputs). The lanes do not depend on ``k``, so a
    shorter reduction (a pruned layer) never gets more multipliers at the same ``reuse``
    (``M // red`` lanes would: ``fold(3, 9, 5)`` would get 2 lanes, ``fold(5, 9, 5)`` 1), but
    at the unroll cap (``k * (MAX_UNROLL // k)`` multipliers: 4095 for k = 65, 4096 for 64).

    Example:
        >>> fold(10, 7, 2), fold(5000, 3000, 1), fold(3, 9, 5), fold(5, 9, 5)
        ((10, 3), (4096, 1), (3, 1), (5, 1))
    """
    mults = min(max(1, -(-k * outputs // reuse)), MAX_UNROLL)
    red = max(1, min(k, mults))
    out = max(1, min(outputs, outputs // reuse, mults // red, MAX_UNROLL // red))
    return red, out


def unroll(n: int, reuse: int, inner: int = 1) -> int:
    """Lanes of an element-wise loop of ``n`` iterations at ``reuse`` (each lane an ``inner``
    loop fully unrolled inside it).

    Example:
        >>> unroll(100, 8), unroll(100, 1, inner=64)
        (13, 64)
    """
    return max(1, min(n, -(-n // reuse), MAX_UNROLL // max(inner, 1)))
