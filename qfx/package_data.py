"""Locate qfx's data directories (board YAMLs, HLS templates, flows) in an install or a checkout.

The data live at the top of the source tree (``boards/``, ``hls_templates/``, ``flows/``). A wheel
ships them as data files under ``<prefix>/share/qfx/<kind>/`` (see ``[tool.setuptools.data-files]``
in ``pyproject.toml``); :func:`resource_dir` finds them in this order:

1. the data files installed with the *imported* copy of qfx: the ``qfx`` distribution whose
   RECORD lists the ``qfx/__init__.py`` that is actually imported (so a stale install elsewhere
   on ``sys.path`` is never used), at the location its RECORD gives, or next to the package for
   ``pip install --target`` layouts;
2. the source tree the package was imported from (a checkout or an editable install).

Example:
    >>> from qfx.package_data import resource_dir
    >>> sorted(p.name for p in resource_dir("boards").glob("ultra96*.yaml"))
    ['ultra96v1.yaml', 'ultra96v2.yaml']
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from pathlib import Path, PurePosixPath

__all__ = ["RESOURCE_KINDS", "resource_dir"]

#: The data directories qfx ships, by name.
RESOURCE_KINDS: tuple[str, ...] = ("boards", "flows", "hls_templates")

#: Where the wheel installs the data, relative to the installation prefix.
_DATA_PREFIX: tuple[str, ...] = ("share", "qfx")

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(kind: str) -> Path:
    """Return the directory holding qfx's ``kind`` data files.

    Args:
        kind: one of ``"boards"``, ``"flows"``, ``"hls_templates"``.

    Raises:
        ValueError: ``kind`` is not one of those.
        FileNotFoundError: neither an installed copy nor a source tree has the directory.

    Example:
        >>> (resource_dir("boards") / "ultra96v2.yaml").is_file()
        True
    """
    if kind not in RESOURCE_KINDS:
        raise ValueError(
            f"unknown resource kind {kind!r}; allowed: {', '.join(RESOURCE_KINDS)}"
        )
    candidates: list[Path] = []
    installed = _installed_data_root()
    if installed is not None:
        candidates.append(installed / kind)
    source = _source_root()
    if source is not None:
        candidates.append(source / kind)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "no installed data and no source tree"
    raise FileNotFoundError(f"qfx data directory {kind!r} not found (looked in: {looked})")


def _source_root() -> Path | None:
    """The checkout qfx was imported from, if it was imported from one."""
    root = _PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


@functools.lru_cache(maxsize=1)
def _installed_data_root() -> Path | None:
    """``<prefix>/share/qfx`` of the installed distribution that provides this very package."""
    this_init = _PACKAGE_DIR / "__init__.py"
    for dist in importlib.metadata.distributions(name="qfx"):
        files = dist.files
        if not files:
            continue
        provides_this_copy = False
        data_root: Path | None = None
        for entry in files:
            parts = PurePosixPath(str(entry)).parts
            if parts == ("qfx", "__init__.py"):
                provides_this_copy = _same_file(Path(str(dist.locate_file(entry))), this_init)
            elif data_root is None:
                data_root = _data_root_of(dist, parts)
        if not provides_this_copy:
            continue
        if data_root is not None and data_root.is_dir():
            return data_root
        # ``pip install --target DIR`` moves the data next to the package but leaves RECORD's
        # relative paths pointing at the temporary prefix it installed into.
        beside = _PACKAGE_DIR.parent.joinpath(*_DATA_PREFIX)
        return beside if beside.is_dir() else None
    return None


def _data_root_of(dist: importlib.metadata.Distribution, parts: tuple[str, ...]) -> Path | None:
    """If RECORD entry ``parts`` is ``.../share/qfx/<kind>/...``, the ``share/qfx`` it lies in."""
    n = len(_DATA_PREFIX)
    for i in range(len(parts) - n):
        if parts[i : i + n] == _DATA_PREFIX and parts[i + n] in RESOURCE_KINDS:
            located = Path(str(dist.locate_file(PurePosixPath(*parts[: i + n]))))
            return Path(os.path.normpath(os.path.abspath(located)))
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False
