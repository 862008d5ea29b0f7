r"""Host C++ toolchain: locate the ``ap_types`` headers, run g++, cache builds by content hash.

These helpers are shared by the ``ap_fixed`` oracle tests and the C-simulation harness. They never
go through a shell: every compiler invocation is a list ``argv``.

Example:
    >>> import subprocess
    >>> from qfx.csim.toolchain import ap_types_include_dir, cached_build
    >>> src = "#include <ap_fixed.h>\nint main() { ap_fixed<8, 3> x = 1.3; return x * 32; }\n"
    >>> exe = cached_build(src, include_dirs=[ap_types_include_dir()])
    >>> subprocess.run([exe]).returncode  # 1.3 truncated to a multiple of 1/32 is 41/32
    41
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from qfx.atomic import atomic_write_text

__all__ = [
    "DEFAULT_COMPILER",
    "DEFAULT_FLAGS",
    "CompileError",
    "CompileTimeout",
    "ap_types_include_dir",
    "build_key",
    "cached_build",
    "compile_cpp",
    "compile_parallel",
    "compiler_version",
    "default_cache_dir",
]

DEFAULT_COMPILER = "g++"
DEFAULT_FLAGS: tuple[str, ...] = ("-O1", "-std=c++14")
DEFAULT_TIMEOUT = 600.0

#: Relative location of the Xilinx ``ap_types`` headers inside the installed ``hls4ml`` package.
_AP_TYPES_RELPATH = Path("templates") / "vivado" / "ap_types"
#: How much of the compiler's stderr is repeated in an exception message (all of it is kept in
#: :attr:`CompileError.stderr`).
_MESSAGE_STDERR_CHARS = 4000


class CompileError(RuntimeError):
    """The C++ compiler failed (or could not be run).

    Attributes:
        cmd: the argv that was run.
        stderr: everything the compiler wrote to stderr.
        returncode: the compiler's exit status (``None`` if it never finished).
    """

    def __init__(
        self,
        message: str,
        *,
        cmd: Sequence[str] = (),
        stderr: str = "",
        returncode: int | None = None,
    ) -> None:
        self.cmd = list(cmd)
        self.stderr = stderr
        self.returncode = returncode
        full = message
        if stderr:
            tail = stderr[-_MESSAGE_STDERR_CHARS:]
            cut = "...\n" if len(stderr) > len(tail) else ""
            full = f"{message}\n--- compiler stderr ---\n{cut}{tail}"
        super().__init__(full)


class CompileTimeout(CompileError):
    """The C++ compiler ran longer than the allowed timeout and was killed."""


def ap_types_include_dir() -> Path:
    """Return the ``ap_types`` header folder shipped inside the installed ``hls4ml`` package.

    The package is located with :func:`importlib.util.find_spec`; ``hls4ml`` itself is not
    imported (importing it is slow).

    Example:
        >>> d = ap_types_include_dir()
        >>> (d / "ap_fixed.h").is_file()
        True

    Raises:
        RuntimeError: ``hls4ml`` is not installed or does not contain ``ap_fixed.h``.
    """
    try:
        spec = importlib.util.find_spec("hls4ml")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise RuntimeError(
            "qfx needs the ap_types headers shipped with hls4ml, but the 'hls4ml' package is not "
            "installed (pip install hls4ml)."
        )
    roots: list[Path] = []
    if spec.submodule_search_locations:
        roots.extend(Path(p) for p in spec.submodule_search_locations)
    elif spec.origin:
        roots.append(Path(spec.origin).parent)
    for root in roots:
        candidate = root / _AP_TYPES_RELPATH
        if (candidate / "ap_fixed.h").is_file():
            return candidate.resolve()
    searched = ", ".join(str(r / _AP_TYPES_RELPATH) for r in roots) or "<no package location>"
    raise RuntimeError(
        f"the installed hls4ml package has no ap_types headers (looked for ap_fixed.h in: "
        f"{searched})."
    )


@functools.cache
def compiler_version(compiler: str = DEFAULT_COMPILER) -> str:
    """Return the full ``<compiler> --version`` text (cached per process).

    Example:
        >>> compiler_version().splitlines()[0]  # doctest: +SKIP
        'g++ (Debian 12.2.0-14+deb12u1) 12.2.0'

    Raises:
        CompileError: the compiler cannot be run.
    """
    cmd = [compiler, "--version"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError as exc:
        raise CompileError(f"C++ compiler {compiler!r} not found on PATH", cmd=cmd) from exc
    except subprocess.TimeoutExpired as exc:
        raise CompileTimeout(f"{compiler} --version did not answer within 60 s", cmd=cmd) from exc
    if proc.returncode != 0:
        raise CompileError(
            f"{compiler} --version failed with exit status {proc.returncode}",
            cmd=cmd,
            stderr=proc.stderr,
            returncode=proc.returncode,
        )
    return proc.stdout.strip()


def compile_cpp(
    sources: Sequence[Path | str],
    output: Path | str,
    *,
    include_dirs: Iterable[Path | str] = (),
    flags: Sequence[str] = DEFAULT_FLAGS,
    timeout: float = DEFAULT_TIMEOUT,
    compiler: str = DEFAULT_COMPILER,
) -> Path:
    """Compile and link C++ ``sources`` into the executable ``output`` with g++.

    The compiler is run with a list argv (no shell); its output folder is created if needed.

    Example:
        >>> exe = compile_cpp([Path("tb.cpp")], Path("build/tb"),
        ...                   include_dirs=[ap_types_include_dir()])  # doctest: +SKIP

    Args:
        sources: C++ source files.
        output: path of the executable to write.
        include_dirs: folders passed as ``-I``.
        flags: extra compiler flags (default ``-O1 -std=c++14``).
        timeout: seconds before the compiler (and its children) are killed.
        compiler: the compiler driver to run.

    Returns:
        ``output`` as a :class:`~pathlib.Path`.

    Raises:
        CompileError: the compiler is missing or exits non-zero (``.stderr`` holds its output).
        CompileTimeout: the compiler ran longer than ``timeout`` seconds.
    """
    if not sources:
        raise ValueError("compile_cpp needs at least one source file")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, *flags]
    cmd += [f"-I{Path(d)}" for d in include_dirs]
    cmd += [str(Path(s)) for s in sources]
    cmd += ["-o", str(output)]
    try:
        # A new session lets a timeout kill the whole process group (g++ -> cc1plus, as, ld).
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise CompileError(f"C++ compiler {compiler!r} not found on PATH", cmd=cmd) from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        _, stderr = proc.communicate()
        raise CompileTimeout(
            f"compiling {', '.join(str(s) for s in sources)} took longer than {timeout:g} s; "
            "the compiler was killed",
            cmd=cmd,
            stderr=stderr or "",
        ) from exc
    except BaseException:
        # Ctrl-C (KeyboardInterrupt) or any other interruption: stop the compiler's whole process
        # group (g++ -> cc1plus, as, ld) before the caller removes its temporary files.
        _kill_group(proc)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise CompileError(
            f"{compiler} failed with exit status {proc.returncode} compiling "
            f"{', '.join(str(s) for s in sources)}",
            cmd=cmd,
            stderr=(stderr or "") + (stdout or ""),
            returncode=proc.returncode,
        )
    return output


def compile_parallel(
    units: Sequence[tuple[Sequence[Path | str], Path | str, Sequence[str]]],
    *,
    include_dirs: Iterable[Path | str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    compiler: str = DEFAULT_COMPILER,
    jobs: int | None = None,
) -> None:
    """Run several compiler commands (``(sources, output, flags)`` each) at most ``jobs`` at a
    time, each in its own process group; stops at the first failure.

    On a failure, a timeout or an interruption (Ctrl-C) every running compiler's whole process
    group is killed before the exception propagates, so the caller can remove its temporary
    outputs. Used to compile a testbench's translation units in parallel (``-c``) before linking.

    Example:
        >>> units = [(["a.cpp"], "a.o", ["-c"]), (["b.cpp"], "b.o", ["-c"])]
        >>> compile_parallel(units)  # doctest: +SKIP

    Raises:
        CompileError / CompileTimeout: as for :func:`compile_cpp`.
    """
    dirs = [f"-I{Path(d)}" for d in include_dirs]
    if jobs is None:
        try:
            jobs = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            jobs = os.cpu_count() or 1
    jobs = max(1, jobs)
    pending = list(units)
    running: list[tuple[subprocess.Popen[str], list[str], Sequence[Path | str], Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while pending or running:
            while pending and len(running) < jobs:
                sources, output, flags = pending.pop(0)
                Path(output).parent.mkdir(parents=True, exist_ok=True)
                cmd = [compiler, *flags, *dirs, *(str(Path(x)) for x in sources),
                       "-o", str(Path(output))]
                err = tempfile.TemporaryFile(mode="w+")
                try:
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=err, text=True,
                                            start_new_session=True)
                except FileNotFoundError as exc:
                    err.close()
                    raise CompileError(f"C++ compiler {compiler!r} not found on PATH",
                                       cmd=cmd) from exc
                running.append((proc, cmd, sources, err))
            for item in list(running):
                proc, cmd, sources, err = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                err.seek(0)
                text = err.read()
                err.close()
                if proc.returncode != 0:
                    raise CompileError(
                        f"{compiler} failed with exit status {proc.returncode} compiling "
                        f"{', '.join(str(x) for x in sources)}",
                        cmd=cmd, stderr=text, returncode=proc.returncode)
            if running:
                if time.monotonic() > deadline:
                    names = ", ".join(str(x) for _, _, srcs, _ in running for x in srcs)
                    raise CompileTimeout(f"compiling {names} took longer than {timeout:g} s; "
                                         "the compiler was killed", cmd=running[0][1])
                time.sleep(0.05)
    finally:
        for proc, _, _, err in running:
            if proc.poll() is None:
                _kill_group(proc)
            proc.wait()
            err.close()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the process group started for ``proc`` (falls back to the process alone)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):
        proc.kill()


def default_cache_dir() -> Path:
    """Return the build cache folder: ``$QFX_CACHE_DIR`` if set, else ``~/.cache/qfx/build``.

    Example:
        >>> default_cache_dir()  # doctest: +SKIP
        PosixPath('/home/me/.cache/qfx/build')
    """
    env = os.environ.get("QFX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "qfx" / "build"


def _dir_fingerprint(path: Path) -> list[list[object]]:
    """Name, size and mtime of the files directly inside ``path`` (cheap staleness check)."""
    try:
        entries = [e for e in os.scandir(path) if e.is_file()]
    except OSError:
        return []
    return sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in entries)


def build_key(
    source_text: str,
    *,
    include_dirs: Iterable[Path | str] = (),
    flags: Sequence[str] = DEFAULT_FLAGS,
    compiler: str = DEFAULT_COMPILER,
) -> str:
    """Return the sha256 content hash that names a build in the cache.

    It covers the source text, the flags, the compiler name and its ``--version`` text, and each
    include folder's resolved path together with the names, sizes and mtimes of the files directly
    inside it (so an upgraded header set is rebuilt).

    Example:
        >>> len(build_key("int main() {}"))
        64
    """
    dirs = [Path(d).expanduser().resolve() for d in include_dirs]
    payload = {
        "source": source_text,
        "flags": list(flags),
        "compiler": compiler,
        "compiler_version": compiler_version(compiler),
        "include_dirs": [[str(d), _dir_fingerprint(d)] for d in dirs],
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def cached_build(
    source_text: str,
    *,
    cache_dir: Path | str | None = None,
    include_dirs: Iterable[Path | str] = (),
    flags: Sequence[str] = DEFAULT_FLAGS,
    timeout: float = DEFAULT_TIMEOUT,
    compiler: str = DEFAULT_COMPILER,
) -> Path:
    """Compile a single-file C++ program, reusing a previous build of identical inputs.

    The source is written to ``<cache>/<sha256>/main.cpp`` and compiled to ``<cache>/<sha256>/main``
    only if that executable does not exist yet (see :func:`build_key` for what the hash covers).
    The compiler writes to a temporary name that is then renamed with :func:`os.replace`, so
    concurrent builders and interrupted builds never leave a half-written executable behind.

    Example:
        >>> exe = cached_build("int main() { return 0; }")
        >>> exe.name, exe.parent.parent == default_cache_dir()
        ('main', True)

    Args:
        source_text: the complete C++ program.
        cache_dir: cache root; default :func:`default_cache_dir`.
        include_dirs, flags, timeout, compiler: as for :func:`compile_cpp`.

    Returns:
        Path of the (possibly cached) executable.

    Raises:
        CompileError / CompileTimeout: as for :func:`compile_cpp`.
    """
    dirs = [Path(d).expanduser().resolve() for d in include_dirs]
    flags = tuple(flags)
    key = build_key(source_text, include_dirs=dirs, flags=flags, compiler=compiler)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    build_dir = root / key
    exe = build_dir / "main"
    if exe.is_file():
        return exe
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / "main.cpp"
    if not src.is_file() or src.read_text(encoding="utf-8") != source_text:
        atomic_write_text(src, source_text)
    fd, tmp_name = tempfile.mkstemp(dir=build_dir, prefix=".main.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        compile_cpp([src], tmp, include_dirs=dirs, flags=flags, timeout=timeout, compiler=compiler)
        os.replace(tmp, exe)
    finally:
        tmp.unlink(missing_ok=True)
    return exe
