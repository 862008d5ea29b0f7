"""Hardware resource estimates and their check against a board's budget.

A :class:`ResourceEstimate` holds LUT, FF, DSP, BRAM18K and URAM counts and a latency in clock
cycles (the HLS exporter fills it per layer from the frozen IR and sums the layers). A
:class:`ResourceBudget` is what a board offers: a board's ``resources`` (from its YAML file) is
one, and :meth:`ResourceBudget.from_board` gives all of it or a fraction kept as headroom.
Estimates are estimates: the report labels them so; only synthesis gives real numbers.

Example:
    >>> from qfx.backends.hls.budget import ResourceEstimate
    >>> est = ResourceEstimate(lut=30_000, ff=40_000, dsp=412, bram18k=100, latency_cycles=5000)
    >>> est.fits("ultra96")
    False
    >>> est.over_budget("ultra96")
    ['DSP 412 > 360 on ultra96v2']
    >>> round(est.utilisation("ultra96")["LUT"], 3)
    0.425
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from qfx.backends.hls.boards import Board

__all__ = ["RESOURCE_NAMES", "ResourceBudget", "ResourceEstimate"]

#: Resource kinds, in report order, as they are spelled in reports and messages.
RESOURCE_NAMES: tuple[str, ...] = ("LUT", "FF", "DSP", "BRAM18K", "URAM")
_FIELDS: tuple[str, ...] = ("lut", "ff", "dsp", "bram18k", "uram")


def _check_count(owner: str, key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}.{key} must be a non-negative int, got {value!r}")


@dataclass(frozen=True)
class ResourceBudget:
    """The resources available for a design: a board's device (``Board.resources``), or a
    fraction of it. ``name`` labels the budget in messages; two budgets with the same counts
    are equal whatever their names.

    Example:
        >>> budget = ResourceBudget.from_board("ultra96", fraction=0.5)
        >>> budget.name, budget.dsp, budget.bram18k
        ('ultra96v2 (50%)', 180, 216)
        >>> ResourceBudget("kv260", lut=117120, ff=234240, dsp=1248, bram18k=288, uram=64).bram36
        144
    """

    name: str = field(compare=False)
    lut: int
    ff: int
    dsp: int
    bram18k: int
    uram: int

    def __post_init__(self) -> None:
        for key in _FIELDS:
            _check_count("ResourceBudget", key, getattr(self, key))

    @classmethod
    def from_board(cls, board: Board | str, fraction: float = 1.0) -> ResourceBudget:
        """The budget of ``board`` (a :class:`Board` or a name), each count times ``fraction``
        (rounded down), e.g. ``0.8`` to keep 20 % headroom for routing."""
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not math.isfinite(fraction)
            or not 0 < fraction <= 1
        ):
            raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
        board = _board(board)
        r = board.resources
        name = board.name if fraction == 1 else f"{board.name} ({fraction:.0%})"
        return cls(
            name=name,
            lut=math.floor(r.lut * fraction),
            ff=math.floor(r.ff * fraction),
            dsp=math.floor(r.dsp * fraction),
            bram18k=math.floor(r.bram18k * fraction),
            uram=math.floor(r.uram * fraction),
        )

    @property
    def bram36(self) -> int:
        """Number of 36 Kb block RAMs (each splits into two BRAM18K)."""
        return self.bram18k // 2

    def as_dict(self) -> dict[str, int]:
        """The counts keyed by :data:`RESOURCE_NAMES` (the report's column names)."""
        return {name: getattr(self, key) for name, key in zip(RESOURCE_NAMES, _FIELDS, strict=True)}


BudgetLike = Union["Board", ResourceBudget, str]


@dataclass(frozen=True)
class ResourceEstimate:
    """Estimated resources of a design (or of one layer) and its latency in clock cycles.

    ``a + b`` adds the resources; the latency is the sum when both are known (layers that run
    one after the other), else ``None``.

    Example:
        >>> a = ResourceEstimate(lut=100, dsp=2, latency_cycles=10)
        >>> b = ResourceEstimate(lut=50, bram18k=1, latency_cycles=5)
        >>> (a + b).as_dict(), (a + b).latency_cycles
        ({'LUT': 150, 'FF': 0, 'DSP': 2, 'BRAM18K': 1, 'URAM': 0}, 15)
    """

    lut: int = 0
    ff: int = 0
    dsp: int = 0
    bram18k: int = 0
    uram: int = 0
    latency_cycles: int | None = None

    def __post_init__(self) -> None:
        for key in _FIELDS:
            _check_count("ResourceEstimate", key, getattr(self, key))
        if self.latency_cycles is not None:
            _check_count("ResourceEstimate", "latency_cycles", self.latency_cycles)

    def __add__(self, other: ResourceEstimate) -> ResourceEstimate:
        if not isinstance(other, ResourceEstimate):
            return NotImplemented
        latency = (
            None if self.latency_cycles is None or other.latency_cycles is None
            else self.latency_cycles + other.latency_cycles
        )
        sums = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
                if f.name in _FIELDS}
        return ResourceEstimate(**sums, latency_cycles=latency)

    def as_dict(self) -> dict[str, int]:
        """The resource counts keyed by :data:`RESOURCE_NAMES` (latency not included)."""
        return {name: getattr(self, key) for name, key in zip(RESOURCE_NAMES, _FIELDS, strict=True)}

    def latency_us(self, clock_mhz: float) -> float | None:
        """The latency in microseconds at ``clock_mhz`` (``None`` when the latency is unknown).

        Example:
            >>> ResourceEstimate(latency_cycles=2000).latency_us(200)
            10.0
        """
        if (
            isinstance(clock_mhz, bool)
            or not isinstance(clock_mhz, (int, float))
            or not math.isfinite(clock_mhz)
            or clock_mhz <= 0
        ):
            raise ValueError(f"clock_mhz must be a positive number, got {clock_mhz!r}")
        return None if self.latency_cycles is None else self.latency_cycles / clock_mhz

    def utilisation(self, board: BudgetLike) -> dict[str, float]:
        """Each resource as a fraction of the budget (1.0 = all of it; ``inf`` when the board
        has none of a resource the estimate needs, 0.0 when it needs none).

        Example:
            >>> ResourceEstimate(dsp=180).utilisation("ultra96")["DSP"]
            0.5
        """
        budget = _budget(board).as_dict()
        out: dict[str, float] = {}
        for name, used in self.as_dict().items():
            have = budget[name]
            out[name] = used / have if have else (0.0 if used == 0 else math.inf)
        return out

    def over_budget(self, board: BudgetLike) -> list[str]:
        """One message per resource the estimate exceeds, like ``"DSP 412 > 360 on ultra96v2"``.

        Example:
            >>> ResourceEstimate(uram=4).over_budget("ultra96")
            ['URAM 4 > 0 on ultra96v2']
        """
        budget = _budget(board)
        have = budget.as_dict()
        return [
            f"{name} {used} > {have[name]} on {budget.name}"
            for name, used in self.as_dict().items()
            if used > have[name]
        ]

    def fits(self, board: BudgetLike) -> bool:
        """True when no resource exceeds the budget.

        Example:
            >>> ResourceEstimate(lut=51_444, dsp=126, bram18k=212).fits("ultra96")
            True
        """
        return not self.over_budget(board)


def _board(board: Board | str) -> Board:
    # Imported here: qfx.backends.hls.boards imports this module (a board's resources are a
    # ResourceBudget).
    from qfx.backends.hls.boards import load_board

    return load_board(board)


def _budget(board: BudgetLike) -> ResourceBudget:
    if isinstance(board, ResourceBudget):
        return board
    return ResourceBudget.from_board(board)
