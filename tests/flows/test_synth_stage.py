"""The flow's synthesis stage and the csynth.xml reader.

These tests do NOT run Vitis HLS (it is not installed here): a stand-in ``vitis_hls`` on PATH
records how the flow calls the tool and writes a report in the tool's csynth.xml format, so
what is checked is qfx's side: the command line, where the report is looked for, how it is
parsed, and that it lands in the flow report beside the estimate.
"""

import json
import os
import stat
import sys
import textwrap

import pytest

from qfx.backends.hls.budget import ResourceEstimate
from qfx.backends.hls.synth_report import compare_markdown, read_csynth_xml
from qfx.flows.flow import load_flow, run_flow

CSYNTH = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <ReportVersion><Version>2023.2</Version></ReportVersion>
  <UserAssignments>
    <unit>ns</unit><ProductFamily>zynquplus</ProductFamily><Part>{part}</Part>
    <TopModelName>{top}</TopModelName><TargetClockPeriod>5.00</TargetClockPeriod>
  </UserAssignments>
  <PerformanceEstimates>
    <SummaryOfTimingAnalysis><unit>ns</unit>
      <EstimatedClockPeriod>3.650</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency><unit>clock cycles</unit>
      <Best-caseLatency>{lat}</Best-caseLatency><Average-caseLatency>{lat}</Average-caseLatency>
      <Worst-caseLatency>{lat}</Worst-caseLatency>
      <Interval-min>{ii}</Interval-min><Interval-max>{ii}</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><{dsp_tag}>{dsp}</{dsp_tag}><FF>6000</FF><LUT>11000</LUT>
      <BRAM_18K>6</BRAM_18K><URAM>0</URAM></Resources>
    <AvailableResources><BRAM_18K>432</BRAM_18K><{dsp_tag}>360</{dsp_tag}><FF>141120</FF>
      <LUT>70560</LUT><URAM>0</URAM></AvailableResources>
  </AreaEstimates>
</profile>
"""


def test_reads_vitis_and_vivado_hls_reports(tmp_path):
    vitis = tmp_path / "a_csynth.xml"
    vitis.write_text(CSYNTH.format(part="xczu3eg-sbva484-1-i", top="a", lat=1234, ii=1235,
                                   dsp_tag="DSP", dsp=42))
    r = read_csynth_xml(vitis)
    assert (r.top, r.part, r.latency_worst, r.interval_min) == ("a", "xczu3eg-sbva484-1-i",
                                                                 1234, 1235)
    assert r.resources.as_dict() == {"LUT": 11000, "FF": 6000, "DSP": 42, "BRAM18K": 6,
                                     "URAM": 0}
    assert r.estimated_clock_ns == 3.65 and r.target_clock_ns == 5.0
    old = tmp_path / "b_csynth.xml"  # Vivado HLS calls DSPs DSP48E; latency may be undef
    old.write_text(CSYNTH.format(part="xc7z020clg400-1", top="b", lat="undef", ii="undef",
                                 dsp_tag="DSP48E", dsp=7))
    r = read_csynth_xml(old)
    assert r.resources.dsp == 7 and r.latency_worst is None
    table = compare_markdown(ResourceEstimate(lut=10000, ff=5000, dsp=14, bram18k=6,
                                              latency_cycles=1000), r)
    assert "| DSP | 14 | 7 | 0.50 |" in table and "| latency (cycles) | 1000 | - | - |" in table
    bad = tmp_path / "c_csynth.xml"
    bad.write_text("<profile><oops")
    with pytest.raises(ValueError, match="not a readable HLS synthesis report"):
        read_csynth_xml(bad)


STANDIN = textwrap.dedent('''\
    #!{python}
    """Stand-in for vitis_hls (records its call, writes a csynth.xml); not the AMD tool."""
    import json, pathlib, sys
    pathlib.Path({log!r}).write_text(json.dumps(sys.argv[1:]))
    doc = json.loads(pathlib.Path("project.json").read_text())
    name, top = doc["project_name"], doc["axis_top"]
    out = pathlib.Path(f"{{name}}_prj/solution1/syn/report/{{top}}_csynth.xml")
    out.parent.mkdir(parents=True)
    out.write_text({xml!r}.replace("TOPNAME", top))
''')


def test_flow_runs_synthesis_when_the_tool_is_on_path(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "vitis_argv.json"
    tool = bindir / "vitis_hls"
    xml = CSYNTH.format(part="xczu3eg-sbva484-1-i", top="TOPNAME", lat=2000, ii=2001,
                        dsp_tag="DSP", dsp=99)
    tool.write_text(STANDIN.format(python=sys.executable, log=str(log), xml=xml))
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    spec = load_flow({"dataset": {"name": "synthetic", "n": 96, "shape": [1, 8, 8]},
                      "model": "digits_cnn", "quantization": {"bits": 6},
                      "training": {"epochs": 1, "batch_size": 32}, "export": {"reuse": 64},
                      "csim": {"samples": 8}, "flow": {"synth": "required"}})
    result = run_flow(spec, out_dir=tmp_path / "out", progress=False)
    stages = {s.name: s for s in result.stages}
    assert stages["synth"].status == "passed", stages["synth"].message
    assert json.loads(log.read_text()) == ["-f", "build_prj.tcl", "-tclargs", "csim=0",
                                           "synth=1", "cosim=0", "export=1"]
    assert result.metrics["synthesis"]["resources"]["DSP"] == 99
    report = result.report.read_text()
    assert "beside the estimate" in report and "| DSP |" in report
