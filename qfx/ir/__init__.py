"""The frozen integer graph (IR), its safe file format and its exact executor."""

from qfx.ir.cost import CostReport, NodeCost, binary_edges, cost_report
from qfx.ir.executor import RunResult, check_exact, run_graph
from qfx.ir.graph import Edge, Graph, Node, load_graph, sanitize_identifier, save_graph
from qfx.ir.report import OverflowReport, overflow_report

__all__ = ["Edge", "Graph", "Node", "RunResult", "check_exact", "load_graph", "run_graph",
           "sanitize_identifier", "save_graph", "OverflowReport", "overflow_report",
           "CostReport", "NodeCost", "binary_edges", "cost_report"]
