"""Read Vitis HLS / Vivado HLS synthesis reports and set them beside qfx's estimates.

After ``build_prj.tcl`` ran C synthesis, ``<project>_prj/solution1/syn/report/<top>_csynth.xml``
holds what the tool reports: resources (``AreaEstimates/Resources``; DSPs are ``DSP`` in Vitis
and ``DSP48E`` in Vivado HLS), latency and interval in cycles, target and estimated clock.
These are the tool's post-synthesis figures (still before place and route).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from qfx.backends.hls.budget import ResourceEstimate
from qfx.backends.hls.tcl import HLS_SOLUTION, hls_project_dir

__all__ = ["SynthesisReport", "read_csynth_xml", "find_csynth_report", "compare_markdown"]


@dataclass(frozen=True)
class SynthesisReport:
    """What the HLS tool reported for one top function after C synthesis."""

    top: str
    part: str | None
    target_clock_ns: float | None
    estimated_clock_ns: float | None
    latency_best: int | None
    latency_worst: int | None
    interval_min: int | None
    interval_max: int | None
    resources: ResourceEstimate
    source: Path

    def as_dict(self) -> dict[str, object]:
        return {"top": self.top, "part": self.part, "target_clock_ns": self.target_clock_ns,
                "estimated_clock_ns": self.estimated_clock_ns,
                "latency_best": self.latency_best, "latency_worst": self.latency_worst,
                "interval_min": self.interval_min, "interval_max": self.interval_max,
                "resources": self.resources.as_dict(), "source": str(self.source)}


def _text(root: ET.Element, path: str) -> str | None:
    node = root.find(path)
    return None if node is None or node.text is None else node.text.strip()


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:  # "undef" for data-dependent loops
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def read_csynth_xml(path: str | Path) -> SynthesisReport:
    """Parse a ``<top>_csynth.xml`` report (Vitis HLS or Vivado HLS).

    Example:
        >>> read_csynth_xml("missing_csynth.xml")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no HLS synthesis report at missing_csynth.xml
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no HLS synthesis report at {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path} is not a readable HLS synthesis report: {err}") from None
    res = root.find("./AreaEstimates/Resources")
    if res is None:
        raise ValueError(f"{path} has no AreaEstimates/Resources section (not a csynth report?)")

    def count(*tags: str) -> int:
        for tag in tags:
            value = _int(_text(res, tag))
            if value is not None:
                return value
        return 0

    resources = ResourceEstimate(
        lut=count("LUT"), ff=count("FF"), dsp=count("DSP", "DSP48E"),
        bram18k=count("BRAM_18K"), uram=count("URAM"),
        latency_cycles=_int(_text(root, "./PerformanceEstimates/SummaryOfOverallLatency/"
                                        "Worst-caseLatency")))
    lat = "./PerformanceEstimates/SummaryOfOverallLatency/"
    return SynthesisReport(
        top=_text(root, "./UserAssignments/TopModelName") or path.name.split("_csynth")[0],
        part=_text(root, "./UserAssignments/Part"),
        target_clock_ns=_float(_text(root, "./UserAssignments/TargetClockPeriod")),
        estimated_clock_ns=_float(_text(
            root, "./PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod")),
        latency_best=_int(_text(root, lat + "Best-caseLatency")),
        latency_worst=_int(_text(root, lat + "Worst-caseLatency")),
        interval_min=_int(_text(root, lat + "Interval-min")),
        interval_max=_int(_text(root, lat + "Interval-max")),
        resources=resources, source=path)


def find_csynth_report(project_root: str | Path, project_name: str, top: str) -> Path | None:
    """Where ``build_prj.tcl`` leaves the synthesis report of ``top`` (None if not there)."""
    path = (Path(project_root) / hls_project_dir(project_name) / HLS_SOLUTION / "syn" /
            "report" / f"{top}_csynth.xml")
    return path if path.is_file() else None


def compare_markdown(estimate: ResourceEstimate, synth: SynthesisReport) -> str:
    """A markdown table: qfx's estimate beside the HLS tool's synthesis figures."""
    est, got = estimate.as_dict(), synth.resources.as_dict()
    rows = ["| resource | qfx estimate | HLS synthesis | synthesis / estimate |",
            "| --- | ---: | ---: | ---: |"]
    for key in est:
        ratio = f"{got[key] / est[key]:.2f}" if est[key] else "-"
        rows.append(f"| {key} | {est[key]} | {got[key]} | {ratio} |")
    lat_e = estimate.latency_cycles
    lat_s = synth.latency_worst
    rows.append(f"| latency (cycles) | {lat_e if lat_e is not None else '-'} | "
                f"{lat_s if lat_s is not None else '-'} | "
                f"{f'{lat_s / lat_e:.2f}' if lat_e and lat_s is not None else '-'} |")
    return "\n".join(rows)
