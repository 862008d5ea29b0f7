"""Projects shared by the C-simulation tests (imported by ``conftest.py`` and the test modules):
one small exported conv net (conv, BN, ReLU, residual add, max and average pooling, linear; SAT and
WRAP formats), a copy of it with one weight literal corrupted, a copy with a syntax error, and one
build cache for the session (so that every binary is compiled once)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import qfx
from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.writer import export_firmware
from qfx.nn import (
    QAdd,
    QAvgPool2d,
    QBatchNorm2d,
    QConfig,
    QConv2d,
    QFlatten,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
)

SAT = QConfig(act_overflow="SAT", weight_overflow="SAT", per_channel_weights=True)
WRAP = QConfig(act_overflow="WRAP", weight_overflow="WRAP", act_width=6)
#: the node whose weight header the corruption tests change (a WRAP conv inside the residual)
CORRUPT_NODE = "c2"


class ResidualNet(nn.Module):
    """3x8x8 -> conv/BN/ReLU (SAT) -> conv/BN (WRAP) + skip -> add (WRAP) -> ReLU -> max pool 2
    -> avg pool 2 -> linear (WRAP) -> 4 outputs.

    Trained two steps, then the binary points of the WRAP layers are narrowed, so that random
    inputs saturate the SAT layers and wrap the WRAP ones."""

    def __init__(self) -> None:
        super().__init__()
        self.qin = QInput(8, config=SAT)
        self.c1 = QConv2d(3, 6, 3, padding=1, bias=False, config=SAT)
        self.bn1 = QBatchNorm2d(6, config=SAT)
        self.r1 = QReLU(config=SAT)
        self.c2 = QConv2d(6, 6, 3, padding=1, config=WRAP)
        self.bn2 = QBatchNorm2d(6, config=WRAP)
        self.add = QAdd(config=WRAP)
        self.r2 = QReLU(config=SAT)
        self.pool = QMaxPool2d(2)
        self.avg = QAvgPool2d(2)
        self.flat = QFlatten()
        self.fc = QLinear(6 * 2 * 2, 4, config=WRAP)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.qin(x)
        y = self.r1(self.bn1(self.c1(x)))
        y = self.r2(self.add(self.bn2(self.c2(y)), y))
        return self.fc(self.flat(self.avg(self.pool(y))))


@dataclass
class Projects:
    """The exported projects and the session's build cache."""

    good: HLSProject
    corrupted: HLSProject
    broken: HLSProject
    cache: Path
    corrupted_line: int


def _corrupt_weight(prj: HLSProject, node: str) -> int:
    """Change the first weight literal of ``node`` to the far end of its range; returns the
    header's line number of that literal."""
    header = prj.weights_dir / f"{node}_w.h"
    t = next(n for n in prj.graph.nodes if n.name == node).attrs["weight_type"]
    lines = header.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = re.match(r"^(\s+)(-?\d+),", line)
        if m:
            value = int(m.group(2))
            new = t.raw_min if value > 0 else t.raw_max
            lines[i] = line[:m.start(2)] + str(new) + line[m.end(2):]
            header.write_text("".join(lines))
            return i + 1
    raise AssertionError(f"no weight literal in {header}")


def make_projects(root: Path) -> Projects:
    """Train, freeze and export ``ResidualNet`` under ``root`` (12 test vectors), and make the
    corrupted (one weight of ``CORRUPT_NODE`` moved to the far end of its range) and broken (a
    syntax error in that node's weight header) copies."""
    torch.manual_seed(0)
    net = ResidualNet()
    x = torch.randn(32, 3, 8, 8)
    net.train()
    for _ in range(2):  # BatchNorm statistics and the binary points
        net(x)
    with torch.no_grad():  # narrow WRAP formats, so that random inputs make them wrap
        net.c2.output_quantizer.log2_lsb.fill_(-5.0)
        net.add.output_quantizer.log2_lsb.fill_(-6.0)
        net.fc.output_quantizer.log2_lsb.fill_(-5.0)
    graph = qfx.freeze(net.eval(), x[:1])
    good = export_firmware(graph, root / "good", test_vectors=x[:12].numpy())
    shutil.copytree(good.root, root / "corrupted")
    corrupted = HLSProject.load(root / "corrupted")
    line = _corrupt_weight(corrupted, CORRUPT_NODE)
    shutil.copytree(good.root, root / "broken")
    broken = HLSProject.load(root / "broken")
    header = broken.weights_dir / f"{CORRUPT_NODE}_w.h"
    header.write_text(header.read_text().replace("= {", "= { oops", 1))
    return Projects(good, corrupted, broken, root / "cache", line)
