"""The evaluation report: JSON summary, Markdown report in the paper's table shape, PNG charts."""

from aidsafe.report.summary import summarize
from aidsafe.report.writer import write_report

__all__ = ["summarize", "write_report"]
