"""Write an evaluation's files into one directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aidsafe.report.charts import write_charts
from aidsafe.report.markdown import render

REPORT_FILES = ("summary.json", "report.md")


def write_report(directory: str | Path, summary: dict[str, Any]) -> dict[str, Path]:
    """summary.json, report.md and charts/*.png: rebuilt from the grades by every run."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in REPORT_FILES}
    charts = write_charts(summary, out / "charts") if summary["judge"] else []
    summary = {**summary, "charts": [f"charts/{name}" for name in charts]}
    paths["summary.json"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["report.md"].write_text(render(summary, charts), encoding="utf-8")
    return paths
