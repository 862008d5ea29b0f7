"""The import direction of qfx's layers, checked on the source (``ast``), imports inside
functions and ``TYPE_CHECKING`` blocks included.

A module may import only from its own layer and from the layers listed for it below (plus the
standard library and third parties). The lower layers know nothing of the ones above: the
backends consume a frozen ``Graph`` and never see a torch model, a checkpoint or a command line;
turning those into graphs is the job of ``qfx.flows`` (the orchestration / API layer) and
``qfx.cli`` (the command line).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qfx"

#: Foundation modules with no qfx imports of their own, usable from every layer:
#: ``qfx.package_data`` (where the shipped board YAMLs, HLS templates and flows live: the HLS
#: backend reads its templates and boards from there).
FOUNDATION = frozenset({"package_data"})

#: layer -> the other layers it may import (its own layer and FOUNDATION always).
ALLOWED: dict[str, frozenset[str]] = {
    "atomic": frozenset(),
    "package_data": frozenset(),
    "fixed": frozenset({"atomic"}),
    "data": frozenset({"atomic"}),
    "ir": frozenset({"fixed", "atomic"}),
    "nn": frozenset({"fixed", "atomic"}),
    "zoo": frozenset({"nn", "fixed"}),
    "training": frozenset({"nn", "zoo", "data", "fixed", "atomic"}),
    "frontends": frozenset({"fixed", "ir", "nn", "atomic"}),
    "backends": frozenset({"fixed", "ir", "atomic"}),
    "csim": frozenset({"fixed", "ir", "backends", "atomic"}),
    "ptq": frozenset({"fixed", "nn", "zoo", "data", "frontends", "ir", "atomic"}),
    "flows": frozenset({"fixed", "data", "ir", "nn", "zoo", "training", "frontends",
                        "backends", "csim", "atomic", "ptq"}),
}
#: Application entry points that may import anything: the command line, ``python -m qfx``, the
#: lazy top-level API (``qfx/__init__.py``) and the ``python -m qfx.demo`` script.
ANYTHING = frozenset({"cli", "__main__", "__init__", "demo"})


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    """``qfx.backends.hls.export`` -> ``backends``; ``qfx`` (the package itself) -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_package_member(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def _imports(source: str, module: str, *, is_pkg: bool = False) -> list[tuple[int, str]]:
    """(line, imported qfx module) of every import in the source of ``module``, relative imports
    resolved to absolute names."""
    tree = ast.parse(source)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "qfx"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "qfx":
                continue
            if target == "qfx":  # `from qfx import x`: the submodule x, else the top-level API
                out += [(node.lineno, f"qfx.{a.name}" if _is_package_member(a.name) else "qfx")
                        for a in node.names]
            else:
                out.append((node.lineno, target))
    return out


def _allowed(module: str, target: str) -> bool:
    layer, other = _layer(module), _layer(target)
    if layer in ANYTHING or other == layer or other in FOUNDATION:
        return True
    return other in ALLOWED.get(layer, frozenset())


def _violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        source = path.read_text(encoding="utf-8")
        for line, target in _imports(source, module, is_pkg=path.name == "__init__.py"):
            if not _allowed(module, target):
                rel = path.relative_to(PACKAGE.parent)
                found.append(f"{module} -> {target} ({rel}:{line})")
    return found


def test_every_module_belongs_to_a_layer():
    layers = {_layer(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert layers <= set(ALLOWED) | ANYTHING, sorted(layers - set(ALLOWED) - ANYTHING)


def test_imports_follow_the_layer_direction():
    bad = _violations()
    assert not bad, "imports against the layer direction:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, expected", [
    ("from qfx.nn import QLinear\n", ["qfx.nn"]),
    ("def f():\n    import qfx.training.config\n", ["qfx.training.config"]),
    ("from qfx import FixedType, csim\n", ["qfx", "qfx.csim"]),
    ("from . import writer\nfrom ..onnx import export\n", ["qfx.backends.hls",
                                                           "qfx.backends.onnx"]),
])
def test_the_checker_sees_every_kind_of_import(source, expected):
    assert [t for _, t in _imports(source, "qfx.backends.hls._probe")] == expected


@pytest.mark.parametrize("module, target, ok", [
    ("qfx.backends.hls.export", "qfx.flows.loading", False),
    ("qfx.backends.hls.export", "qfx.frontends.pytorch", False),
    ("qfx.backends.hls.export", "qfx.ir.graph", True),
    ("qfx.backends.hls.export", "qfx.backends.onnx.export", True),
    ("qfx.backends.onnx.export", "qfx.cli", False),
    ("qfx.csim.harness", "qfx.backends.hls.project", True),
    ("qfx.csim.harness", "qfx.nn", False),
    ("qfx.training.config", "qfx", False),
    ("qfx.nn.linear", "qfx.ir.graph", False),
    ("qfx.zoo.models", "qfx.atomic", False),
    ("qfx.backends.hls.boards", "qfx.package_data", True),
    ("qfx.flows.api", "qfx.frontends.onnx", True),
    ("qfx.flows.api", "qfx.cli", False),
    ("qfx.cli.export", "qfx.flows.api", True),
])
def test_the_layer_table(module, target, ok):
    assert _allowed(module, target) is ok
