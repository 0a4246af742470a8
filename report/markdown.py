"""The Markdown report: the paper's table (metric, baseline, AIDSAFE, relative change), the
pairwise win/tie/loss rates, and every failed grade and unusable line by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1%}"


def _rate(count: int, rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%} ({count})"


def metrics_table(summary: dict[str, Any]) -> str:
    rows = ["| metric | baseline | AIDSAFE | relative change |", "|---|---:|---:|---:|"]
    for metric in summary["metrics"].values():
        rows.append(
            f"| {metric['label']} | {_number(metric['baseline'])} | {_number(metric['run'])} "
            f"| {_percent(metric['relative_change'])} |"
        )
    return "\n".join(rows)


def deliberation_section(stats: dict[str, Any]) -> list[str]:
    """How the graded records were made (`metrics.deliberation`), per file that has generate records."""
    from aidsafe.metrics.deliberation import stats_text

    lines: list[str] = []
    for file, label in (("run", "AIDSAFE (run)"), ("baseline", "baseline")):
        if stats.get(file):
            lines += ["", f"## Deliberation statistics: {label}", ""]
            lines += [f"- {line}" for line in stats_text(stats[file]).splitlines()]
            per_turn = stats[file]["thoughts_added_per_turn"]
            lines += [
                "- thoughts added per turn (mean): "
                + "; ".join(
                    f"{agent} " + ", ".join(f"r{r} {v}" for r, v in rounds.items())
                    for agent, rounds in per_turn.items()
                )
            ]
    return lines


def render(summary: dict[str, Any], charts: Sequence[str] = ()) -> str:
    files, samples = summary["files"], summary["samples"]
    lines = [
        "# aidsafe evaluation",
        "",
        f"- AIDSAFE (run): `{files['run']}`: {samples['run']} records",
        f"- baseline: `{files['baseline']}`: {samples['baseline']} records" if files["baseline"] else "- no baseline",
        f"- judge: {summary['judge'] or 'none (--no-judge: deterministic metrics only)'}",
        f"- time: {summary['seconds']} s ({summary['seconds_per_sample']} s per sample); "
        f"LLM calls: {summary['usage']['llm_calls']}",
        "",
        "## Metrics",
        "",
        "Means over each file's records; relative change = (AIDSAFE − baseline) / baseline.",
        "",
        metrics_table(summary),
        "",
    ]
    pairwise = summary["pairwise"]
    if files["baseline"] and summary["judge"]:
        lines += [
            "## Pairwise (AIDSAFE vs baseline, order randomised per sample)",
            "",
            "| win | tie | loss | judged pairs |",
            "|---:|---:|---:|---:|",
            "| "
            + " | ".join(_rate(pairwise["counts"][v], pairwise["rates"][v]) for v in ("win", "tie", "loss"))
            + f" | {pairwise['n']} |",
            "",
        ]
    lines += [f"![{name}](charts/{name})" for name in charts]
    lines += deliberation_section(summary.get("deliberation") or {})
    lines += ["", f"## Failed grades ({len(summary['failures'])})", ""]
    lines += [f"- `{f['id']}` {f['side']} / {f['check']}: {f['message']}" for f in summary["failures"]] or ["none"]
    lines += ["", f"## Unusable input lines ({len(summary['bad_lines'])})", ""]
    lines += [f"- `{b['file']}:{b['line']}`: {b['message']}" for b in summary["bad_lines"]] or ["none"]
    return "\n".join(lines) + "\n"
