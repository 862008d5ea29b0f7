"""``report.md``, ``report.json`` and ``report.png`` of an exported HLS project.

The report shows the board (name, part, clock), each layer's types and parallelism (reuse
factor, parallel units, multipliers) and the **estimated** DSP/LUT/FF/BRAM18K and latency
(cycles and microseconds at the board clock) against the board's budget, from
:func:`qfx.backends.hls.estimate.estimate_resources`. Every resource number is labelled as an
estimate: only synthesis (``vitis_hls -f build_prj.tcl``) reports real ones.

The Markdown is rendered from ``hls_templates/report.md.j2`` (Jinja, StrictUndefined); the PNG
is a bar chart of estimated utilisation per resource against the budget (matplotlib, Agg
canvas, no display needed).

Example:
    >>> import tempfile
    >>> from qfx.ir.graph import Graph
    >>> from qfx.backends.hls.estimate import estimate_resources
    >>> rep = estimate_resources(Graph(), board="ultra96")
    >>> paths = write_report(rep, tempfile.mkdtemp(), project_name="demo")
    >>> sorted(paths)
    ['json', 'md', 'png']
    >>> "estimate" in paths["md"].read_text()
    True
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import jinja2

from qfx.backends.hls.autofold import FoldResult
from qfx.backends.hls.estimate import ESTIMATE_NOTE, ResourceReport
from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.writer import templates_dir

__all__ = ["FOLD_PLOT", "REPORT_FILES", "plot_folding", "plot_utilisation",
           "render_report_markdown", "report_data", "text_environment", "write_report"]

#: File names the report writes into a project folder.
REPORT_FILES = {"md": "report.md", "json": "report.json", "png": "report.png"}
_TEMPLATE = "report.md.j2"
#: The plot of the candidate designs of ``reuse="auto"`` (written next to ``report.png``).
FOLD_PLOT = "report_fold.png"


def _thousands(value: Any) -> str:
    return f"{int(value):,}"


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pyrepr(value: Any) -> str:
    """A Python literal for a plain value (None, bool, int, finite float, str, or a tuple/list
    of those); anything else is refused, so no template can emit code from data."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, tuple):
        items = [_pyrepr(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_pyrepr(v) for v in value) + "]"
    raise ValueError(f"cannot write {type(value).__name__} {value!r} as a Python literal")


def text_environment() -> jinja2.Environment:
    """The Jinja environment of the project-level templates (``report.md.j2``,
    ``README.md.j2``, ``driver.py.j2``): StrictUndefined, with filters ``thousands``, ``pct``,
    ``num`` and ``pyrepr`` (a Python literal of a plain value; anything else is refused).

    Example:
        >>> env = text_environment()
        >>> env.undefined is jinja2.StrictUndefined
        True
        >>> print(env.from_string("x = {{ v|pyrepr }}").render(v='a"; import os'))
        x = 'a"; import os'
    """
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["thousands"] = _thousands
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["pyrepr"] = _pyrepr
    return env


def _project_info(project: HLSProject | None, project_name: str | None) -> dict[str, Any]:
    if project is None:
        return {"name": project_name or "qfx_model", "top": None, "axis_top": None,
                "axis_width": None, "io": None}
    return {"name": project.project_name, "top": project.top, "axis_top": project.axis_top,
            "axis_width": project.axis_width, "io": project.io}


def report_data(report: ResourceReport, project: HLSProject | None = None, *,
                project_name: str | None = None, fold: FoldResult | None = None
                ) -> dict[str, Any]:
    """The content of ``report.json``: the estimate (:meth:`ResourceReport.as_dict`) plus the
    project's names.

    Example:
        >>> from qfx.ir.graph import Graph
        >>> from qfx.backends.hls.estimate import estimate_resources
        >>> d = report_data(estimate_resources(Graph(), board="ultra96"), project_name="p")
        >>> d["kind"], d["project"]["name"], d["board"]["part"]
        ('estimate', 'p', 'xczu3eg-sbva484-1-i')
    """
    data = report.as_dict()
    data["format"] = "qfx-hls-report"
    data["version"] = 1
    data["project"] = _project_info(project, project_name)
    if fold is not None:
        data["autofold"] = fold.as_dict()
    return data


def render_report_markdown(report: ResourceReport, project: HLSProject | None = None, *,
                           project_name: str | None = None,
                           plot: str | None = REPORT_FILES["png"],
                           fold: FoldResult | None = None) -> str:
    """``report.md``: board, per-layer types and parallelism, estimated resources and latency
    against the budget (every number labelled as an estimate).

    Example:
        >>> from qfx.ir.graph import Graph
        >>> from qfx.backends.hls.estimate import estimate_resources
        >>> md = render_report_markdown(estimate_resources(Graph(), board="ultra96"))
        >>> "DSP (estimate)" in md
        True
    """
    budget = report.budget.as_dict() if report.budget is not None else {}
    util = report.utilisation()
    resources = []
    for name, used in report.total.as_dict().items():
        have = budget.get(name)
        if name == "URAM" and not used and not have:
            continue  # boards without UltraRAM: keep the table short
        resources.append({"name": name, "used": used, "budget": have,
                          "util": util.get(name), "over": have is not None and used > have})
    layers = []
    for r in report.layers:
        layers.append({
            "node": r.node, "op": r.op, "input": r.input_type, "output": r.output_type,
            "weight": r.weight_type or "-", "acc": r.acc_type or "-", "n_mults": r.n_mults,
            "parallel": r.parallel, "multipliers": r.multipliers, "impl": r.mult_impl,
            "dsp_per_mult": r.dsp_per_mult, "ii": r.ii, "dsp": r.dsp, "lut": r.lut, "ff": r.ff,
            "bram18k": r.bram18k, "cycles": r.latency_cycles,
            "us": (None if report.clock_mhz is None
                   else r.estimate.latency_us(report.clock_mhz)),
            "notes": "; ".join(r.notes) or "-",
        })
    ctx = {
        "project": _project_info(project, project_name), "note": ESTIMATE_NOTE,
        "board": report.board, "clock_mhz": report.clock_mhz, "reuse": report.reuse,
        "io": report.io, "model": report.model, "resources": resources, "layers": layers,
        "total": report.total, "latency_cycles": report.latency_cycles,
        "latency_us": report.latency_us, "interval_cycles": report.interval_cycles,
        "throughput": report.throughput_per_s, "over": report.over_budget(),
        "fits": report.fits, "plot": plot, "model_notes": list(report.notes),
        "fold": None if fold is None else {**fold.as_dict(), "plot": FOLD_PLOT},
    }
    return text_environment().get_template(_TEMPLATE).render(ctx)


def plot_utilisation(report: ResourceReport, path: str | os.PathLike[str]) -> Path:
    """A PNG bar chart of the estimated utilisation of each resource against the board's
    budget (100 %); bars over budget are red. Without a board, the absolute estimates.

    Example:
        >>> import tempfile
        >>> from qfx.ir.graph import Graph
        >>> from qfx.backends.hls.estimate import estimate_resources
        >>> p = plot_utilisation(estimate_resources(Graph(), board="ultra96"),
        ...                      Path(tempfile.mkdtemp()) / "u.png")
        >>> p.read_bytes()[:4] == b"\\x89PNG"
        True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot path must end in .png, got {path}")
    used = report.total.as_dict()
    budget = report.budget.as_dict() if report.budget is not None else {}
    names = [n for n in used if not (n == "URAM" and not used[n] and not budget.get(n))]
    fig = Figure(figsize=(7.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if budget:
        util = report.utilisation()
        values = [min(100 * util[n], 1e9) for n in names]
        colors = ["#c0392b" if used[n] > budget[n] else "#2e86c1" for n in names]
        bars = ax.barh(names, values, color=colors)
        ax.axvline(100, color="black", linestyle="--", linewidth=1)
        top = max([*values, 100.0])
        ax.set_xlim(0, top * 1.25)
        for bar, n, v in zip(bars, names, values, strict=True):
            ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2,
                    f"{used[n]:,} / {budget[n]:,} ({v:.1f}%)", va="center", fontsize=8)
        ax.set_xlabel("estimated utilisation (% of the board's budget; dashed: 100%)")
        board = report.board
        assert board is not None
        title = f"Estimated utilisation on {board.name} ({board.part})"
    else:
        values = [float(used[n]) for n in names]
        ax.barh(names, values, color="#2e86c1")
        ax.set_xlabel("estimated count")
        title = "Estimated resources (no board budget)"
    ax.invert_yaxis()
    ax.set_title(f"{title}\nestimate, not a synthesis result; reuse {report.reuse}",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_folding(fold: FoldResult, path: str | os.PathLike[str]) -> Path:
    """A PNG of a few candidate designs of the ``reuse="auto"`` search: estimated throughput
    against LUT and against DSP, the budget dashed, the chosen design marked (a star)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    budget = fold.as_dict()["budget"]
    fig = Figure(figsize=(8.0, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    pts = [p for p in fold.points if p.fps is not None]
    for k, (key, label) in enumerate((("lut", "LUT"), ("dsp", "DSP"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for fits, color, name in ((True, "#2e86c1", "fits"), (False, "#c0392b", "over budget")):
            sel = [p for p in pts if p.fits == fits and not p.chosen]
            if sel:
                ax.scatter([getattr(p, key) for p in sel], [p.fps for p in sel], s=18,
                           color=color, label=name)
        for p in pts:
            if p.chosen:
                ax.scatter([getattr(p, key)], [p.fps], s=160, marker="*", color="#f39c12",
                           edgecolor="black", zorder=3, label="chosen")
        if budget.get(key):
            ax.axvline(budget[key], color="black", linestyle="--", linewidth=1)
        ax.set_xlabel(f"{label} (estimate; dashed: budget)")
        ax.set_ylabel("inferences/s (estimate)")
        if pts and min(p.fps for p in pts) > 0:
            ax.set_yscale("log")
        if k == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"reuse=auto: candidate designs ({fold.report.io}), estimate", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_report(report: ResourceReport, directory: str | os.PathLike[str],
                 project: HLSProject | None = None, *,
                 project_name: str | None = None,
                 fold: FoldResult | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``directory`` (created if
    needed); returns their paths keyed ``"md"``, ``"json"``, ``"png"`` (and ``"fold"``:
    :data:`FOLD_PLOT`, with ``fold``, the result of ``reuse="auto"``).

    ``project`` (or just ``project_name``) names the project in the report.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {k: directory / v for k, v in REPORT_FILES.items()}
    paths["md"].write_text(
        render_report_markdown(report, project, project_name=project_name, fold=fold),
        encoding="utf-8")
    paths["json"].write_text(
        json.dumps(report_data(report, project, project_name=project_name, fold=fold),
                   indent=2) + "\n",
        encoding="utf-8")
    plot_utilisation(report, paths["png"])
    if fold is not None:
        paths["fold"] = plot_folding(fold, directory / FOLD_PLOT)
    return paths
