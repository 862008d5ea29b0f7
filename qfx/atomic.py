"""Atomic writes: nothing qfx writes is ever seen half-written, and a failure leaves no trace.

A file is written to a temp file in the target's folder and renamed over the target in one
step (``os.replace``); a folder is built in a temp folder beside the target and swapped in.
Temp files and folders get the modes a plain ``open()`` / ``mkdir()`` would give (the user's
umask), not ``mkstemp``'s owner-only 0600. This module imports nothing of qfx: every layer
uses it.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "a" / "note.txt"
    >>> atomic_write_text(p, "hello")
    >>> p.read_text()
    'hello'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["FOLDER_MARKERS", "atomic_open", "atomic_write_bytes", "atomic_write_text",
           "check_replaceable", "check_replaceable_file", "is_qfx_file", "is_qfx_folder",
           "staging_dir", "swap_into_place", "temp_beside", "user_mode"]

#: The rule "is this ours?" (the one place that decides what ``--force`` may delete): a folder
#: qfx wrote holds one of these files, a JSON object whose ``"format"`` is the value (an HLS
#: project's manifest, a flow's summary, the marker of an hls4ml project qfx built).
FOLDER_MARKERS: dict[str, str] = {"project.json": "qfx-hls-project", "flow.json": "qfx-flow",
                                  "qfx-hls4ml.json": "qfx-hls4ml-project"}
#: ``"format"`` of the JSON inside a frozen model (``qfx.ir.serialize``).
FROZEN_FORMAT = "qfx-frozen-graph"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def user_mode(directory: bool = False) -> int:
    """The mode a plain ``open()`` (0666) or ``mkdir()`` (0777) gives under the umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def temp_beside(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """Create a temp file in ``path``'s folder (created if needed); returns (fd, name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.chmod(tmp, user_mode())
    return fd, tmp


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temp file next to ``path``; on success it replaces ``path`` in one step, on any
    error (or Ctrl-C) it is removed and ``path`` is untouched."""
    path = Path(path)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None and tmp in str(err):
            # the user knows the file by its name, not by the temp file beside it
            raise type(err)(err.errno, err.strerror, str(path)) from None
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def staging_dir(target: Path, tag: str = "tmp") -> Iterator[Path]:
    """A fresh temp folder beside ``target`` (so a rename into place never crosses file
    systems), removed with whatever is left in it when the block ends."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.{tag}-", dir=target.parent))
    try:
        yield stage
    except OSError as err:
        # the user asked for ``target``: name the file there, never the temp folder
        raise _in_target(err, stage, target) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _in_target(err: OSError, stage: Path, target: Path) -> OSError:
    """``err`` with every path inside ``stage`` shown at its place inside ``target``."""
    def user(path: object) -> object:
        return str(path).replace(str(stage), str(target)) if path is not None else None

    if err.errno is None:
        return type(err)(*(user(a) if isinstance(a, str) else a for a in err.args))
    return type(err)(err.errno, err.strerror, user(err.filename), None, user(err.filename2))


def _json_format(path: Path) -> object:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc.get("format") if isinstance(doc, dict) else None


def is_qfx_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is an empty folder or one qfx wrote (a marker of
    :data:`FOLDER_MARKERS` with the right ``"format"``); a symbolic link never is.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> is_qfx_folder(d), (d / "notes.txt").write_text("mine"), is_qfx_folder(d)
        (True, 4, False)
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    if not any(path.iterdir()):
        return True
    return any(_json_format(path / name) == fmt for name, fmt in FOLDER_MARKERS.items()) or \
        _legacy_flow_summary(path / "flow.json")


def _legacy_flow_summary(path: Path) -> bool:
    """A ``flow.json`` of a qfx before the ``"format"`` key (name, ok, stages, criteria)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and {"name", "ok", "stages", "criteria"} <= set(doc)


def is_qfx_file(path: str | os.PathLike[str], kind: str = FROZEN_FORMAT) -> bool:
    """True when ``path`` is a file of ``kind`` that qfx writes: ``"qfx-frozen-graph"`` (a
    ``.npz`` whose ``__graph__`` JSON says so), ``"onnx"`` (an ``.onnx`` file that starts like
    an ONNX model, ``ir_version`` first) or ``"json"`` (any ``.json`` file qfx may rewrite)."""
    import json

    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    if kind == "onnx":
        with open(path, "rb") as f:
            return path.suffix == ".onnx" and f.read(1) == b"\x08"
    if kind == FROZEN_FORMAT:
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as data:
                doc = json.loads(bytes(data["__graph__"]).decode())
        except Exception:  # noqa: BLE001 - anything unreadable is not ours
            return False
        return isinstance(doc, dict) and doc.get("format") == FROZEN_FORMAT
    return False


def check_replaceable(path: str | os.PathLike[str], *, force: bool) -> None:
    """Raise unless the folder ``path`` may be (re)written: it does not exist, or ``force`` is
    set and it is a folder qfx wrote or an empty one (:func:`is_qfx_folder`). The errors are
    one line naming the folder (``FileExistsError``).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "thesis.tex").write_text("years of work")
        >>> check_replaceable(d, force=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileExistsError: ... is not a folder qfx wrote ...
    """
    path = Path(path).expanduser().absolute()
    if not path.exists() and not path.is_symlink():
        return
    if not force:
        raise FileExistsError(f"{path} exists; pass force=True (--force) to replace it")
    if path.is_symlink():
        raise FileExistsError(f"{path} is a symbolic link; refusing to replace it")
    if not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    if not is_qfx_folder(path):
        raise FileExistsError(
            f"{path} is not a folder qfx wrote (no qfx {', '.join(FOLDER_MARKERS)}) and not "
            "empty; refusing to replace it even with --force: choose another output folder")


def check_replaceable_file(path: str | os.PathLike[str], *, force: bool,
                           kind: str = FROZEN_FORMAT) -> None:
    """Raise unless the file ``path`` may be written: it does not exist, or ``force`` is set
    and it is a file of the same ``kind`` qfx writes (:func:`is_qfx_file`); one line naming
    the file."""
    path = Path(path).expanduser().absolute()
    if not path.exists() and not path.is_symlink():
        return
    if not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    if path.is_dir():
        raise FileExistsError(f"{path} is a folder, not a file")
    if not is_qfx_file(path, kind):
        what = "a frozen qfx model" if kind == FROZEN_FORMAT else f"a {kind} file qfx wrote"
        raise FileExistsError(f"{path} is not {what}; refusing to overwrite it even with "
                              "--force: choose another output file")


def swap_into_place(work: Path, target: Path) -> None:
    """Rename the finished folder ``work`` to ``target``, replacing an old ``target`` only once
    the new one is complete (the old one is restored if the rename fails). An existing
    ``target`` must be a folder qfx wrote or an empty one (:func:`check_replaceable`)."""
    check_replaceable(target, force=True)
    os.chmod(work, user_mode(directory=True))
    if not target.exists():
        os.replace(work, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(work, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
