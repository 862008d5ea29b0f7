"""``import_onnx``: QONNX graphs with power-of-two scales (Brevitas, qfx, FINN exports) as a
frozen qfx graph, so they get qfx's exact executor, HLS export and bit-exact C-sim.

The import computes what the QONNX graph *means* (real-valued arithmetic between ``Quant``
nodes), which is what the qonnx executor computes in float32 whenever float32 is exact. Every
``Quant`` on a tensor becomes a qfx cast: folded into the node that produces the tensor when
that node has no other consumer, else a standalone cast node (IR op ``input``, whose
semantics are "cast the incoming value"). ``Quant`` on an initializer quantizes the constant
once, exactly.

Mapping of a ``Quant(x, scale=2**e, zero_point=0, bitwidth=W, signed, narrow,
rounding_mode)``: ``ap_(u)fixed<W, W+e>``; rounding ROUND/HALF_EVEN -> AP_RND_CONV, FLOOR ->
AP_TRN, DOWN -> AP_TRN_ZERO, HALF_UP -> AP_RND_INF, HALF_DOWN -> AP_RND_ZERO; overflow AP_SAT,
or AP_SAT_SYM when signed and narrow. The two-node patterns :mod:`qonnx_export` writes for
AP_RND, AP_RND_MIN_INF, AP_RND_INF and AP_RND_ZERO are recognised and read back as one cast.

Binarized networks (the patterns :mod:`qonnx_export` writes): ``BipolarQuant`` with scale 1 on
a constant gives +-1 weights, and MatMul / Conv of such weights on a -1/+1 tensor becomes
``binary_dense`` / ``binary_conv2d`` (a preceding ``Pad(constant -1)`` is its -1 padding);
with a power-of-two scale the weights are ordinary fixed-point weights. ``BipolarQuant`` (scale
1) of ``x - T``, ``T - x`` or ``(x - T) * D`` (D = +-1 per channel) becomes one ``threshold``,
of any other computed tensor a threshold at 0; ``Unsqueeze -> Sub -> BipolarQuant -> Reshape``
becomes a ``thermometer``.

Thresholds (see :mod:`.onnx_thresholds`): FINN/QONNX ``MultiThreshold``
becomes a ``multithreshold``; a float ``BatchNormalization`` [-> ``Relu``] read only by a
``Quant`` becomes a ``multithreshold`` onto the Quant's format, and one read only by a
``BipolarQuant`` (scale 1) a ``threshold``, with integer thresholds searched on onnxruntime's
float32 execution of the source's own BatchNormalization node and checked on every input code.

Shape ops (``Reshape``, ``Transpose``, ``Unsqueeze``, ``Squeeze``, ``Flatten``, ``Identity``)
whose data input is a constant or a quantized constant are evaluated before any rule sees
them (Brevitas' quantized BatchNorm reshapes its quantized scale; TorchScript exports of
bias-free linear layers transpose the quantized weight). ``GlobalAveragePool`` and
``ReduceMean`` over H and W are one average pool over the plane (exact when H*W is a power of
two), ``GlobalMaxPool`` and ``ReduceMax`` over H and W one max pool; QONNX ``Trunc``
(Brevitas' TruncAvgPool2d) is the saturating cast it computes. Graph outputs that are
constants (a Brevitas QuantTensor's scale, zero point and bit width in TorchScript exports)
are dropped; ``outputs=`` picks outputs by name. A graph input read by several ``Quant``
nodes arrives on the finest of their grids and each reader is its own cast from there.

Float constants that no ``Quant`` quantizes (Brevitas' default float biases, BatchNorm
shifts) are taken exactly, as the smallest fixed-point format holding their float32 values
(when that needs more than 53 bits, rounded half to even onto float32's 24-bit precision of
the largest value, a declared format of at most 26 bits); this is said once per node (a log
warning, naming the format).
What is compared: qfx computes with the exact values, i.e. what the source model computes in
exact arithmetic (== Brevitas run in float64, tested); the source itself adds them in
float32, which rounds to 24 significant bits, so the two agree after the next ``Quant`` unless
that rounding moves a value across one of its rounding boundaries, and an unquantized output
differs by a few float32 ulps (the check reports them). The import-time check
(``check`` samples through qonnx's executor, or onnxruntime for standard ONNX, against the
imported graph, ``==``) reports the first output that differs, with counts and the largest
difference, in ``graph.meta["source_check"]`` and the log.

Refused, with the node name and the reason: non-power-of-two or non-constant scales,
non-zero zero points, per-channel activation scales, non-integer bit widths, CEIL/UP rounding
where it would round, unsigned narrow ranges, 1-bit signed (bipolar) Quant on tensors (write
BipolarQuant), BipolarQuant on a computed tensor with a scale other than 1, Pad other than a
binary conv's -1, a float BatchNormalization not read by one Quant / BipolarQuant,
AveragePool with a window divisor that is not a power of two, LeakyRelu with a slope that is
not, and any operator without an exact qfx equivalent.

Where the import lives: :mod:`.onnx_importer` (the graph walk, ``Quant`` as a cast, the rule
table ``IMPORTERS``, re-exported here), :mod:`.onnx_values` (``OnnxImportError``, re-exported
here, and exact constants, scales and attributes), and the rule families, each registering into
``IMPORTERS`` when imported (this module imports them all): :mod:`.onnx_elementwise` (Quant,
Trunc, Constant, Identity / Dropout, Mul / Div, Add, Sub), :mod:`.onnx_layers` (Gemm / MatMul,
2-D Conv, Pad, MaxPool, global pools and reductions, Flatten / Reshape, Concat, Resize),
:mod:`.onnx_activations` (Relu, Clip, Sigmoid / Tanh / Exp tables, float Softmax refused),
:mod:`.onnx_thresholds` (BipolarQuant, thermometers, MultiThreshold, float BatchNormalization),
:mod:`.onnx_fold` (shape ops on constants), :mod:`.onnx_window` (1-D Conv, LeakyRelu,
HardSigmoid, HardSwish, AveragePool with pads / ceil_mode / count_include_pad, the folding of
``F.pad``'s constant shape arithmetic) and :mod:`.onnx_table` (qfx's own QONNX softmax). The
import-time check is :mod:`.onnx_source_check` (``check_against_source`` and ``SourceCheck``,
re-exported here).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import onnx

# the rule modules register their rules into IMPORTERS when they are imported
from qfx.frontends import (  # noqa: F401
    onnx_activations,
    onnx_elementwise,
    onnx_fold,
    onnx_layers,
    onnx_table,
    onnx_thresholds,
    onnx_window,
)
from qfx.frontends.onnx_importer import IMPORTERS, _Importer
from qfx.frontends.onnx_source_check import SourceCheck, check_against_source
from qfx.frontends.onnx_values import OnnxImportError
from qfx.ir.graph import Graph
from qfx.ir.prune import prune_channels

__all__ = ["IMPORTERS", "OnnxImportError", "SourceCheck", "check_against_source", "import_onnx",
           "import_onnx_model"]

#: the public home of the error (tracebacks and pickles name it here, where it always was)
OnnxImportError.__module__ = __name__

_log = logging.getLogger(__name__)


def import_onnx_model(model: onnx.ModelProto, *, source: str = "<memory>",
                      outputs: Sequence[str] | None = None, check: int = 8,
                      prune: bool = True) -> Graph:
    """Import an in-memory (Q)ONNX model; see :func:`import_onnx`.

    Example:
        >>> import numpy as np
        >>> from onnx import TensorProto, helper, numpy_helper
        >>> consts = [numpy_helper.from_array(np.float32(v), n)
        ...           for n, v in (("s", 2.0**-4), ("z", 0.0), ("b", 8.0))]
        >>> q = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"],
        ...                      domain="qonnx.custom_op.general", signed=1, narrow=0,
        ...                      rounding_mode="FLOOR")
        >>> io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in "xy"]
        >>> m = helper.make_model(helper.make_graph([q], "g", io[:1], io[1:], consts),
        ...     opset_imports=[helper.make_opsetid("", 13),
        ...                    helper.make_opsetid("qonnx.custom_op.general", 1)])
        >>> g = import_onnx_model(m)
        >>> g.out_type(g.nodes[0]).cpp()
        'ap_fixed<8,4,AP_TRN,AP_SAT>'
    """
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise OnnxImportError(f"{source}: invalid ONNX model: {str(err).splitlines()[0]}") from None
    imp = _Importer(model, source, outputs)
    graph = imp.run()
    if prune:  # as qfx.freeze: the graph outputs stay, so the check below compares them all
        graph = prune_channels(graph)
    if check:
        try:
            result = check_against_source(graph, model, imp.output_names(),
                                          samples=int(check)).line()
        except Exception as err:  # the source runtime's own failure: the import stands
            result = (f"not compared with the source model ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''})")
        graph.meta["source_check"] = result
        (_log.info if result.startswith("qfx ==") else _log.warning)("%s: %s", source, result)
    return graph


def import_onnx(path: str | os.PathLike[str], *, outputs: Sequence[str] | None = None,
                check: int = 8, prune: bool = True) -> Graph:
    """Read a QONNX model with power-of-two scales as a frozen qfx graph.

    Every ``Quant`` becomes an exact qfx cast, weights become integer parameters, and the
    accumulators are sized from the weights as :func:`qfx.freeze` does, so ``qfx.run_graph``,
    the HLS backend and C-sim work on it unchanged. Anything without an exact fixed-point
    meaning raises :class:`OnnxImportError` naming the node and the reason.

    ``outputs`` picks graph outputs by their ONNX names (default: every computed output;
    constant outputs, such as the scale, zero point and bit width of a Brevitas QuantTensor
    in a TorchScript export, are dropped). ``check`` samples (0: none) are run through the
    imported graph and the source model (:func:`check_against_source`); the verdict line is
    logged and kept in ``graph.meta["source_check"]``. ``prune`` (as :func:`qfx.freeze`): drop
    the channels the graph provably does not need (constant channels, e.g. a dead ReLU channel
    or a channel with zero weights; :func:`qfx.ir.prune.prune_channels`) before that check, so
    it compares the pruned graph with the source; the outputs are the same bits.

    Example:
        >>> import os, tempfile, numpy as np, qfx
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> from qfx.backends.onnx import export_qonnx
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), qfx.FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (2,), qfx.FixedType(8, 3, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> back = import_onnx(export_qonnx(g, os.path.join(tempfile.mkdtemp(), "m.onnx")))
        >>> back.edges[back.outputs[0]].type.cpp()
        'ap_fixed<8,3,AP_RND,AP_SAT>'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}")
    try:
        model = onnx.load(str(path))
    except Exception as err:  # protobuf raises DecodeError and friends
        raise OnnxImportError(f"{path} is not a readable ONNX model: "
                              f"{type(err).__name__}: {err}") from None
    return import_onnx_model(model, source=str(path), outputs=outputs, check=check,
                             prune=prune)
