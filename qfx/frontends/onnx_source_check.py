"""The import-time check of :func:`qfx.frontends.onnx.import_onnx`: :func:`check_against_source`
runs an imported graph and its source model (qonnx's executor for QONNX, onnxruntime for standard
ONNX) on the same random float32 inputs and compares the outputs with ``==``, and
:class:`SourceCheck` holds the verdict. Apart from the importer because it only runs graphs and
models, never builds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from qfx.frontends.onnx_importer import _QUANT_DOMAINS
from qfx.ir.graph import Graph

__all__ = ["SourceCheck", "check_against_source"]


@dataclass(frozen=True)
class SourceCheck:
    """The imported graph run against its source model (qonnx's executor for QONNX,
    onnxruntime for standard ONNX) on the same float32 inputs; outputs compared with ``==``
    (qfx's exact values against the source's float32 values)."""

    runtime: str
    samples: int
    equal: bool
    output: str | None = None  #: the first output that differs
    differing: int = 0  #: how many of its values differ
    total: int = 0  #: how many values it has
    max_diff: float = 0.0
    #: the largest difference in float32 steps (ulps) of the source's value: a few where only
    #: the source's float32 rounding differs (float biases), many where qfx computes otherwise
    max_ulps: float = 0.0

    def line(self) -> str:
        """One line for the user, e.g. ``qfx == qonnx on 8 random samples``."""
        head = f"on {self.samples} random sample{'s' if self.samples != 1 else ''}"
        if self.equal:
            return f"qfx == {self.runtime} {head}"
        return (f"qfx != {self.runtime} {head}: output {self.output!r} differs in "
                f"{self.differing} of {self.total} values (max |diff| {self.max_diff:.6g}, "
                f"{self.max_ulps:.3g} float32 ulps)")


def _is_qonnx(model: onnx.ModelProto) -> bool:
    return any(n.domain in _QUANT_DOMAINS for n in model.graph.node)


def _run_source(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                names: list[str]) -> list[np.ndarray]:
    """The source model's outputs ``names`` on ``feeds`` (float32), run in batches of the
    model's declared batch size where it has one."""
    batch = {}
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if vi.name in feeds and dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            batch[vi.name] = int(dims[0].dim_value)
    n = len(next(iter(feeds.values())))
    step = min(batch.values()) if batch else n
    if _is_qonnx(model):
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes

        wrapped = ModelWrapper(onnx.ModelProto.FromString(model.SerializeToString()))
        wrapped = wrapped.transform(InferShapes())

        def run(f: dict[str, np.ndarray]) -> list[np.ndarray]:
            out = execute_onnx(wrapped, f)
            return [np.asarray(out[k]) for k in names]
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])

        def run(f: dict[str, np.ndarray]) -> list[np.ndarray]:
            return [np.asarray(v) for v in sess.run(names, f)]
    if step < n:  # first try all samples at once with the batch dimension set to n
        whole = onnx.ModelProto.FromString(model.SerializeToString())
        g = whole.graph
        del g.value_info[:]  # inferred again for the new batch size
        for vi in [*g.input, *g.output]:
            dims = vi.type.tensor_type.shape.dim
            if vi.name in feeds or vi.name in names:
                dims[0].dim_value = n
        import onnxruntime as ort

        ort.set_default_logger_severity(4)  # a failure here is expected and handled
        try:
            outs = _run_source(whole, feeds, names)
        except Exception:  # e.g. a Reshape to a fixed batch: run batch by batch instead
            outs = []
        finally:
            ort.set_default_logger_severity(2)  # onnxruntime's default (warnings)
        if len(outs) == len(names) and all(o.shape[:1] == (n,) for o in outs):
            return outs
    chunks: list[list[np.ndarray]] = []
    for start in range(0, n, step):
        part = {k: v[start:start + step] for k, v in feeds.items()}
        got = len(next(iter(part.values())))
        if got < step:  # pad the last batch to the declared size
            part = {k: np.concatenate([v, np.repeat(v[-1:], step - got, axis=0)])
                    for k, v in part.items()}
        chunks.append([o[:got] for o in run(part)])
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(names))]


def check_against_source(graph: Graph, model: onnx.ModelProto, output_names: Sequence[str],
                         *, samples: int = 8, seed: int = 0) -> SourceCheck:
    """Run ``graph`` (imported from ``model``) and ``model`` on the same random float32
    inputs (spread over 1.25 times each input format's range, so that rounding and saturation
    act) and compare the outputs ``output_names`` (the ONNX names of ``graph.outputs``).

    Example:
        >>> import os, tempfile, qfx
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> from qfx.backends.onnx import export_qonnx
        >>> from qfx.frontends.onnx import import_onnx_model
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), qfx.FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (2,), qfx.FixedType(8, 3, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> m = onnx.load(export_qonnx(g, os.path.join(tempfile.mkdtemp(), "m.onnx")))
        >>> back = import_onnx_model(m, check=0)
        >>> check_against_source(back, m, [m.graph.output[0].name]).line()
        'qfx == qonnx on 8 random samples'
    """
    from qfx.ir.executor import run_graph

    rng = np.random.default_rng(seed)
    onnx_inputs = [vi.name for vi in model.graph.input
                   if vi.name not in {t.name for t in model.graph.initializer}]
    feeds, xs = {}, []
    for name, edge in zip(onnx_inputs, graph.inputs, strict=True):
        t = graph.edges[edge].type
        lo, hi = float(t.min) * 1.25, float(t.max) * 1.25
        x = rng.uniform(lo, hi, (samples, *graph.edges[edge].shape)).astype(np.float32)
        feeds[name] = x
        xs.append(x.astype(np.float64))
    ref = _run_source(model, feeds, list(output_names))
    got = run_graph(graph, xs).outputs
    runtime = "qonnx" if _is_qonnx(model) else "onnxruntime"
    for name, r, q in zip(output_names, ref, got, strict=True):
        r = np.asarray(r, dtype=np.float64).reshape(q.shape)
        bad = r != q
        if bad.any():
            diff = np.abs(r - q)
            ulp = np.spacing(np.abs(r).astype(np.float32)).astype(np.float64)
            return SourceCheck(runtime, samples, False, name, int(bad.sum()), int(bad.size),
                               float(diff.max()), float((diff / ulp).max()))
    return SourceCheck(runtime, samples, True)
