"""FPGA boards qfx exports to: one YAML file per board in ``boards/`` (or a user's own file).

A board file gives the FPGA part, the Vivado board-file id, the processing system (Zynq
UltraScale+ ``zynq_ultra_ps_e`` or Zynq-7000 ``processing_system7``) and the PS ports the block
design uses, the default clock, the AXI DMA memory-map width and the device's resources::

    name: ultra96v2                      # lower-case, [a-z0-9][a-z0-9_-]*
    description: Avnet Ultra96-V2        # optional
    aliases: [ultra96, ultra96-v2]       # optional, matched case-insensitively like the name
    part: xczu3eg-sbva484-1-i
    board_part: avnet.com:ultra96v2:part0:1.2   # optional (null): needs board files installed
    board_connections: {}                # optional: connector -> board component (e.g. KV260)
    ps: zynq_ultra_ps_e                  # or processing_system7
    clock_mhz: 200
    ps_master_port: M_AXI_HPM0_FPD       # AXI-Lite control of the IP and the DMA
    ps_slave_port: S_AXI_HP0_FPD         # the DMA's path to DDR
    dma_data_width: 128                  # AXI DMA memory-map width (bits)
    resources: {lut: 70560, ff: 141120, dsp: 360, bram36: 216, bram18k: 432, uram: 0}

Unknown keys are errors (a typo must not silently fall back to a default). Built-in boards are
looked up by name or alias, case-insensitively; anything that looks like a path is read as a
user's board file.

Example:
    >>> from qfx.backends.hls.boards import load_board
    >>> board = load_board("Ultra96")
    >>> board.name, board.part, board.resources.dsp, board.resources.bram18k
    ('ultra96v2', 'xczu3eg-sbva484-1-i', 360, 432)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qfx.backends.hls.budget import ResourceBudget
from qfx.package_data import resource_dir

__all__ = [
    "PS_TYPES",
    "Board",
    "BoardError",
    "PsType",
    "format_board_table",
    "list_boards",
    "load_board",
]


class BoardError(ValueError):
    """A board name that is not known, or a board file that does not follow the schema."""


@dataclass(frozen=True)
class PsType:
    """What qfx knows about one kind of Zynq processing system.

    Attributes:
        ip: the Vivado IP name (``zynq_ultra_ps_e`` / ``processing_system7``).
        family: human-readable device family.
        master_ports: PS AXI master ports the block design may use for AXI-Lite control.
        slave_ports: PS AXI slave ports the DMA may use to reach DDR.
        dma_widths: memory-map data widths (bits) those slave ports support.
    """

    ip: str
    family: str
    master_ports: tuple[str, ...]
    slave_ports: tuple[str, ...]
    dma_widths: tuple[int, ...]


#: The processing systems a board may have, by Vivado IP name.
PS_TYPES: dict[str, PsType] = {
    "zynq_ultra_ps_e": PsType(
        ip="zynq_ultra_ps_e",
        family="Zynq UltraScale+ MPSoC",
        master_ports=("M_AXI_HPM0_FPD", "M_AXI_HPM1_FPD", "M_AXI_HPM0_LPD"),
        slave_ports=(
            "S_AXI_HP0_FPD", "S_AXI_HP1_FPD", "S_AXI_HP2_FPD", "S_AXI_HP3_FPD",
            "S_AXI_HPC0_FPD", "S_AXI_HPC1_FPD", "S_AXI_LPD",
        ),
        dma_widths=(32, 64, 128),
    ),
    "processing_system7": PsType(
        ip="processing_system7",
        family="Zynq-7000",
        master_ports=("M_AXI_GP0", "M_AXI_GP1"),
        slave_ports=("S_AXI_HP0", "S_AXI_HP1", "S_AXI_HP2", "S_AXI_HP3"),
        dma_widths=(32, 64),
    ),
}

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_BOARD_PART_RE = re.compile(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+){3}")
_CONNECTOR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_REQUIRED_KEYS = (
    "name", "part", "ps", "clock_mhz", "ps_master_port", "ps_slave_port", "dma_data_width",
    "resources",
)
_OPTIONAL_KEYS = ("description", "aliases", "board_part", "board_connections")
_RESOURCE_KEYS = ("lut", "ff", "dsp", "bram36", "bram18k", "uram")


@dataclass(frozen=True)
class Board:
    """One FPGA board: its part, processing system, default clock, DMA width and resources.

    Construct boards with :func:`load_board`; direct construction validates the same rules.

    Example:
        >>> b = load_board("pynq-z2")
        >>> b.ps, b.family, b.clock_mhz, b.clock_period_ns
        ('processing_system7', 'Zynq-7000', 100.0, 10.0)
    """

    name: str
    part: str
    ps: str
    clock_mhz: float
    ps_master_port: str
    ps_slave_port: str
    dma_data_width: int
    resources: ResourceBudget
    aliases: tuple[str, ...] = ()
    board_part: str | None = None
    board_connections: tuple[tuple[str, str], ...] = ()
    description: str = ""
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise BoardError(f"name {self.name!r} must match {_NAME_RE.pattern}")
        for alias in self.aliases:
            if not isinstance(alias, str) or not _NAME_RE.fullmatch(alias.lower()):
                raise BoardError(f"alias {alias!r} must match {_NAME_RE.pattern}")
        if not _PART_RE.fullmatch(self.part):
            raise BoardError(f"part {self.part!r} must match {_PART_RE.pattern}")
        if self.board_part is not None and not _BOARD_PART_RE.fullmatch(self.board_part):
            raise BoardError(
                f"board_part {self.board_part!r} must look like vendor:board:part0:version"
            )
        for connector, component in self.board_connections:
            if not _CONNECTOR_RE.fullmatch(connector) or not _BOARD_PART_RE.fullmatch(component):
                raise BoardError(
                    f"board_connections entry {connector!r}: {component!r} must map an "
                    "identifier to vendor:board:component:version"
                )
        if self.ps not in PS_TYPES:
            raise BoardError(f"ps {self.ps!r} is not one of: {', '.join(sorted(PS_TYPES))}")
        ps = PS_TYPES[self.ps]
        if self.ps_master_port not in ps.master_ports:
            raise BoardError(
                f"ps_master_port {self.ps_master_port!r} is not a {self.ps} master port; "
                f"allowed: {', '.join(ps.master_ports)}"
            )
        if self.ps_slave_port not in ps.slave_ports:
            raise BoardError(
                f"ps_slave_port {self.ps_slave_port!r} is not a {self.ps} slave port; "
                f"allowed: {', '.join(ps.slave_ports)}"
            )
        if (
            isinstance(self.dma_data_width, bool)
            or not isinstance(self.dma_data_width, int)
            or self.dma_data_width not in ps.dma_widths
        ):
            raise BoardError(
                f"dma_data_width {self.dma_data_width!r} is not supported by {self.ps}; "
                f"allowed: {', '.join(map(str, ps.dma_widths))}"
            )
        if (
            isinstance(self.clock_mhz, bool)
            or not isinstance(self.clock_mhz, (int, float))
            or not math.isfinite(self.clock_mhz)
            or not 0 < self.clock_mhz <= 1000
        ):
            raise BoardError(f"clock_mhz must be a number in (0, 1000], got {self.clock_mhz!r}")
        object.__setattr__(self, "clock_mhz", float(self.clock_mhz))
        object.__setattr__(self, "aliases", tuple(a.lower() for a in self.aliases))
        if not isinstance(self.resources, ResourceBudget):
            raise BoardError("resources must be a ResourceBudget")
        _check_bram18k(self.resources.bram18k)

    @property
    def family(self) -> str:
        """Device family of the board's processing system, e.g. ``"Zynq UltraScale+ MPSoC"``."""
        return PS_TYPES[self.ps].family

    @property
    def clock_period_ns(self) -> float:
        """The default clock period, 1000 / ``clock_mhz`` nanoseconds."""
        return 1000.0 / self.clock_mhz

    @property
    def names(self) -> tuple[str, ...]:
        """The name followed by the aliases, all lower-case."""
        return (self.name, *self.aliases)


