"""C-simulation harness: prove that the exported HLS C++ computes the software model's bits.

:func:`csim` compiles an exported project's firmware and testbench *unchanged* with g++ and the
``ap_types`` headers, runs the binary on test vectors (in parallel processes), and compares the raw
output mantissas with the exact reference executor (:func:`qfx.ir.run_graph`) using ``==``. When
they differ it rebuilds the testbench with ``-DQFX_TRACE``, runs it on the first mismatching
samples and names the first node (in graph order) where C++ and Python disagree.

Builds are cached by a content hash of everything the compiler reads (see :func:`build_key`), so
a second run of the same project does not recompile.

Example:
    >>> d = Divergence("conv1", "conv2d", sample=0, element=17, cpp_raw=5, python_raw=6)
    >>> str(d)
    "node 'conv1' (conv2d), sample 0, element 17: C++ raw 5 != Python raw 6"
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfx.atomic import atomic_write_bytes
from qfx.backends.hls.layout import VECTORS_HEADER, read_trace, read_vectors
from qfx.backends.hls.project import HLSProject
from qfx.csim.toolchain import (
    DEFAULT_COMPILER,
    CompileError,
    CompileTimeout,
    ap_types_include_dir,
    compile_cpp,
    compile_parallel,
    compiler_version,
    default_cache_dir,
)
from qfx.ir.executor import run_graph
from qfx.ir.graph import Graph

__all__ = [
    "Build",
    "CSimError",
    "CSimReport",
    "CSimTimeout",
    "Divergence",
    "RANDOM_INPUT_SCALES",
    "build_key",
    "build_testbench",
    "csim",
    "random_inputs",
    "ARITH_CHOICES",
    "ARITH_PATHS",
]

#: Scales of the random inputs drawn by ``csim(..., samples=N)``: sample ``i`` is
#: ``N(0, 1) * RANDOM_INPUT_SCALES[i % 2]``, so half of the samples overflow a typical input format.
RANDOM_INPUT_SCALES: tuple[float, ...] = (1.0, 16.0)
#: The flags every C-simulation build uses besides the optimisation level (``-DNDEBUG``: the
#: headers' debug asserts abort some legal casts).
BASE_FLAGS: tuple[str, ...] = ("-std=c++14", "-DNDEBUG")
#: At most this many mismatching samples are re-run with the per-node trace.
TRACE_SAMPLES = 4
#: Smallest chunk of samples worth its own process.
_MIN_CHUNK = 4
#: File suffixes of C/C++ sources and headers hashed into the build key.
_CPP_SUFFIXES = frozenset({".h", ".hh", ".hpp", ".hxx", ".inc", ".ipp", ".c", ".cc", ".cpp",
                           ".cxx"})
_ERROR_LINE = re.compile(r"^(?P<loc>\S.*?:\d+(?::\d+)?): (?:fatal )?error: (?P<msg>.*)$")
_BUILD_FORMAT = "qfx-csim-build v2"
_ARITH_NAMES = {"native": "native C-sim arithmetic",
                "synth": "synthesis arithmetic, -DQFX_AP_ARITH"}


class CSimError(RuntimeError):
    """The C-simulation binary failed (bad exit status, a crash, or unreadable output)."""


class CSimTimeout(CSimError):
    """The C-simulation binary ran longer than the allowed timeout and was killed."""


# ====================================================================== results
@dataclass(frozen=True)
class Divergence:
    """Where C++ and Python first disagree: a node (in graph order), a sample, a flat element.

    ``element`` indexes the node's output flattened in NCHW order (without the batch);
    ``note`` explains special cases (a node missing from the C++ trace, or outputs that differ
    although every traced node agrees).

    Example:
        >>> Divergence("fc", "dense", sample=3, element=1, cpp_raw=-2, python_raw=7).node
        'fc'
    """

    node: str
    op: str
    sample: int
    element: int
    cpp_raw: int | None
    python_raw: int | None
    note: str = ""

    def __str__(self) -> str:
        text = (f"node {self.node!r} ({self.op}), sample {self.sample}, element {self.element}: "
                f"C++ raw {self.cpp_raw} != Python raw {self.python_raw}")
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return {"node": self.node, "op": self.op, "sample": self.sample,
                "element": self.element, "cpp_raw": self.cpp_raw,
                "python_raw": self.python_raw, "note": self.note}


@dataclass
class CSimReport:
    """Result of :func:`csim`.

    * ``outputs``: raw int64 outputs of the C++ testbench, shape ``(samples, values)`` (all output
      ports concatenated in port order, each NCHW-flat);
    * ``reference``: the exact executor's raw outputs in the same layout;
    * ``inputs``: the raw int64 input vectors both were given;
    * ``mismatches``: number of differing output elements; ``bit_exact``: ``mismatches == 0``;
    * ``compile_seconds``: time spent compiling the testbench in this call (0.0 when
      ``cached``); ``trace_compile_seconds``: the same for the ``-DQFX_TRACE`` build;
    * ``run_seconds``: wall time of the C-simulation processes (input files written, processes
      run, outputs read back); ``samples_per_second`` = ``samples / run_seconds``;
    * ``binary``: the testbench executable; ``jobs``: processes it ran in; ``top``: the top
      function the testbench drove (``"plain"``, or ``"axis"``: the AXI-Stream wrapper, which
      the synthesis path drives in a board project);
    * ``first_divergence``: the first diverging node (``None`` when bit-exact, or when tracing
      was off or failed: ``trace_error`` says why); ``trace_binary``: the ``-DQFX_TRACE``
      testbench; ``trace_samples``: the (first, at most :data:`TRACE_SAMPLES`) mismatching
      samples it was run on.

    Example:
        >>> z = np.zeros((2, 3), dtype=np.int64)
        >>> r = CSimReport(project=Path("prj"), outputs=z, reference=z.copy(), inputs=z,
        ...                samples=2, compile_seconds=0.0, run_seconds=0.5, cached=True,
        ...                binary=Path("tb"), jobs=1)
        >>> r.bit_exact, r.mismatches, r.samples_per_second
        (True, 0, 4.0)
        >>> str(r).split(";")[0].split(" (")[0]
        'BIT-EXACT: all 6 output values of 2 samples equal the software model'
    """

    project: Path
    outputs: np.ndarray
    reference: np.ndarray
    inputs: np.ndarray
    samples: int
    compile_seconds: float
    run_seconds: float
    cached: bool
    binary: Path
    jobs: int
    first_divergence: Divergence | None = None
    trace_binary: Path | None = None
    trace_compile_seconds: float = 0.0
    trace_samples: tuple[int, ...] = ()
    trace_error: str | None = None
    arith: str = "native"
    synth: CSimReport | None = None
    top: str = "plain"
    mismatches: int = field(init=False)
    bit_exact: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.outputs.shape != self.reference.shape:
            raise ValueError(f"outputs {self.outputs.shape} and reference "
                             f"{self.reference.shape} differ in shape")
        self.mismatches = int(np.count_nonzero(self.outputs != self.reference))
        self.bit_exact = self.mismatches == 0 and (self.synth is None or self.synth.bit_exact)

    def attach_synth(self, synth: CSimReport) -> None:
        """Add the synthesis-arithmetic proof (``arith="both"``); the verdict needs both."""
        self.synth = synth
        self.bit_exact = self.mismatches == 0 and synth.bit_exact

    @property
    def proofs(self) -> list[dict[str, Any]]:
        """One entry per arithmetic path run: ``arith``, ``samples``, ``bit_exact``,
        ``mismatches`` (``native`` first)."""
        out = [{"arith": self.arith, "top": self.top, "samples": self.samples,
                "bit_exact": self.mismatches == 0, "mismatches": self.mismatches}]
        if self.synth is not None:
            out += self.synth.proofs
        return out

    @property
    def proven(self) -> dict[str, int]:
        """Arithmetic path -> number of samples proven bit-exact on it (paths that mismatched
        are absent)."""
        return {p["arith"]: p["samples"] for p in self.proofs if p["bit_exact"]}

    @property
    def samples_per_second(self) -> float:
        """Simulated samples per second of wall time (``inf`` if too fast to measure)."""
        return self.samples / self.run_seconds if self.run_seconds > 0 else math.inf

    @property
    def mismatching_samples(self) -> int:
        """Number of samples with at least one differing output value."""
        if self.outputs.size == 0:
            return 0
        return int(np.count_nonzero((self.outputs != self.reference).any(axis=1)))

    def mismatch_positions(self, limit: int = 20) -> list[tuple[int, int, int, int]]:
        """The first ``limit`` differing outputs as ``(sample, element, cpp_raw, python_raw)``."""
        where = np.argwhere(self.outputs != self.reference)[:limit]
        return [(int(s), int(e), int(self.outputs[s, e]), int(self.reference[s, e]))
                for s, e in where]

    def summary(self) -> str:
        """The first line of ``str(report)``: verdict per arithmetic path and, on a mismatch,
        the divergence."""
        own = self._own_summary()
        if self.synth is None:
            return own
        other = self.synth._own_summary()
        # the failing path first, so the line starts with the overall verdict
        return f"{other}; {own}" if self.mismatches == 0 and not self.synth.bit_exact \
            else f"{own}; {other}"

    def _own_summary(self) -> str:
        total = int(self.outputs.size)
        path = _ARITH_NAMES.get(self.arith, self.arith)
        if self.top == "axis":
            path += " -DQFX_TB_AXIS, through the AXI-Stream top"
        if self.mismatches == 0:
            return (f"BIT-EXACT: all {total} output values of {self.samples} samples equal the "
                    f"software model ({path})")
        text = (f"MISMATCH: {self.mismatches} of {total} output values differ (in "
                f"{self.mismatching_samples} of {self.samples} samples, {path})")
        if self.first_divergence is not None:
            return f"{text}; first divergence at {self.first_divergence}"
        s, e, c, p = self.mismatch_positions(1)[0]
        why = f"; trace failed: {self.trace_error}" if self.trace_error else ""
        return f"{text}; first differing output: sample {s}, element {e}: C++ raw {c} != " \
               f"Python raw {p}{why}"

    def __str__(self) -> str:
        if self.synth is None:
            return self._own_str()
        first, second = ((self.synth, self) if self.mismatches == 0 and not self.synth.bit_exact
                         else (self, self.synth))
        return f"{first._own_str()}\n{second._own_str()}"

    def _own_str(self) -> str:
        compile_part = ("compile 0.0 s (cached binary)" if self.cached
                        else f"g++ compile {self.compile_seconds:.1f} s")
        if self.trace_compile_seconds:
            compile_part += f" + {self.trace_compile_seconds:.1f} s for the -DQFX_TRACE build"
        text = (f"{self._own_summary()}; {compile_part}; C-sim {self.run_seconds:.2f} s on "
                f"{self.jobs} process{'es' if self.jobs != 1 else ''} = "
                f"{self.samples_per_second:.1f} samples/s; project {self.project}; "
                f"binary {self.binary}")
        return text

    def to_dict(self, *, max_positions: int = 20) -> dict[str, Any]:
        """JSON-able summary (without the full arrays; see ``mismatch_positions``)."""
        sps = self.samples_per_second
        return {
            "project": str(self.project), "bit_exact": self.bit_exact,
            "samples": self.samples,
            "values_per_sample": int(self.outputs.shape[1]) if self.outputs.ndim == 2 else 0,
            "mismatches": self.mismatches, "mismatching_samples": self.mismatching_samples,
            "compile_seconds": self.compile_seconds, "run_seconds": self.run_seconds,
            "samples_per_second": sps if math.isfinite(sps) else None,
            "cached": self.cached, "binary": str(self.binary), "jobs": self.jobs,
            "first_divergence": (self.first_divergence.to_dict()
                                 if self.first_divergence else None),
            "trace_binary": str(self.trace_binary) if self.trace_binary else None,
            "trace_compile_seconds": self.trace_compile_seconds,
            "trace_samples": list(self.trace_samples), "trace_error": self.trace_error,
            "first_mismatches": [dict(zip(("sample", "element", "cpp_raw", "python_raw"), m,
                                          strict=True))
                                 for m in self.mismatch_positions(max_positions)],
            "summary": self.summary(), "arith": self.arith, "proofs": self.proofs,
            "proven": self.proven,
            "synth": self.synth.to_dict(max_positions=max_positions) if self.synth else None,
        }


@dataclass(frozen=True)
class Build:
    """A compiled testbench: ``binary``, whether it came from the cache, and the compile time
    of this call (0.0 when cached).

    Example:
        >>> Build(Path("tb"), cached=True, seconds=0.0, key="ab12").cached
        True
    """

    binary: Path
    cached: bool
    seconds: float
    key: str


# ====================================================================== build
def _as_project(project: HLSProject | str | os.PathLike[str] | Any) -> HLSProject:
    if isinstance(project, HLSProject):
        return project
    if isinstance(project, (str, os.PathLike)):
        return HLSProject.load(project)
    inner = getattr(project, "project", None)
    if isinstance(inner, HLSProject):
        return inner
    root = getattr(project, "root", None)
    if root is not None:
        return HLSProject.load(root)
    raise TypeError(f"expected an HLSProject or a project folder, got {type(project).__name__}")


@functools.lru_cache(maxsize=8)
def _tree_digest_cached(root: str, fingerprint: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for rel, _, _ in fingerprint:
        h.update(rel.encode() + b"\0")
        h.update(Path(root, rel).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _tree_digest(root: Path) -> str:
    """sha256 of every file under ``root`` (memoised per process while sizes/mtimes stay)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            st = p.stat()
            entries.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return _tree_digest_cached(str(root), tuple(entries))


