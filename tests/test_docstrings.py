"""Run the doctest examples of every module in the ``qfx`` package (one test per module).

Modules are found with :func:`pkgutil.walk_packages` and imported while the tests are
collected. A module whose import fails with ``ModuleNotFoundError`` for a module outside
``qfx`` (an optional dependency that is not installed) is not collected at all; any other
import failure is collected and reported as a failing test, with the import traceback.
``__main__`` modules are never imported, because importing one runs it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import qfx

OPTIONFLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _is_optional_dependency(exc: ModuleNotFoundError) -> bool:
    """True when the missing module is a third-party one (not part of qfx)."""
    return bool(exc.name) and exc.name.split(".")[0] != "qfx"


def _walk() -> tuple[list[str], list[str]]:
    """(modules to test, modules left out because an optional dependency is missing)."""
    collected: list[str] = ["qfx"]  # the top-level package itself is not yielded by the walk
    optional: list[str] = []

    def ignore(name: str) -> None:
        # A package that fails to import is still yielded; importing it below decides.
        pass

    for info in pkgutil.walk_packages(qfx.__path__, prefix="qfx.", onerror=ignore):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if _is_optional_dependency(exc):
                optional.append(info.name)
                continue
        except Exception:
            pass  # collected anyway: the test re-imports it and fails with the reason
        collected.append(info.name)
    return sorted(set(collected)), sorted(set(optional))


MODULES, OPTIONAL_MODULES = _walk()


def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report: list[str] = []
    failed = attempted = 0
    for test in sorted(finder.find(module, name), key=lambda t: t.name):
        _seed()
        result = runner.run(test, out=report.append, clear_globs=True)
        failed += result.failed
        attempted += result.attempted
    if failed:
        pytest.fail(
            f"{failed} of {attempted} doctest examples failed in {name}:\n" + "".join(report),
            pytrace=False,
        )


def test_every_module_is_walked() -> None:
    """Every ``.py`` file under qfx/ must be reachable by the walk (i.e. sit in a package).

    pkgutil does not descend into directories without ``__init__.py``, and setuptools'
    ``find`` does not install them either, so such a module would silently go untested.
    """
    root = Path(qfx.__file__).resolve().parent
    on_disk = set()
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts.pop()
        on_disk.add(".".join(["qfx", *parts]))
    missing = sorted(on_disk - set(MODULES) - set(OPTIONAL_MODULES))
    assert not missing, (
        "modules not reached by pkgutil.walk_packages (missing __init__.py?): "
        + ", ".join(missing)
    )
