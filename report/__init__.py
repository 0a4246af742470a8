"""The evaluation report: JSON summary, Markdown report in the paper's table shape, PNG charts."""

from report.summary import summarize
from report.writer import write_report

__all__ = ["summarize", "write_report"]