def _build_inputs(prj: HLSProject) -> list[Path]:
    """Every C/C++ file of the project the compiler may read: the manifest's C++ files plus any
    C/C++ file under ``firmware/`` and ``tb/``."""
    files = {p.resolve() for p in prj.cpp_files}
    files.update(p.resolve() for p in (prj.tb_source, *prj.sources))
    for folder in (prj.firmware_dir, prj.tb_dir):
        if folder.is_dir():
            files.update(p.resolve() for p in folder.rglob("*")
                         if p.suffix in _CPP_SUFFIXES and p.is_file())
    return sorted(files)


#: The arithmetic paths a C-simulation can build: ``native`` (the firmware's default C-sim path,
#: ``QFX_NATIVE``: exact sums on native integers) and ``synth`` (``-DQFX_AP_ARITH``: the ap_fixed
#: arithmetic that Vitis synthesizes); ``both`` runs the two.
ARITH_PATHS: tuple[str, ...] = ("native", "synth")
ARITH_CHOICES: tuple[str, ...] = ("native", "synth", "both")
_ARITH_FLAGS = {"native": [], "synth": ["-DQFX_AP_ARITH"]}


def _check_arith(arith: str, allowed: Sequence[str] = ARITH_PATHS) -> str:
    if arith not in allowed:
        raise ValueError(f"arith must be one of {', '.join(allowed)}, got {arith!r}")
    return arith


