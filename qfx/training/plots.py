"""Training plots (matplotlib, Agg canvas, PNG): loss/accuracy/lr and learned ``int_bits``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qfx.atomic import atomic_open

__all__ = ["plot_history"]

# Up to this many quantizers share one axes with a legend; more get one small panel each.
_MAX_LINES_ONE_AXES = 10


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _plot_mapping_series(ax: Any, history: Sequence[dict[str, Any]], key: str) -> None:
    """One line per entry of the per-epoch mappings ``record[key]`` (widths, resources)."""
    from matplotlib.ticker import MaxNLocator

    names: list[str] = []
    for r in history:
        names += [n for n in r.get(key) or {} if n not in names]
    budget = next((r["budget"] for r in reversed(history) if r.get("budget")), {}) \
        if key == "resources" else {}
    many = len(names) > _MAX_LINES_ONE_AXES  # a legend of them would cover the panel
    for n in names:
        pts = [(r["epoch"], r[key][n]) for r in history if n in (r.get(key) or {})]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if many:  # each a faint line; the mean below carries the label
            ax.plot(xs, ys, color="tab:gray", alpha=0.35, linewidth=0.8)
            continue
        (line,) = ax.plot(xs, ys, marker=".", label=n)
        if n in budget:  # the training budget of that resource, dashed in its colour
            ax.axhline(budget[n], color=line.get_color(), linestyle="--", linewidth=1,
                       label=f"{n} budget")
    if many:
        mean = [(r["epoch"], sum(r[key].values()) / len(r[key])) for r in history if r.get(key)]
        ax.plot([p[0] for p in mean], [p[1] for p in mean], marker=".", color="tab:blue",
                linewidth=2, label=f"mean of {len(names)}")
    ax.set_title("learned widths (mean bits)" if key == "widths" else "estimated resources")
    ax.set_xlabel("epoch")
    if key == "resources":
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if names:
        ax.legend(fontsize="x-small")


def plot_history(
    history: Sequence[dict[str, Any]],
    path: str | Path,
    *,
    initial_int_bits: Mapping[str, float] | None = None,
) -> Path:
    """Write a PNG of loss, accuracy and learning rate vs epoch, and each quantizer's learned
    ``int_bits`` vs epoch (one line per quantizer, or small multiples when there are many);
    records with ``widths`` / ``resources`` (budgeted training) add a panel for each (with the
    record's ``budget`` dashed).

    ``history`` is :func:`qfx.training.train`'s (``TrainResult.history``);
    ``initial_int_bits`` (``TrainResult.metadata["initial_int_bits"]``), if given, is drawn
    as epoch 0 so the curves start at the calibrated formats. Returns ``path``.

    Example:
        >>> h = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.1, "train_acc": 0.5,
        ...       "test_acc": 0.4, "lr": 0.01, "int_bits": {"q": 3}}]
        >>> import tempfile
        >>> plot_history(h, Path(tempfile.mkdtemp()) / "history.png").name
        'history.png'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot path must end in .png, got {path}")
    if not history:
        raise ValueError("cannot plot an empty history")
    names: list[str] = []
    for r in history:
        for n in r.get("int_bits") or {}:
            if n not in names:
                names.append(n)
    grid = len(names) > _MAX_LINES_ONE_AXES
    cols = 5 if len(names) <= 40 else 8  # ResNet-20 has ~140 quantizers: keep the page short
    q_rows = math.ceil(len(names) / cols) if grid else (1 if names else 0)
    q_height = (2.0 if cols == 5 else 1.6) * q_rows if grid else 4.0 * q_rows
    # Own Figure + Agg canvas: no pyplot global state, no GUI backend needed.
    fig = Figure(figsize=(15, 3.8 + q_height), layout="constrained")
    FigureCanvasAgg(fig)
    if names:
        top, bottom = fig.subfigures(2, 1, height_ratios=[3.8, q_height])
    else:
        top, bottom = fig, None
    extra = [k for k in ("widths", "resources") if any(r.get(k) for r in history)]
    ax_loss, ax_acc, ax_lr, *ax_extra = top.subplots(1, 3 + len(extra))
    for ax, key in zip(ax_extra, extra, strict=True):  # learned widths under a budget
        _plot_mapping_series(ax, history, key)
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        ax_loss.plot(*_series(history, key), marker=".", label=label)
    for key, label in (("train_acc", "train"), ("test_acc", "test")):
        ax_acc.plot(*_series(history, key), marker=".", label=label)
    ax_lr.plot(*_series(history, "lr"), marker=".", color="tab:gray")
    for ax, title in ((ax_loss, "cross-entropy loss"), (ax_acc, "accuracy"),
                      (ax_lr, "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_loss.legend()
    ax_acc.legend()

    first_epoch = min(r["epoch"] for r in history)

    def bits_of(name: str) -> tuple[list[int], list[float]]:
        pts = [(r["epoch"], r["int_bits"][name]) for r in history
               if name in (r.get("int_bits") or {})]
        if initial_int_bits and name in initial_int_bits and first_epoch == 1:
            pts.insert(0, (0, initial_int_bits[name]))
        return [p[0] for p in pts], [p[1] for p in pts]

    def style(ax: Any, values: list[float], small: bool) -> None:
        # Integer ticks with at least one bit of margin, so a flat line reads as "I = 3".
        if values:
            ax.set_ylim(math.floor(min(values)) - 0.5, math.ceil(max(values)) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        if small:
            ax.tick_params(labelsize="x-small")

    if bottom is not None:
        bottom.suptitle("learned integer bits I per quantizer (per-channel: mean) vs epoch")
    if names and not grid:
        ax = bottom.subplots()
        every: list[float] = []
        for n in names:
            xs, ys = bits_of(n)
            every += ys
            ax.plot(xs, ys, marker="o", markersize=3, drawstyle="steps-post", label=n)
        ax.set_xlabel("epoch")
        ax.set_ylabel("int_bits")
        style(ax, every, small=False)
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    elif grid:
        axes = bottom.subplots(q_rows, cols, squeeze=False).ravel()
        for ax, n in zip(axes[: len(names)], names, strict=True):
            xs, ys = bits_of(n)
            ax.plot(xs, ys, marker=".", drawstyle="steps-post")
            ax.set_title(n if len(n) <= 36 else "…" + n[-35:], fontsize="small")
            style(ax, ys, small=True)
        for ax in axes[len(names):]:
            ax.set_visible(False)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=90)
    return path
