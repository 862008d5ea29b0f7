"""The frozen integer graph (IR): its ops (one module each, :mod:`qfx.ir.ops`), the verifier
every graph passes, the builder the frontends use, the safe file format and the exact executor."""

from qfx.ir.cost import CostReport, NodeCost, binary_edges, cost_report
from qfx.ir.executor import RunResult, run_graph
from qfx.ir.graph import Edge, Graph, Node, sanitize_identifier
from qfx.ir.report import OverflowReport, overflow_report
from qfx.ir.serialize import load_graph, save_graph
from qfx.ir.verify import check_exact, verify

__all__ = ["Edge", "Graph", "Node", "RunResult", "check_exact", "load_graph", "run_graph",
           "sanitize_identifier", "save_graph", "OverflowReport", "overflow_report",
           "CostReport", "NodeCost", "binary_edges", "cost_report", "verify"]
