"""`HLSProject`: what :func:`qfx.backends.hls.writer.export_firmware` wrote, and where.

A project folder holds ``project.json`` (this object's manifest, paths relative to the folder)
and ``model.qfx.npz`` (the frozen graph it was generated from), so a later process can reload it
with :meth:`HLSProject.load` and C-simulate it against the exact executor.

Example:
    >>> from qfx.backends.hls.project import PortInfo
    >>> from qfx.fixed.fixed_type import FixedType
    >>> PortInfo("in_x", "x", "x_t", FixedType(8, 3), (3, 4, 4)).size
    48
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfx.fixed.fixed_type import FixedType
from qfx.ir.graph import Graph
from qfx.ir.serialize import load_graph
from qfx.ir.verify import check_identifier

__all__ = ["MANIFEST_NAME", "MODEL_NAME", "PortInfo", "HLSProject"]

#: File names inside a project folder.
MANIFEST_NAME = "project.json"
MODEL_NAME = "model.qfx.npz"
_MANIFEST_FORMAT = "qfx-hls-project"
_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PortInfo:
    """One array port of the top function.

    ``name`` is the C++ parameter, ``edge`` the IR edge it carries, ``typedef`` the C++ type name
    (inside the project's namespace), ``type`` its FixedType, ``shape`` without the batch.
    """

    name: str
    edge: str
    typedef: str
    type: FixedType
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of elements (the flat C++ array length)."""
        return int(math.prod(self.shape))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "edge": self.edge, "typedef": self.typedef,
                "type": self.type.cpp(), "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PortInfo:
        return cls(d["name"], d["edge"], d["typedef"], FixedType.parse(d["type"]),
                   tuple(d["shape"]))


@dataclass
class HLSProject:
    """An exported HLS firmware project (paths are absolute, under ``root``).

    * ``top``: the plain C++ top function that the testbench calls (arrays in and out for
      ``io="parallel"``, ``hls::stream`` of pixels for ``io="stream"``);
    * ``axis_top``: the AXI-Stream wrapper for a board (``axis_width``-bit words);
    * ``namespace``: the C++ namespace of the generated typedefs, configs and weights;
    * ``sources``: firmware translation units of the plain top, ``axis_sources`` of the wrapper;
    * ``tb_source``: the testbench; ``input_vectors``/``expected_vectors``: ``tb/inputs.txt`` and
      ``tb/expected.txt`` when the export was given test vectors.

    Example:
        >>> import qfx, torch, tempfile, os
        >>> from qfx.nn import QInput, QLinear
        >>> from qfx.backends.hls.writer import export_firmware
        >>> net = torch.nn.Sequential(QInput(8), QLinear(4, 2))
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(16, 4))
        >>> g = qfx.freeze(net, torch.randn(1, 4))
        >>> prj = export_firmware(g, os.path.join(tempfile.mkdtemp(), "prj"))
        >>> prj.top, [p.name for p in prj.outputs], prj.sources[0].name
        ('qfx_model', ['out_n_1'], 'qfx_model.cpp')
        >>> HLSProject.load(prj.root).top_source == prj.top_source
        True
    """

    root: Path
    project_name: str
    top: str
    axis_top: str
    namespace: str
    io: str
    reuse: int
    axis_width: int
    graph: Graph
    inputs: tuple[PortInfo, ...]
    outputs: tuple[PortInfo, ...]
    files: tuple[Path, ...] = field(default_factory=tuple)
    input_vectors: Path | None = None
    expected_vectors: Path | None = None

    # ------------------------------------------------------------------ paths
    @property
    def firmware_dir(self) -> Path:
        return self.root / "firmware"

    @property
    def weights_dir(self) -> Path:
        return self.firmware_dir / "weights"

    @property
    def tb_dir(self) -> Path:
        return self.root / "tb"

    @property
    def top_source(self) -> Path:
        return self.firmware_dir / f"{self.project_name}.cpp"

    @property
    def top_header(self) -> Path:
        return self.firmware_dir / f"{self.project_name}.h"

    @property
    def axis_source(self) -> Path:
        return self.firmware_dir / f"{self.project_name}_axis.cpp"

    @property
    def axis_header(self) -> Path:
        return self.firmware_dir / f"{self.project_name}_axis.h"

    @property
    def parameters_header(self) -> Path:
        return self.firmware_dir / "parameters.h"

    @property
    def layers_header(self) -> Path:
        return self.firmware_dir / "qfx_layers.h"

    @property
    def tb_source(self) -> Path:
        return self.tb_dir / f"tb_{self.project_name}.cpp"

    @property
    def sources(self) -> list[Path]:
        """Firmware translation units of the plain top function (one: top + layers)."""
        return [self.top_source]

    @property
    def axis_sources(self) -> list[Path]:
        """Firmware translation units of the AXI-Stream top (the wrapper and the plain top)."""
        return [self.axis_source, self.top_source]

    @property
    def include_dirs(self) -> list[Path]:
        """Folders the firmware and testbench need with ``-I`` (besides the ap_types headers)."""
        return [self.firmware_dir]

    @property
    def weight_headers(self) -> list[Path]:
        return sorted(p for p in self.files if p.parent == self.weights_dir)

    @property
    def cpp_files(self) -> list[Path]:
        """Every generated C++ source and header."""
        return [p for p in self.files if p.suffix in (".h", ".cpp")]

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict[str, Any]:
        """The JSON-able description written to ``project.json`` (paths relative to root)."""
        def rel(p: Path | None) -> str | None:
            return None if p is None else Path(os.path.relpath(p, self.root)).as_posix()

        return {
            "format": _MANIFEST_FORMAT, "version": _MANIFEST_VERSION,
            "project_name": self.project_name, "top": self.top, "axis_top": self.axis_top,
            "namespace": self.namespace, "io": self.io, "reuse": self.reuse,
            "axis_width": self.axis_width,
            "axis_packing": "one element per word, raw mantissa in data[W-1:0], sign-extended "
                            "(signed) or zero-extended (unsigned) on output, upper bits ignored "
                            "on input, TLAST on the last output word",
            "inputs": [p.to_json() for p in self.inputs],
            "outputs": [p.to_json() for p in self.outputs],
            "files": sorted(rel(p) for p in self.files),
            "input_vectors": rel(self.input_vectors),
            "expected_vectors": rel(self.expected_vectors),
            "model": MODEL_NAME,
        }

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> HLSProject:
        """Reload a project folder written by ``export_firmware`` (manifest + frozen model)."""
        root = Path(root).resolve()
        path = root / MANIFEST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{root} is not a qfx HLS project (no {MANIFEST_NAME})")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        try:
            fields = _check_manifest(doc, root)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        model = fields.pop("model")
        if not model.is_file():
            raise ValueError(f"{path}: model: no frozen model at {model}")
        return cls(root=root, graph=load_graph(model), **fields)


def _check_manifest(doc: Any, root: Path) -> dict[str, Any]:
    """The fields of :class:`HLSProject` from a ``project.json`` document, every key checked
    (a ``ValueError`` naming the key; :meth:`HLSProject.load` adds the file)."""
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    if doc.get("format") != _MANIFEST_FORMAT or doc.get("version") != _MANIFEST_VERSION:
        raise ValueError(f"unsupported project manifest {doc.get('format')!r} "
                         f"version {doc.get('version')!r}")

    def need(key: str, kinds: type | tuple[type, ...]) -> Any:
        if key not in doc:
            raise ValueError(f"missing key {key!r}")
        value = doc[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is int):
            raise ValueError(f"{key}: invalid value {value!r}")
        return value

    def ident(key: str) -> str:
        return check_identifier(need(key, str), key)

    def rel(key: str, value: Any) -> Path:
        p = Path(value) if isinstance(value, str) and value else None
        if p is None or p.is_absolute() or ".." in p.parts:
            raise ValueError(f"{key}: {value!r} is not a path inside the project folder")
        return root / p

    def ports(key: str) -> tuple[PortInfo, ...]:
        out = []
        for i, d in enumerate(need(key, list)):
            where = f"{key}[{i}]"
            if not isinstance(d, dict):
                raise ValueError(f"{where}: expected an object")
            for k in ("name", "edge", "typedef", "type", "shape"):
                if k not in d:
                    raise ValueError(f"{where}: missing key {k!r}")
            shape = d["shape"]
            if not (isinstance(shape, list) and shape and all(
                    isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1 << 28
                    for n in shape)):
                raise ValueError(f"{where}.shape: invalid value {shape!r}")
            try:
                out.append(PortInfo(check_identifier(d["name"], f"{where}.name"),
                                    check_identifier(d["edge"], f"{where}.edge"),
                                    check_identifier(d["typedef"], f"{where}.typedef"),
                                    FixedType.parse(d["type"]), tuple(shape)))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}: {err}") from None
        return tuple(out)

    io, reuse, width = need("io", str), need("reuse", int), need("axis_width", int)
    if io not in ("parallel", "stream"):
        raise ValueError(f"io: invalid value {io!r}; allowed: parallel, stream")
    if reuse < 1:
        raise ValueError(f"reuse: must be >= 1, got {reuse}")
    if not 1 <= width <= 4096:
        raise ValueError(f"axis_width: invalid value {width}")
    vectors = {k: None if doc.get(k) is None else rel(k, doc[k])
               for k in ("input_vectors", "expected_vectors")}
    return dict(
        project_name=ident("project_name"), top=ident("top"), axis_top=ident("axis_top"),
        namespace=ident("namespace"), io=io, reuse=reuse, axis_width=width,
        inputs=ports("inputs"), outputs=ports("outputs"),
        files=tuple(rel("files", f) for f in need("files", list)),
        model=rel("model", need("model", str)), **vectors)