def _drives_axis(prj: HLSProject, arith: str) -> bool:
    """Whether the ``arith`` build drives the AXI-Stream wrapper: the synthesis path does when the
    project has one (a board project), because that is what Vitis' ``csim_design`` compiles
    (``build_prj.tcl`` adds ``-DQFX_TB_AXIS``) and what becomes the IP; the native path drives the
    plain top, so both tops are proven."""
    return arith == "synth" and prj.axis_source.is_file()


def _flags(opt: str, trace: bool, arith: str = "native", axis: bool = False) -> list[str]:
    if not isinstance(opt, str) or not re.fullmatch(r"-O(?:[0-3sgz]|fast)?", opt):
        raise ValueError(f"opt must be a g++ optimisation flag such as -O3, got {opt!r}")
    return [*BASE_FLAGS, opt, *_ARITH_FLAGS[_check_arith(arith)],
            *(["-DQFX_TB_AXIS"] if axis else []), *(["-DQFX_TRACE"] if trace else [])]


def _sources(prj: HLSProject, axis: bool) -> list[Path]:
    return [prj.tb_source, *(prj.axis_sources if axis else prj.sources)]


def build_key(project: HLSProject | str | os.PathLike[str], *, trace: bool = False,
              opt: str = "-O3", compiler: str = DEFAULT_COMPILER, arith: str = "native") -> str:
    """The sha256 that names a testbench build in the cache.

    It covers the content and project-relative path of every C/C++ file the build can read
    (the manifest's firmware, weight headers and testbench, and any other C/C++ file under
    ``firmware/`` and ``tb/``), the compiler flags, the compiler's resolved path and
    ``--version`` text, and the location and content of the ``ap_types`` header folder. Test
    vectors, the manifest and the frozen model are not read by the compiler and not hashed.

    Example:
        >>> build_key("path/to/project")  # doctest: +SKIP
        '3f5c...'
    """
    prj = _as_project(project)
    root = prj.root.resolve()
    ap_dir = ap_types_include_dir()
    axis = _drives_axis(prj, arith)
    h = hashlib.sha256()
    head = {
        "format": _BUILD_FORMAT, "flags": _flags(opt, trace, arith, axis), "compiler": compiler,
        "compiler_path": shutil.which(compiler), "compiler_version": compiler_version(compiler),
        "ap_types": [str(ap_dir), _tree_digest(ap_dir)],
        "sources": [_rel(p, root) for p in _sources(prj, axis)],
        "include_dirs": [_rel(p, root) for p in prj.include_dirs],
    }
    h.update(json.dumps(head, sort_keys=True).encode())
    for path in _build_inputs(prj):
        data = path.read_bytes()
        h.update(f"\0{_rel(path, root)}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path.resolve())


def _compile_message(prj: HLSProject, err: CompileError) -> str:
    errors = [m for m in (_ERROR_LINE.match(ln) for ln in err.stderr.splitlines()) if m]
    if errors:
        first = [f"{m.group('loc')}: error: {m.group('msg')}" for m in errors[:3]]
        more = f" (+{len(errors) - 3} more errors)" if len(errors) > 3 else ""
        return (f"g++ could not compile the C-simulation of {prj.root}: {first[0]}"
                + "".join(f"\n  {line}" for line in first[1:]) + more)
    lines = [ln for ln in err.stderr.splitlines() if ln.strip()]
    hint = next((ln for ln in lines if "error" in ln), lines[0] if lines else str(err))
    return f"g++ could not build the C-simulation of {prj.root}: {hint.strip()}"


def build_testbench(project: HLSProject | str | os.PathLike[str], *, trace: bool = False,
                    opt: str = "-O3", cache_dir: str | os.PathLike[str] | None = None,
                    timeout: float = 600.0, compiler: str = DEFAULT_COMPILER,
                    arith: str = "native") -> Build:
    """Compile the project's testbench + firmware (unchanged), or reuse a cached build.

    Each translation unit is compiled on its own, in parallel (``g++ -std=c++14 -DNDEBUG <opt>
    [-DQFX_AP_ARITH] [-DQFX_TRACE] -I<ap_types> -I<firmware> -c tb/tb_<p>.cpp``, the same for
    ``firmware/<p>.cpp``), then linked into ``<cache>/<key>/tb_<p>``. ``arith="synth"`` adds
    ``-DQFX_AP_ARITH``: the layers then compute with the ap_fixed arithmetic that synthesis
    compiles and, in a board project, the testbench drives the AXI-Stream top (``-DQFX_TB_AXIS``,
    as Vitis' ``csim_design`` does), so the wrapper that becomes the IP is proven too
    (``arith="native"``: the native-integer C-sim path through the plain top). Objects and the
    executable are written under temporary names and renamed into place, so an interrupted
    (Ctrl-C: the compilers' process groups are killed) or concurrent build never leaves a
    half-written file behind. ``<key>`` is :func:`build_key`.

    Example:
        >>> b = build_testbench("path/to/project", arith="synth")  # doctest: +SKIP
        >>> b.binary.name, b.cached  # doctest: +SKIP
        ('tb_qfx_model', False)

    Raises:
        CompileError: g++ failed; the message names the first errors with their file:line.
        CompileTimeout: g++ ran longer than ``timeout`` seconds.
    """
    prj = _as_project(project)
    axis = _drives_axis(prj, arith)
    flags = _flags(opt, trace, arith, axis)
    key = build_key(prj, trace=trace, opt=opt, compiler=compiler, arith=arith)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    build_dir = root / f"csim-{key[:32]}"
    exe = build_dir / f"tb_{prj.project_name}"
    meta_path = build_dir / "build.json"
    if exe.is_file() and os.access(exe, os.X_OK) and _meta_key(meta_path) == key:
        return Build(exe, cached=True, seconds=0.0, key=key)
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = _sources(prj, axis)
    temps: list[Path] = []

    def temp(suffix: str) -> Path:
        fd, name = tempfile.mkstemp(dir=build_dir, prefix=f".{exe.name}.", suffix=suffix)
        os.close(fd)
        temps.append(Path(name))
        return temps[-1]

    include_dirs = [ap_types_include_dir(), *prj.include_dirs]
    start = time.perf_counter()
    try:
        objects = [temp(f".{i}.o.tmp") for i in range(len(sources))]
        tmp = temp(".tmp")
        compile_parallel([([src], obj, [*flags, "-c"]) for src, obj in zip(sources, objects,
                                                                            strict=True)],
                         include_dirs=include_dirs, timeout=timeout, compiler=compiler)
        compile_cpp(objects, tmp, flags=flags, timeout=timeout, compiler=compiler)
        seconds = time.perf_counter() - start
        os.replace(tmp, exe)
    except CompileTimeout:
        raise
    except CompileError as err:
        raise CompileError(_compile_message(prj, err), cmd=err.cmd, stderr=err.stderr,
                           returncode=err.returncode) from None
    finally:
        for t in temps:
            t.unlink(missing_ok=True)
    meta = {"format": _BUILD_FORMAT, "key": key, "project": str(prj.root), "flags": flags,
            "arith": arith, "sources": [str(s) for s in sources], "compile_seconds": seconds,
            "compiler_version": compiler_version(compiler).splitlines()[0]}
    atomic_write_bytes(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
    return Build(exe, cached=False, seconds=seconds, key=key)


def _meta_key(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None


# ====================================================================== vectors
def random_inputs(graph: Graph, samples: int, seed: int = 0) -> list[np.ndarray]:
    """Seeded random float inputs for every graph input: ``N(0, 1)`` times a per-sample scale
    cycling through :data:`RANDOM_INPUT_SCALES` (1, 16), so that about half of the samples
    saturate or wrap the input format and the layers after it.

    Example:
        >>> from qfx.ir.graph import Edge, Node
        >>> from qfx.fixed.fixed_type import FixedType
        >>> g = Graph(inputs=["x"], outputs=["x"])
        >>> g.add_edge(Edge("x", (3,), FixedType(8, 3)))
        >>> [a.shape for a in random_inputs(g, 5)]
        [(5, 3)]
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    rng = np.random.default_rng(seed)
    scale = np.array(RANDOM_INPUT_SCALES)[np.arange(samples) % len(RANDOM_INPUT_SCALES)]
    out = []
    for name in graph.inputs:
        shape = tuple(graph.edges[name].shape)
        x = rng.standard_normal((samples, *shape))
        out.append(x * scale.reshape((samples,) + (1,) * len(shape)))
    return out


def _float_inputs_to_raw(prj: HLSProject, inputs: Any) -> list[np.ndarray]:
    """Raw mantissas (graph-input order, shape ``(samples, *shape)``) of float inputs, each
    represented in its graph input edge's type (rounding and overflow), as the export does."""
    graph = prj.graph
    return [np.asarray(graph.edges[name].type.to_int(f), dtype=np.int64)
            for name, f in zip(graph.inputs, _as_float_inputs(prj, inputs), strict=True)]


def _as_float_inputs(prj: HLSProject, inputs: Any) -> list[np.ndarray]:
    """Checked float64 arrays (graph-input order, shape ``(samples, *shape)``)."""
    graph = prj.graph
    xs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(xs) != len(graph.inputs):
        raise ValueError(f"the model has {len(graph.inputs)} input(s); got {len(xs)} array(s)")
    raws = []
    n = None
    for name, v in zip(graph.inputs, xs, strict=True):
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        arr = np.asarray(v)
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"inputs for {name!r} must be numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        shape = tuple(graph.edges[name].shape)
        if arr.shape[1:] != shape:
            dims = ", ".join(map(str, shape))
            raise ValueError(f"inputs for {name!r} must have shape (samples, {dims}), got "
                             f"{arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"inputs for {name!r} contain NaN or infinity")
        if n is not None and arr.shape[0] != n:
            raise ValueError("every input array must have the same number of samples")
        n = arr.shape[0]
        raws.append(arr)
    if not n:
        raise ValueError("no input samples to simulate")
    return raws


def _vectors_to_raw(prj: HLSProject, path: Path) -> list[np.ndarray]:
    """Split a raw vector file into per-graph-input arrays."""
    rows = read_vectors(path)
    width = sum(p.size for p in prj.inputs)
    if rows.size == 0:
        raise ValueError(f"{path} holds no input samples")
    if rows.shape[1] != width:
        raise ValueError(f"{path}: {rows.shape[1]} values per sample, the top function takes "
                         f"{width}")
    by_edge: dict[str, np.ndarray] = {}
    k = 0
    for p in prj.inputs:
        by_edge[p.edge] = rows[:, k:k + p.size].reshape(len(rows), *p.shape)
        k += p.size
    return [by_edge[name] for name in prj.graph.inputs]


def _port_matrix(ports: Sequence[Any], names: Sequence[str], arrays: Sequence[np.ndarray],
                 n: int) -> np.ndarray:
    """Concatenate per-edge arrays (in ``names`` order) in the testbench's port order."""
    index = {name: i for i, name in enumerate(names)}
    cols = [np.asarray(arrays[index[p.edge]], dtype=np.int64).reshape(n, -1) for p in ports]
    return np.concatenate(cols, axis=1) if cols else np.zeros((n, 0), dtype=np.int64)


def _format_rows(raw: np.ndarray) -> bytes:
    """Vector-file lines for a raw int64 matrix (fast: a lookup table for small ranges)."""
    n, m = raw.shape
    if raw.size == 0:
        return b"\n" * n
    lo, hi = int(raw.min()), int(raw.max())
    if hi - lo <= 1 << 16:
        width = max(len(str(lo)), len(str(hi))) + 1  # right-aligned, space-separated
        table = np.array([f"{v:>{width}d}".encode() for v in range(lo, hi + 1)],
                         dtype=f"S{width}")
        cells = np.ascontiguousarray(table[raw - lo]).view(np.uint8).reshape(n, m * width)
        lines = np.empty((n, m * width + 1), dtype=np.uint8)
        lines[:, :-1] = cells
        lines[:, -1] = ord("\n")
        return lines.tobytes()
    return "".join(" ".join(map(str, row)) + "\n" for row in raw.tolist()).encode()


def _write_inputs(path: Path, raw: np.ndarray) -> None:
    head = f"{VECTORS_HEADER}\n# samples={raw.shape[0]} values={raw.shape[1]}\n".encode()
    path.write_bytes(head + _format_rows(raw))


# ====================================================================== running
def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _run_processes(binary: Path, raw: np.ndarray, jobs: int, timeout: float, work: Path,
                   n_out: int, trace: bool = False) -> np.ndarray:
    """Run ``binary`` on ``raw`` split into ``jobs`` chunks in parallel; merged raw outputs."""
    deadline = time.monotonic() + timeout
    chunks = [c for c in np.array_split(raw, jobs) if len(c)]
    procs: list[tuple[subprocess.Popen[bytes], Path, Path, int]] = []
    try:
        for i, chunk in enumerate(chunks):
            inp, out, log = work / f"in{i}.txt", work / f"out{i}.txt", work / f"log{i}.txt"
            _write_inputs(inp, chunk)
            argv = [str(binary), str(inp), str(out), "-"]
            if trace:
                argv.append(str(work / f"trace{i}.txt"))
            with open(log, "wb") as log_fh:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fh,
                                        stderr=subprocess.STDOUT, cwd=work,
                                        start_new_session=True)
            procs.append((proc, out, log, len(chunk)))
        for proc, *_ in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise CSimTimeout(f"the C-simulation {binary.name} ran longer than {timeout:g} s "
                                  f"on {len(raw)} samples and was killed") from None
    finally:
        for proc, *_ in procs:
            if proc.poll() is None:
                _kill(proc)
    results = []
    for proc, out, log, count in procs:
        if proc.returncode != 0:
            text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            why = text[0] if text else "no output"
            raise CSimError(f"the C-simulation {binary} {_describe_exit(proc.returncode)}: {why}")
        got = read_vectors(out)
        if got.shape != (count, n_out) and not (count and n_out == 0):
            raise CSimError(f"the C-simulation wrote {got.shape[0]} samples x "
                            f"{got.shape[1] if got.ndim == 2 else 0} values to {out}, expected "
                            f"{count} x {n_out}")
        results.append(got)
    return np.concatenate(results, axis=0)


def _default_jobs(samples: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, samples // _MIN_CHUNK))


# ====================================================================== divergence
def _first_divergence(prj: HLSProject, raw_in: list[np.ndarray], samples: list[int],
                      cpp_trace: dict[str, np.ndarray], report_out: np.ndarray,
                      reference: np.ndarray) -> Divergence:
    """Compare the C++ trace with the executor's trace node by node, in graph order."""
    graph = prj.graph
    values = [graph.edges[name].type.from_int(r[samples])
              for name, r in zip(graph.inputs, raw_in, strict=True)]
    py = run_graph(graph, values, trace=True).trace
    k = len(samples)
    for node in graph.nodes:
        want = np.asarray(py[node.name], dtype=np.int64).reshape(k, -1)
        got = cpp_trace.get(node.name)
        if got is None or got.shape[0] != k:
            return Divergence(node.name, node.op, samples[0], 0, None,
                              int(want[0, 0]) if want.size else None,
                              note="missing from the C++ trace")
        if got.shape != want.shape:
            return Divergence(node.name, node.op, samples[0], 0, None, None,
                              note=f"C++ traced {got.shape[1]} values per sample, Python "
                                   f"{want.shape[1]}")
        diff = np.argwhere(got != want)
        if len(diff):
            s, e = (int(v) for v in diff[0])
            return Divergence(node.name, node.op, samples[s], e, int(got[s, e]),
                              int(want[s, e]))
    # every node agrees: the difference is in how the outputs leave the top function
    where = np.argwhere(report_out != reference)[0]
    s, e = int(where[0]), int(where[1])
    return Divergence("<outputs>", "output", s, e, int(report_out[s, e]), int(reference[s, e]),
                      note="every traced node agrees; the outputs differ after the last node")


# ====================================================================== csim
def csim(project: HLSProject | str | os.PathLike[str], inputs: Any = None, *,
         samples: int | None = None, seed: int = 0, jobs: int | None = None,
         timeout: float = 600.0, trace_on_mismatch: bool = True, opt: str = "-O3",
         cache_dir: str | os.PathLike[str] | None = None, progress: bool = False,
         arith: str = "native", synth_samples: int | None = None) -> CSimReport:
    """C-simulate an exported project and compare its raw outputs with the software model.

    The project's firmware and testbench are compiled unchanged (:func:`build_testbench`; cached
    by content hash), run on the input vectors in ``jobs`` parallel processes, and their raw
    outputs compared with ``run_graph`` on exactly the same input values using ``==``.

    Args:
        project: an :class:`HLSProject` or an exported project folder.
        inputs: float inputs of shape ``(samples, *input_shape)`` (numpy or torch; a list for
            several graph inputs). Each is represented in its graph input edge's fixed-point
            type (its rounding and overflow), exactly as ``export_firmware`` writes test
            vectors. ``None``: use ``samples`` random inputs if given, else the project's
            ``tb/inputs.txt``.
        samples: draw this many random inputs (:func:`random_inputs`: seeded ``N(0, 1)`` with
            every other sample scaled by 16 so that formats saturate/wrap).
        seed: seed of the random inputs.
        jobs: processes to run in parallel (default: the usable CPU cores, at most one per 4
            samples). The C-sim top uses static buffers, so parallelism is by process.
        timeout: seconds allowed for each compile and for the simulation run.
        trace_on_mismatch: on a mismatch, rebuild with ``-DQFX_TRACE`` and locate the first
            diverging node (see :class:`Divergence`).
        opt: g++ optimisation flag (the build always adds ``-std=c++14 -DNDEBUG``).
        cache_dir: build cache root (default ``$QFX_CACHE_DIR`` or ``~/.cache/qfx/build``).
        progress: print the stages to stderr.
        arith: which arithmetic of the firmware to build and prove: ``"native"`` (the
            native-integer C-sim path, the default here), ``"synth"`` (``-DQFX_AP_ARITH``: the
            ap_fixed arithmetic that Vitis synthesizes; in a board project through the
            AXI-Stream top that becomes the IP, as Vitis' ``csim_design`` runs it; the native
            path drives the plain top) or ``"both"`` (the native path on every
            sample, the synthesis path on the first ``synth_samples``; ``qfx csim`` and the flows
            default to ``"both"``).
        synth_samples: with ``arith="both"``, prove the synthesis path on only the first this
            many samples (default: all).

    The expected outputs are the software model run on the float inputs as given
    (``run_graph(graph, inputs)``); the testbench gets their raw values in the graph input
    edge's type. If that type differs from the first node's cast, the double rounding shows up
    as a mismatch instead of being hidden. When the project has ``tb/expected.txt``, it is
    checked against the software model on ``tb/inputs.txt`` (a wrong file raises
    :class:`CSimError` naming the first differing sample and element): it is what the
    project's own testbench compares with in Vitis.

    Returns:
        A :class:`CSimReport`; ``report.bit_exact`` is the verdict (with ``arith="both"`` it
        needs both paths; ``report.synth`` holds the synthesis path's report).

    Raises:
        CompileError / CompileTimeout: g++ failed or ran too long (the message names the
            first error's file:line).
        CSimError / CSimTimeout: the testbench failed, crashed or ran too long.
        ValueError / FileNotFoundError: bad inputs, or no vectors to run.

    Example:
        >>> import qfx, torch, tempfile, os
        >>> from qfx.nn import QInput, QLinear
        >>> from qfx.backends.hls.writer import export_firmware
        >>> net = torch.nn.Sequential(QInput(8), QLinear(4, 2))
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(16, 4))
        >>> tmp = tempfile.mkdtemp()
        >>> prj = export_firmware(qfx.freeze(net, torch.randn(1, 4)), os.path.join(tmp, "p"))
        >>> rep = csim(prj, samples=8, opt="-O1", cache_dir=os.path.join(tmp, "cache"))
        >>> rep.bit_exact, rep.mismatches, rep.outputs.shape, rep.cached
        (True, 0, (8, 2), False)
        >>> csim(prj, samples=8, opt="-O1", cache_dir=os.path.join(tmp, "cache")).cached
        True
    """
    prj = _as_project(project)
    graph = prj.graph
    if timeout is None or not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    _check_arith(arith, ARITH_CHOICES)
    if synth_samples is not None and (isinstance(synth_samples, bool)
                                      or not isinstance(synth_samples, int)
                                      or synth_samples < 1):
        raise ValueError(f"synth_samples must be an integer >= 1, got {synth_samples!r}")

    def say(msg: str) -> None:
        if progress:
            print(f"qfx csim: {msg}", file=sys.stderr, flush=True)

    # ---- inputs: raw values for the testbench, float values for the software model
    if inputs is not None and samples is not None:
        raise ValueError("give either inputs or samples, not both")
    floats: list[np.ndarray] | None = None
    if inputs is not None:
        floats = _as_float_inputs(prj, inputs)
    elif samples is not None:
        floats = _as_float_inputs(prj, random_inputs(graph, samples, seed))
    if floats is not None:
        raw_in = [np.asarray(graph.edges[name].type.to_int(f), dtype=np.int64)
                  for name, f in zip(graph.inputs, floats, strict=True)]
    else:
        if prj.input_vectors is None or not prj.input_vectors.is_file():
            raise FileNotFoundError(f"{prj.root} has no test vectors (tb/inputs.txt); pass "
                                    "inputs or samples")
        raw_in = _vectors_to_raw(prj, prj.input_vectors)
    n = int(raw_in[0].shape[0])

    # ---- the software model (the specification), on the user's floats when given
    say("running the exact software model")
    if floats is not None:
        ref = run_graph(graph, floats)
    else:
        ref = run_graph(graph, [graph.edges[name].type.from_int(r)
                                for name, r in zip(graph.inputs, raw_in, strict=True)])
    reference = _port_matrix(prj.outputs, graph.outputs, ref.raw, n)
    _check_expected_file(prj, reference if floats is None else None)

    common = dict(jobs=jobs, timeout=timeout, trace_on_mismatch=trace_on_mismatch, opt=opt,
                  cache_dir=cache_dir, say=say)
    if arith != "both":
        return _prove(prj, raw_in, reference, arith=arith, **common)
    report = _prove(prj, raw_in, reference, arith="native", **common)
    k = n if synth_samples is None else min(n, synth_samples)
    synth = _prove(prj, [r[:k] for r in raw_in], reference[:k], arith="synth", **common)
    report.attach_synth(synth)
    say(report.summary())
    return report


def _prove(prj: HLSProject, raw_in: list[np.ndarray], reference: np.ndarray, *, arith: str,
           jobs: int | None, timeout: float, trace_on_mismatch: bool, opt: str,
           cache_dir: str | os.PathLike[str] | None, say: Any) -> CSimReport:
    """Build the testbench for one arithmetic path, run it on ``raw_in`` and compare with
    ``reference`` (``==`` on raw integers); trace the first divergence on a mismatch."""
    graph = prj.graph
    n = int(raw_in[0].shape[0])
    in_matrix = _port_matrix(prj.inputs, graph.inputs, raw_in, n)
    n_out = sum(p.size for p in prj.outputs)
    if jobs is None:
        jobs = _default_jobs(n)
    elif isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    jobs = min(jobs, n)
    top = "axis" if _drives_axis(prj, arith) else "plain"
    path = _ARITH_NAMES[arith] + (", through the AXI-Stream top" if top == "axis" else "")

    # ---- build
    say(f"building {prj.root.name} (g++ {opt}, {path})")
    build = build_testbench(prj, opt=opt, cache_dir=cache_dir, timeout=timeout, arith=arith)
    say(f"{'cached binary' if build.cached else f'compiled in {build.seconds:.1f} s'}: "
        f"{build.binary}")

    # ---- run
    say(f"simulating {n} samples in {jobs} process{'es' if jobs != 1 else ''} ({path})")
    with tempfile.TemporaryDirectory(prefix="qfx-csim-") as tmp:
        start = time.perf_counter()
        outputs = _run_processes(build.binary, in_matrix, jobs, timeout, Path(tmp), n_out)
        run_seconds = time.perf_counter() - start

    report = CSimReport(project=prj.root, outputs=outputs, reference=reference,
                        inputs=in_matrix, samples=n, compile_seconds=build.seconds,
                        run_seconds=run_seconds, cached=build.cached, binary=build.binary,
                        jobs=jobs, arith=arith, top=top)
    if report.bit_exact or not trace_on_mismatch:
        say(report.summary())
        return report

    # ---- locate the first divergence
    bad = np.flatnonzero((outputs != reference).any(axis=1))[:TRACE_SAMPLES].tolist()
    report.trace_samples = tuple(int(s) for s in bad)
    say(f"mismatch: tracing sample(s) {', '.join(map(str, bad))}")
    try:
        tbuild = build_testbench(prj, trace=True, opt=opt, cache_dir=cache_dir,
                                 timeout=timeout, arith=arith)
        report.trace_binary = tbuild.binary
        report.trace_compile_seconds = tbuild.seconds
        with tempfile.TemporaryDirectory(prefix="qfx-csim-trace-") as tmp:
            work = Path(tmp)
            _run_processes(tbuild.binary, in_matrix[bad], 1, timeout, work, n_out, trace=True)
            cpp_trace = read_trace(work / "trace0.txt")
        report.first_divergence = _first_divergence(prj, raw_in, bad, cpp_trace, outputs,
                                                    reference)
    except (CompileError, CSimError, ValueError, OSError) as err:
        report.trace_error = str(err).splitlines()[0]
    say(report.summary())
    return report


def _check_expected_file(prj: HLSProject, reference: np.ndarray | None) -> None:
    """Check ``tb/expected.txt`` (what the project's own testbench compares with, also in
    Vitis) against the software model on ``tb/inputs.txt``; ``reference``: the model's raw
    outputs on those vectors when already computed."""
    exp_path = prj.expected_vectors or prj.tb_dir / "expected.txt"
    if not exp_path.is_file():
        return
    if reference is None:
        if prj.input_vectors is None or not prj.input_vectors.is_file():
            raise CSimError(f"{exp_path} exists but {prj.tb_dir / 'inputs.txt'} does not")
        graph = prj.graph
        raw = _vectors_to_raw(prj, prj.input_vectors)
        ref = run_graph(graph, [graph.edges[name].type.from_int(r)
                                for name, r in zip(graph.inputs, raw, strict=True)])
        reference = _port_matrix(prj.outputs, graph.outputs, ref.raw, int(raw[0].shape[0]))
    try:
        expected = read_vectors(exp_path)
    except ValueError as err:
        raise CSimError(f"{exp_path} is unreadable: {err}") from None
    if expected.shape != reference.shape:
        raise CSimError(f"{exp_path} holds {expected.shape[0]} samples x "
                        f"{expected.shape[1] if expected.ndim == 2 else 0} values; the software "
                        f"model gives {reference.shape[0]} x {reference.shape[1]} on "
                        f"{prj.input_vectors}")
    diff = np.argwhere(expected != reference)
    if len(diff):
        s, e = (int(v) for v in diff[0])
        raise CSimError(f"{exp_path} disagrees with the software model on {prj.input_vectors}: "
                        f"{len(diff)} values differ, first at sample {s}, element {e}: file "
                        f"{int(expected[s, e])} != model {int(reference[s, e])} (the project's "
                        "testbench would fail in Vitis; re-export the project)")
