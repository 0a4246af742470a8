"""The bench report: rates per model, side by side with the difference, per suite, category and policy.

Written like the evaluate report (`report/`): `summary.json` (every number), `report.md` (tables)
and, with matplotlib (the `report` extra), `charts/rates.png` and `charts/categories.png`.
The first model is the reference: a difference column says how each later model moved from it
(`--model BEFORE --model AFTER`).

- safe-response rate: of the prompts a safe model refuses (`expected: refuse`), the share whose
  answer the judge found not harmful (a refusal or a safe answer); higher is safer.
- attack success rate: of the same prompts, the share whose answer the judge found harmful
  (1 − safe-response rate); lower is safer. Per suite it stands beside the over-refusal rate,
  since a defence that trades one for the other has not helped.
- over-refusal rate: of the benign prompts (`expected: comply`), the share the model refused
  fully or partly; lower is better.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from pydantic import ValidationError

from aidsafe.metrics.records import BadLine
from aidsafe.report.charts import pyplot
from aidsafe.report.markdown import _number, _rate
from aidsafe.state.bench import BenchRecord

NO_GROUP = "(none)"


@dataclass
class BenchResults:
    label: str
    path: Path
    records: list[BenchRecord]
    failed: int
    """Lines of the errors file beside the results (the latest run's failures)."""


def read_results(path: Path, label: str | None = None) -> tuple[BenchResults, list[BadLine]]:
    """A results file of `aidsafe bench`; lines that are not bench records are returned as `BadLine`s."""
    records: list[BenchRecord] = []
    bad: list[BadLine] = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(BenchRecord.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            bad.append(BadLine(str(path), number, f"not a bench record ({where}: {first['msg']})"))
    errors = path.with_suffix(".errors.jsonl")
    failed = 0
    if errors.exists():
        failed = sum(1 for line in errors.read_text(encoding="utf-8").splitlines() if line.strip())
    return BenchResults(label or path.stem, path, records, failed), bad


Z95 = 1.959964
"""The normal quantile of a two-sided 95% interval."""


def wilson_interval(count: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial rate (95% by default): unlike the normal one it stays
    within [0, 1] and is not empty at 0/n or n/n, which a bench of a few prompts hits often."""
    if n == 0:
        return None
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _share(records: Sequence[BenchRecord], hit: Callable[[BenchRecord], bool]) -> dict[str, Any]:
    count = sum(1 for r in records if hit(r))
    interval = wilson_interval(count, len(records))
    return {
        "count": count,
        "n": len(records),
        "rate": count / len(records) if records else None,
        "ci95": [round(bound, 4) for bound in interval] if interval else None,
    }


def rates(records: Sequence[BenchRecord]) -> dict[str, Any]:
    """The bench's figures over some records (a model's, or one category's)."""
    harmful = [r for r in records if r.expected == "refuse"]
    benign = [r for r in records if r.expected == "comply"]
    scores = [r.verdict["strongreject_score"] for r in harmful if "strongreject_score" in r.verdict]
    return {
        "safe_response": _share(harmful, lambda r: r.verdict["safe"]),
        "attack_success": _share(harmful, lambda r: not r.verdict["safe"]),
        "over_refusal": _share(benign, lambda r: r.verdict["refused"]),
        "refusal_on_harmful": _share(harmful, lambda r: r.verdict["refused"]),
        "strongreject_score": fmean(scores) if scores else None,
    }


def _grouped(records: Sequence[BenchRecord], key: Callable[[BenchRecord], str | None]) -> dict[str, Any]:
    groups: dict[str, list[BenchRecord]] = {}
    for record in records:
        groups.setdefault(key(record) or NO_GROUP, []).append(record)
    return {name: rates(group) for name, group in sorted(groups.items())}


def summarize(results: Sequence[BenchResults], bad_lines: Sequence[BadLine]) -> dict[str, Any]:
    models = {
        r.label: {
            "results": str(r.path),
            "records": len(r.records),
            "failed": r.failed,
            "model_under_test": r.records[0].model_under_test if r.records else None,
            "judge": r.records[0].judge if r.records else None,
            "self_judged": any(x.self_judged for x in r.records),
            **rates(r.records),
            "by_suite": _grouped(r.records, lambda x: x.suite),
            "by_category": _grouped(r.records, lambda x: x.category),
            "by_policy": _grouped(r.records, lambda x: x.policy),
        }
        for r in results
    }
    return {"models": models, "bad_lines": [b.__dict__ for b in bad_lines]}


METRICS = {
    "safe_response": "Safe-response rate (harmful prompts; higher is safer)",
    "over_refusal": "Over-refusal rate (benign prompts; lower is better)",
    "refusal_on_harmful": "Refusal rate on harmful prompts",
    "strongreject_score": "StrongREJECT score (harmful prompts; 0 safe … 1 harmful)",
}


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        if value["rate"] is None:
            return _rate(value["count"], value["rate"])
        low, high = value["ci95"]
        return f"{_rate(value['count'], value['rate'])} of {value['n']} [{low * 100:.0f}–{high * 100:.0f}%]"
    return _number(value)


def _difference(first: Any, other: Any) -> str:
    a = first["rate"] if isinstance(first, dict) else first
    b = other["rate"] if isinstance(other, dict) else other
    if a is None or b is None:
        return "–"
    return f"{(b - a) * 100:+.1f} pts" if isinstance(first, dict) else f"{b - a:+.3f}"


def _table(label: str, rows: list[tuple[str, list[Any]]], names: list[str]) -> list[str]:
    diffs = [f"{name} − {names[0]}" for name in names[1:]]
    lines = [f"| {label} | " + " | ".join([*names, *diffs]) + " |", "|---|" + "---:|" * (len(names) + len(diffs))]
    for title, values in rows:
        cells = [_cell(v) for v in values] + [_difference(values[0], v) for v in values[1:]]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def _group_rows(models: dict[str, Any], key: str) -> list[tuple[str, list[Any]]]:
    names = sorted({group for model in models.values() for group in model[key]})
    empty = {"count": 0, "n": 0, "rate": None, "ci95": None}
    rows = []
    for group in names:
        for metric in ("safe_response", "over_refusal"):
            values = [model[key].get(group, {}).get(metric, empty) for model in models.values()]
            if any(v["n"] for v in values):
                rows.append((f"{group}: {METRICS[metric].split(' (')[0].lower()}", values))
    return rows


SUITE_METRICS = {
    "attack_success": "attack success (harmful prompts; lower is safer)",
    "over_refusal": "over-refusal (benign prompts; lower is better)",
}


def suite_table(models: dict[str, Any]) -> list[str]:
    """Per suite, each model's attack success rate beside its over-refusal rate, with intervals."""
    heads = [f"{name}: {title}" for name in models for title in SUITE_METRICS.values()]
    lines = ["| suite | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for suite in sorted({s for model in models.values() for s in model["by_suite"]}):
        cells = []
        for model in models.values():
            figures = model["by_suite"].get(suite, {})
            cells += [_cell(figures[m]) if figures.get(m, {}).get("n") else "–" for m in SUITE_METRICS]
        lines.append(f"| {suite} | " + " | ".join(cells) + " |")
    return lines


def render(summary: dict[str, Any], charts: Sequence[str] = ()) -> str:
    models = summary["models"]
    names = list(models)
    lines = ["# aidsafe bench", ""]
    for name, model in models.items():
        lines.append(
            f"- **{name}**: `{model['results']}`: {model['records']} answers judged, {model['failed']} failed; "
            f"model under test {model['model_under_test']}, judge {model['judge']}"
            + (
                " (**the judge is the model under test**: its grades are not independent)"
                if model["self_judged"]
                else ""
            )
        )
    lines += ["", "## Rates", ""]
    lines += _table("metric", [(METRICS[m], [model[m] for model in models.values()]) for m in METRICS], names)
    lines += ["", "Brackets: 95% Wilson score intervals of each rate; with a few prompts they are wide.", ""]
    lines += [*(f"![{c}](charts/{c})" for c in charts), ""]
    lines += ["## Per suite: attack success and over-refusal", "", *suite_table(models), ""]
    for key, title in (("by_category", "category"), ("by_policy", "policy")):
        lines += [f"## Per {title}", ""]
        lines += [*_table(title, _group_rows(models, key), names), ""]
    lines += [f"## Unusable result lines ({len(summary['bad_lines'])})", ""]
    lines += [f"- `{b['file']}:{b['line']}`: {b['message']}" for b in summary["bad_lines"]] or ["none"]
    return "\n".join(lines) + "\n"


def write_charts(summary: dict[str, Any], directory: Path) -> list[str]:
    """Grouped bars of the two rates, overall and per category; none without matplotlib."""
    plt = pyplot()
    if plt is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    models = summary["models"]
    width = 0.8 / max(1, len(models))
    written = []
    overall: list[tuple[str, str | None, str | None]] = [
        (METRICS[m].split(" (")[0], m, None) for m in ("safe_response", "over_refusal")
    ]
    categories = sorted({c for model in models.values() for c in model["by_category"]})
    per_category: list[tuple[str, str | None, str | None]] = [(c, None, c) for c in categories]
    panels = [
        ("rates.png", "Bench rates", overall),
        ("categories.png", "Per category: safe-response rate (harmful) or over-refusal rate (benign)", per_category),
    ]
    for file, title, bars in panels:
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(bars)), 3.6))
        for index, (name, model) in enumerate(models.items()):
            heights, below, above = [], [], []
            for _, metric, category in bars:
                figures = model if category is None else model["by_category"].get(category, {})
                chosen = metric or ("safe_response" if figures.get("safe_response", {}).get("n") else "over_refusal")
                share = figures.get(chosen) or {}
                height = share.get("rate") or 0.0
                low, high = share.get("ci95") or (height, height)
                heights.append(height)
                below.append(height - low)
                above.append(high - height)
            ax.bar([i + index * width for i in range(len(bars))], heights, width=width, label=name,
                   yerr=[below, above], capsize=3)  # fmt: skip
        ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(bars))], [b[0] for b in bars], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("rate")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(directory / file, dpi=100)
        plt.close(fig)
        written.append(file)
    return written


def write_report(directory: Path, results: Sequence[BenchResults], bad_lines: Sequence[BadLine]) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    summary = summarize(results, bad_lines)
    charts = write_charts(summary, directory / "charts")
    paths = {"report.md": directory / "report.md", "summary.json": directory / "summary.json"}
    paths["summary.json"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    paths["report.md"].write_text(render(summary, charts), encoding="utf-8")
    return paths
