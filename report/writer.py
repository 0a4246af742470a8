"""Write an evaluation's files into one directory."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aidsafe.metrics.judged import SampleResult
from aidsafe.report.charts import write_charts
from aidsafe.report.markdown import render


def write_report(directory: str | Path, summary: dict[str, Any], results: Sequence[SampleResult]) -> dict[str, Path]:
    """summary.json, samples.jsonl (every grade with its justification), report.md, charts/*.png."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("summary.json", "samples.jsonl", "report.md")}
    charts = write_charts(summary, out / "charts") if summary["judge"] else []
    summary = {**summary, "charts": [f"charts/{name}" for name in charts]}
    paths["summary.json"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with paths["samples.jsonl"].open("w", encoding="utf-8") as samples:
        for result in results:
            samples.write(json.dumps(result, ensure_ascii=False) + "\n")
    paths["report.md"].write_text(render(summary, charts), encoding="utf-8")
    return paths
