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

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "staging_dir",
           "swap_into_place", "temp_beside", "user_mode"]


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
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def swap_into_place(work: Path, target: Path) -> None:
    """Rename the finished folder ``work`` to ``target``, replacing an old ``target`` only once
    the new one is complete (the old one is restored if the rename fails)."""
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
