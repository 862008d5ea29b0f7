"""The op contract: everything qfx knows about one IR op is declared once, in one `OpSpec`.

An op module subclasses :class:`OpSpec` and registers one instance with :func:`register`. The
executor, the cost model, the verifier and the frontends iterate this registry; backends keep
their own per-op rule tables keyed by the same names. Nothing outside an op module branches on
``node.op``.

Example:
    >>> from qfx.ir.ops import spec
    >>> s = spec("maxpool2d")
    >>> s.n_inputs, s.window, s.same_format
    (1, True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.kernels import FLOAT64_EXACT_BITS

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["OPS", "BINARY_TYPE", "NodeCost", "OpSpec", "kept_indices", "pair", "register", "spec"]

#: The format of a binary ({-1, +1}) edge.
BINARY_TYPE = FixedType(2, 2)


def pair(v: Any) -> tuple[int, int]:
    """A 2-D attribute (kernel, stride, padding, ...) as ``(h, w)``: IR attrs hold a list of
    two or one int for both.

    Example:
        >>> pair(3), pair([1, 2])
        ((3, 3), (1, 2))
    """
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"expected a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


@dataclass
class NodeCost:
    """Arithmetic cost of one node (or the total) per inference; see :mod:`qfx.ir.cost`."""

    name: str
    op: str
    macs: int = 0
    multipliers: int = 0
    mult_ops: int = 0
    shift_add_terms: int = 0
    xnor_bits: int = 0
    additions: int = 0
    adder_bits: int = 0
    comparisons: int = 0

    @property
    def dsp_free(self) -> bool:
        """True when nothing in this node needs a hardware multiplier."""
        return self.multipliers == 0


class OpSpec:
    """One IR op: schema, traits, shape inference, exactness proof, execution and cost.

    Schema: ``n_inputs``; required ``params`` (int64 arrays) and ``attrs``; ``optional_params``
    / ``optional_attrs`` name the others an op understands. Traits (read by the executor, the
    cost model and the backends):

    * ``same_format``: the output holds the input's values in the input's format; no cast.
    * ``casts``: the node computes a full-precision result and casts it once to its output
      type (False for ``same_format`` ops and for ops that produce their output format
      directly, such as a threshold's -1/+1).
    * ``window``: a sliding window over a ``(C, H, W)`` input (a line buffer when streamed).
    * ``keeps_binary`` / ``makes_binary``: a {-1, +1} input stays {-1, +1} / the output is
      {-1, +1} whatever the input.
    * ``khot_keys``: constants that may carry K-hot digits (``<key>_digits``, ``<key>_khot``).
    * ``channelwise``: output channel c (axis 0 of every edge) is computed from channel c of
      each input alone; ``channel_params``: the params whose axis 0 is that channel. With them
      the channel-pruning pass (:mod:`qfx.ir.prune`) drops a channel through the op (see
      :meth:`channel_ties`, :meth:`channel_sources`, :meth:`absorbs`, :meth:`drop_channels`).
    """

    name: ClassVar[str]
    n_inputs: ClassVar[int] = 1
    params: ClassVar[tuple[str, ...]] = ()
    optional_params: ClassVar[tuple[str, ...]] = ()
    attrs: ClassVar[tuple[str, ...]] = ()
    optional_attrs: ClassVar[tuple[str, ...]] = ()
    same_format: ClassVar[bool] = False
    casts: ClassVar[bool] = True
    window: ClassVar[bool] = False
    keeps_binary: ClassVar[bool] = False
    makes_binary: ClassVar[bool] = False
    khot_keys: ClassVar[tuple[str, ...]] = ()
    channelwise: ClassVar[bool] = False
    channel_params: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ schema
    def validate_node(self, node: Node) -> None:
        """Node-local checks: input count, params/attrs present, int64 params, K-hot digits
        that rebuild their constants, and the op's own parameter rules."""
        if len(node.inputs) != self.n_inputs:
            raise ValueError(f"node {node.name!r} ({node.op}) needs {self.n_inputs} input(s), "
                             f"has {len(node.inputs)}")
        missing = [p for p in self.params if p not in node.params] + [
            a for a in self.attrs if a not in node.attrs]
        if missing:
            raise ValueError(f"node {node.name!r} ({node.op}) lacks {', '.join(missing)}")
        for key, arr in node.params.items():
            if not isinstance(arr, np.ndarray) or arr.dtype != np.int64:
                raise ValueError(f"node {node.name!r}: param {key!r} must be an int64 array")
        for key in ("weight", "scale"):
            _validate_digits(node, key)
        self.check_params(node)

    def check_params(self, node: Node) -> None:
        """Op-specific rules on the parameters alone (override where there are any)."""

    # ------------------------------------------------------------------ inference and proof
    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        """The output shape (without the batch dimension) from the inputs' edges."""
        return tuple(ins[0].shape)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        """Raise unless the node's formats compute exactly what the executor computes: every
        constant fits its type, every accumulator holds every partial sum (override)."""

    def accumulator_range(self, node: Node, ins: Sequence[FixedType]
                          ) -> tuple[int, int, int] | None:
        """``(lo, hi, frac)``: the raw range of every partial sum at ``frac`` fractional bits,
        over the input formats' ranges, or None for ops without an accumulator."""
        return None

    def size_accumulator(self, node: Node, ins: Sequence[FixedType], where: str) -> FixedType:
        """The smallest exact ``acc_type`` (what the frontends store in ``attrs``); errors
        start with ``where`` (how the frontend names the layer)."""
        rng = self.accumulator_range(node, ins)
        if rng is None:
            raise ValueError(f"{where}: op {node.op!r} has no accumulator")
        return exact_type(*rng, where)

    # ------------------------------------------------------------------ execution and cost
    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        """The full-precision (float64, proven exact) result before the output cast."""
        raise NotImplementedError(f"op {self.name!r} does not define execute")

    def cost(self, node: Node, ins: Sequence[Edge], out: Edge, binary_input: bool) -> NodeCost:
        """Per-inference arithmetic cost (see :mod:`qfx.ir.cost` for the counting rules)."""
        return NodeCost(node.name, node.op)

    # ------------------------------------------------------------------ channel pruning
    # A channel is index c of axis 0 of an edge; a channel's constant is one raw value (in the
    # edge's type) that the channel holds at every position for every input.
    def channel_ties(self, node: Node, ins: Sequence[Edge], out: Edge
                     ) -> list[list[tuple[int, int]]] | None:
        """Per output channel, the input channels ``(input index, channel)`` that exist exactly
        when it does: the pruning pass drops them together. ``[]`` for an output channel that
        may go alone (a weighted op's row); an input channel in no tie may only go where
        :meth:`absorbs` says so. None (the default): no channel of this node may be dropped."""
        if not self.channelwise or not out.shape:
            return None
        return [[(i, c) for i in range(len(ins))] for c in range(out.shape[0])]

    def channel_sources(self, node: Node, ins: Sequence[Edge], out: Edge
                        ) -> list[list[tuple[int, int]]] | None:
        """Per output channel, every input channel its values depend on (an output channel
        whose sources are all constant is constant where it is uniform); None: unknown."""
        return self.channel_ties(node, ins, out)

    def absorbs(self, node: Node, ins: Sequence[Edge], i: int, c: int, const: int | None
                ) -> bool:
        """Whether input channel ``c`` of input ``i`` (in no tie) may be dropped, its constant
        ``const`` (raw, None: not constant) folded exactly into the node (:meth:`drop_channels`)."""
        return False

    def drop_channels(self, node: Node, ins: Sequence[Edge],
                      drop_in: Sequence[Mapping[int, int | None]], drop_out: Sequence[int]
                      ) -> None:
        """Rewrite ``node`` in place so that it computes its kept output channels from its
        kept input channels (``drop_in[i]``: the dropped channels of input ``i`` and their
        constants). The default slices ``channel_params`` (a channelwise op's)."""
        keep = kept_indices(node.params[self.channel_params[0]].shape[0], drop_out) \
            if self.channel_params else None
        for key in self.channel_params:
            if key in node.params:
                node.params[key] = node.params[key][keep]


#: op name -> its spec, in registration order.
OPS: dict[str, OpSpec] = {}


def register(cls: type[OpSpec]) -> type[OpSpec]:
    """Class decorator: add one instance of an op spec to :data:`OPS`."""
    if cls.name in OPS:
        raise ValueError(f"op {cls.name!r} registered twice")
    OPS[cls.name] = cls()
    return cls


def spec(op: str) -> OpSpec:
    """The spec of ``op`` (a clear error listing the known ops otherwise)."""
    try:
        return OPS[op]
    except KeyError:
        raise ValueError(f"unknown op {op!r}; known: {', '.join(OPS)}") from None


# ---------------------------------------------------------------------- shared exact rules
def const_values(t: FixedType, raw: np.ndarray, device: torch.device) -> torch.Tensor:
    """Raw int64 constants as float64 values on ``device``."""
    return t.from_int(torch.from_numpy(raw).to(device))


def exact_type(lo: int, hi: int, frac: int, where: str) -> FixedType:
    """The smallest format holding every raw value in [lo, hi] (at ``frac`` fractional bits)
    and 0; refused beyond what float64 evaluates exactly."""
    lo_i, hi_i = int(min(lo, 0)), int(max(hi, 0))
    bits = max(hi_i.bit_length(), (-lo_i - 1).bit_length()) + 1
    if bits > FLOAT64_EXACT_BITS:
        raise ValueError(
            f"{where}: the exact accumulator needs {bits} bits, more than "
            f"{FLOAT64_EXACT_BITS} bits cannot be evaluated exactly; reduce the widths of this "
            "layer's inputs, weights or bias"
        )
    return FixedType.for_raw_range(lo_i, hi_i, frac)


def holds(t: FixedType, lo: int, hi: int, frac: int) -> bool:
    """True when ``t`` holds every raw value in [lo, hi] given at ``frac`` fractional bits."""
    if t.frac_bits < frac:
        return False
    s = t.frac_bits - frac
    return t.raw_min <= (lo << s) and (hi << s) <= t.raw_max


def dot_rows(w: np.ndarray, x_t: FixedType, shift: int, add: np.ndarray | None = None
             ) -> tuple[int, int]:
    """Over the rows of ``w * 2**shift`` (rows x terms), each plus its constant ``add`` (raw,
    on the accumulator's grid): the exact [min lo, max hi] of ``add + sum_i w_i * x_i`` for x
    in ``x_t``'s range. int64 where provably wide enough, else Python integers."""
    w2 = w.reshape(w.shape[0], -1)
    wmax = int(np.abs(w2).max()) << shift if w2.size else 0
    xmax = max(abs(x_t.raw_min), abs(x_t.raw_max))
    amax = int(np.abs(add).max()) if add is not None and add.size else 0
    if wmax * xmax * max(w2.shape[1], 1) + amax < 2**62:
        ws = w2 * (1 << shift)
        add = None if add is None else np.asarray(add, dtype=np.int64)
    else:
        ws = w2.astype(object) * (1 << shift)
        add = None if add is None else np.asarray(add).astype(object)
    a, b = ws * x_t.raw_min, ws * x_t.raw_max
    lo, hi = np.minimum(a, b).sum(axis=1), np.maximum(a, b).sum(axis=1)
    if add is not None:
        lo, hi = lo + add, hi + add
    return int(lo.min()), int(hi.max())


def check_accumulator(node: Node, acc_t: FixedType, lo: int, hi: int, frac: int) -> None:
    """Every partial sum (raw at ``frac``) lies in [lo, hi]; ``acc_t`` must hold that range."""
    lo_all, hi_all = min(lo, 0), max(hi, 0)
    if not holds(acc_t, lo_all, hi_all, frac):
        raise ValueError(f"node {node.name!r} ({node.op}): accumulator {acc_t.cpp()} cannot hold "
                         f"every partial sum exactly (raw range [{lo_all}, {hi_all}] at "
                         f"{frac} fractional bits); the IR is inconsistent, re-freeze the model")


def raw_in_type(arr: np.ndarray, t: FixedType, what: str) -> None:
    """Raw constants must be representable in their declared type."""
    if arr.size and (int(arr.min()) < t.raw_min or int(arr.max()) > t.raw_max):
        raise ValueError(f"{what}: raw values [{int(arr.min())}, {int(arr.max())}] do not fit "
                         f"{t.cpp()}")


def khot_k(node: Node, key: str) -> int | None:
    """K of the node's K-hot ``key`` constant (``weight`` or ``scale``), or None."""
    if f"{key}_digits" not in node.params:
        return None
    return int(node.attrs[f"{key}_khot"])


def check_khot_width(node: Node, key: str, c_t: FixedType, where: str) -> None:
    """The shift-add of a K-hot constant of ``c_t`` runs on W_x + W_c + 1 bits: every partial
    sum of its digits must fit, i.e. sum_j 2**shift_j <= 2**W_c."""
    digits = node.params.get(f"{key}_digits")
    if digits is None:
        return
    if f"{key}_khot" not in node.attrs:
        raise ValueError(f"{where}: {key}_digits without attrs['{key}_khot']")
    sign, shift = digits[..., 0], digits[..., 1]
    worst = max((sum(1 << int(h) for g, h in zip(sg, sh, strict=True) if g)
                 for sg, sh in zip(sign.reshape(-1, sign.shape[-1]).tolist(),
                                   shift.reshape(-1, shift.shape[-1]).tolist(), strict=True)),
                default=0)
    if worst > 1 << c_t.width:
        raise ValueError(f"{where}: K-hot {key} digits reach 2**{worst.bit_length() - 1}, "
                         f"beyond the {c_t.width}-bit {key} type {c_t.cpp()}")


def check_binary_edge(where: str, t: FixedType, which: str) -> None:
    """A binary edge is ap_fixed<2,2> holding -1/+1."""
    if (t.width, t.int_bits, t.signed) != (2, 2, True):
        if which == "input":
            raise ValueError(f"{where}: needs a binary input edge (ap_fixed<2,2> holding -1/+1), "
                             f"got {t.cpp()}")
        raise ValueError(f"{where}: the output edge must be binary (ap_fixed<2,2>), got {t.cpp()}")


def is_pow2_or_zero(raw: np.ndarray) -> np.ndarray:
    """Per constant: 0 or +-2**k (a shift, never a multiplier)."""
    mag = np.abs(raw.astype(np.int64))
    return (mag & (mag - 1)) == 0


def constant_terms(node: Node, key: str, binary_input: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per constant of ``params[key]``: (needs a true multiplier, shift-add summands)."""
    raw = node.params[key]
    if f"{key}_digits" in node.params:
        return (np.zeros(raw.shape, dtype=bool),
                np.count_nonzero(node.params[f"{key}_digits"][..., 0], axis=-1))
    nonzero = raw != 0
    if binary_input:
        return np.zeros(raw.shape, dtype=bool), nonzero.astype(np.int64)
    cheap = is_pow2_or_zero(raw)
    return ~cheap, (nonzero & cheap).astype(np.int64)


def kept_indices(n: int, drop: Sequence[int] | Mapping[int, object]) -> np.ndarray:
    """Indices 0..n-1 not in ``drop``."""
    return np.array([i for i in range(n) if i not in drop], dtype=np.int64)


def check_channel_shifts(node: Node, key: str) -> None:
    """Per-channel formats of the constant ``key`` (attr ``<key>_shift``, optional): one shift
    0..62 per output channel (axis 0), every raw value of channel o a multiple of
    2**shift[o] (the backends store the narrow mantissas raw >> shift[o]).

    Example:
        >>> from qfx.ir.graph import Node
        >>> n = Node("bn", "batchnorm", ["x"], "y", {"scale_shift": [0, 2]},
        ...          {"scale": np.array([3, 4])})
        >>> check_channel_shifts(n, "scale")
    """
    shifts = node.attrs.get(f"{key}_shift")
    if shifts is None:
        return
    w = node.params[key]
    if (not isinstance(shifts, (list, tuple)) or len(shifts) != w.shape[0]
            or not all(isinstance(v, int) and 0 <= v <= 62 for v in shifts)):
        raise ValueError(f"{where(node)}: {key}_shift must be one integer 0..62 per output "
                         f"channel ({w.shape[0]}), got {shifts!r}")
    rows = w.reshape(w.shape[0], -1)
    col = np.array(shifts, dtype=np.int64)[:, None]
    if not np.array_equal((rows >> col) << col, rows):
        raise ValueError(f"{where(node)}: a {key} of output channel o is not a multiple of "
                         f"2**{key}_shift[o]")


def where(node: Node) -> str:
    """How messages name a node."""
    return f"node {node.name!r} ({node.op})"


def _validate_digits(node: Node, key: str) -> None:
    """K-hot digits, where present, must rebuild their constants exactly."""
    digits = node.params.get(f"{key}_digits")
    k = node.attrs.get(f"{key}_khot")
    if digits is None and k is None:
        return
    raw = node.params.get(key)
    if digits is None or k is None or raw is None:
        raise ValueError(f"node {node.name!r}: {key}_digits, attrs {key}_khot and {key} "
                         "go together")
    if digits.shape != (*raw.shape, int(k), 2):
        raise ValueError(f"node {node.name!r}: {key}_digits has shape {digits.shape}, "
                         f"expected {(*raw.shape, int(k), 2)}")
    sign, shift = digits[..., 0], digits[..., 1]
    if not (np.isin(sign, (-1, 0, 1)).all() and (shift >= 0).all() and (shift < 63).all()):
        raise ValueError(f"node {node.name!r}: {key}_digits signs must be -1/0/+1 and "
                         "shifts 0..62")
    rebuilt = (sign * np.left_shift(np.ones_like(shift), shift)).sum(-1)
    if not np.array_equal(rebuilt, raw):
        raise ValueError(f"node {node.name!r}: {key}_digits do not rebuild {key}")