def load_board(name_or_path: str | os.PathLike[str] | Board) -> Board:
    """Return a board by name or alias (case-insensitive), or read a user's board YAML file.

    A ``str`` that ends in ``.yaml``/``.yml`` or contains a path separator, and any
    ``os.PathLike``, is read as a file; a :class:`Board` is returned unchanged.

    Raises:
        BoardError: unknown board (the message lists the known ones), or a file that breaks the
            schema (missing key, unknown key, bad type or value).

    Example:
        >>> load_board("ULTRA96-V2").name
        'ultra96v2'
    """
    if isinstance(name_or_path, Board):
        return name_or_path
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(name_or_path):
        return _load_board_file(Path(name_or_path))
    if not isinstance(name_or_path, str):
        raise BoardError(
            f"board must be a name, a path or a Board, got {type(name_or_path).__name__}"
        )
    wanted = name_or_path.strip().lower()
    boards = list_boards()
    for board in boards:
        if wanted in board.names:
            return board
    known = ", ".join(
        board.name + (f" (aliases: {', '.join(board.aliases)})" if board.aliases else "")
        for board in boards
    )
    raise BoardError(
        f"unknown board {name_or_path!r}; known boards: {known}; or pass a board YAML file"
    )


def list_boards() -> list[Board]:
    """All built-in boards, sorted by name.

    Raises:
        BoardError: a built-in board file is invalid, or two boards share a name or alias.

    Example:
        >>> [b.name for b in list_boards()]
        ['kv260', 'pynq-z2', 'ultra96v1', 'ultra96v2', 'zcu104']
    """
    directory = resource_dir("boards")
    boards: list[Board] = []
    owner: dict[str, Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        board = _load_board_file(path)
        for name in board.names:
            if name in owner:
                raise BoardError(
                    f"board name or alias {name!r} is used by both {owner[name]} and {path}"
                )
            owner[name] = path
        boards.append(board)
    return sorted(boards, key=lambda b: b.name)


def format_board_table(boards: Sequence[Board]) -> str:
    """A plain-text table of ``boards``: name, part, LUT, FF, DSP, BRAM18K, URAM, clock, aliases.

    Example:
        >>> table = format_board_table([load_board("ultra96")])
        >>> table.splitlines()[1].split()[:4]
        ['ultra96v2', 'xczu3eg-sbva484-1-i', '70,560', '141,120']
    """
    header = ("name", "part", "LUT", "FF", "DSP", "BRAM18K", "URAM", "clock (MHz)", "aliases")
    rows = [header]
    for b in boards:
        r = b.resources
        rows.append((
            b.name, b.part, f"{r.lut:,}", f"{r.ff:,}", f"{r.dsp:,}", f"{r.bram18k:,}",
            f"{r.uram:,}", f"{b.clock_mhz:g}", ", ".join(b.aliases) or "-",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    left = {0, 1, 8}  # text columns; numbers are right-aligned
    lines = []
    for row in rows:
        cells = [
            cell.ljust(widths[i]) if i in left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# -- reading board files -------------------------------------------------------------------------


def _looks_like_path(value: object) -> bool:
    if not isinstance(value, str):
        return False
    return (
        value.lower().endswith((".yaml", ".yml"))
        or "/" in value
        or (os.sep != "/" and os.sep in value)
    )


def _load_board_file(path: Path) -> Board:
    if not path.is_file():
        raise BoardError(f"board file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise BoardError(f"board file {path}: not valid YAML: {problem}") from None
    try:
        return _board_from_mapping(data, source=path)
    except BoardError as exc:
        raise BoardError(f"board file {path}: {exc}") from None


def _board_from_mapping(data: Any, source: Path | None = None) -> Board:
    if not isinstance(data, Mapping):
        raise BoardError(f"must be a YAML mapping, got {type(data).__name__}")
    _check_keys(data, _REQUIRED_KEYS, _OPTIONAL_KEYS, where="")
    resources = data["resources"]
    if not isinstance(resources, Mapping):
        raise BoardError(f"key 'resources' must be a mapping, got {type(resources).__name__}")
    _check_keys(resources, ("lut", "ff", "dsp", "uram"), ("bram36", "bram18k"), "resources.")
    if "bram18k" not in resources and "bram36" not in resources:
        raise BoardError("missing key 'resources.bram18k' (or 'resources.bram36')")
    counts = {key: _int(resources, key, "resources.") for key in _RESOURCE_KEYS if key in resources}
    bram18k = counts.get("bram18k", 2 * counts.get("bram36", 0))
    if "bram36" in counts and bram18k != 2 * counts["bram36"]:
        raise BoardError(
            f"resources.bram18k ({bram18k}) must be twice resources.bram36 ({counts['bram36']})"
        )
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise BoardError("key 'aliases' must be a list of strings")
    connections = data.get("board_connections") or {}
    if not isinstance(connections, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in connections.items()
    ):
        raise BoardError("key 'board_connections' must map connector names to strings")
    clock = data["clock_mhz"]
    if isinstance(clock, bool) or not isinstance(clock, (int, float)):
        raise BoardError(f"key 'clock_mhz' must be a number, got {type(clock).__name__}")
    return Board(
        name=_str(data, "name"),
        part=_str(data, "part"),
        ps=_str(data, "ps"),
        clock_mhz=float(clock),
        ps_master_port=_str(data, "ps_master_port"),
        ps_slave_port=_str(data, "ps_slave_port"),
        dma_data_width=_int(data, "dma_data_width", ""),
        resources=_resources(data["name"], counts, bram18k),
        aliases=tuple(aliases),
        board_part=None if data.get("board_part") is None else _str(data, "board_part"),
        board_connections=tuple((k, v) for k, v in connections.items()),
        description="" if data.get("description") is None else _str(data, "description"),
        source=source,
    )


def _resources(name: str, counts: Mapping[str, int], bram18k: int) -> ResourceBudget:
    _check_bram18k(bram18k)
    return ResourceBudget(
        name=name, lut=counts["lut"], ff=counts["ff"], dsp=counts["dsp"], bram18k=bram18k,
        uram=counts["uram"],
    )


def _check_bram18k(bram18k: int) -> None:
    if bram18k % 2:
        raise BoardError(f"resources.bram18k must be even (two BRAM18K per BRAM36), got {bram18k}")


def _check_keys(
    data: Mapping[Any, Any], required: Sequence[str], optional: Sequence[str], where: str
) -> None:
    for key in required:
        if key not in data:
            raise BoardError(f"missing key '{where}{key}' (required: {', '.join(required)})")
    allowed = (*required, *optional)
    for key in data:
        if key not in allowed:
            raise BoardError(f"unknown key '{where}{key}'; allowed: {', '.join(allowed)}")


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise BoardError(f"key '{key}' must be a string, got {type(value).__name__}")
    return value


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BoardError(f"key '{where}{key}' must be an int, got {type(value).__name__}")
    if value < 0:
        raise BoardError(f"key '{where}{key}' must be non-negative, got {value}")
    return value
