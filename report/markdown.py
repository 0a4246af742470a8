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


def _estimate(estimate: dict[str, Any] | None, percent: bool = False) -> str:
    """`0.71 [0.52, 0.85]`: the value and its bootstrap interval; `–` where undefined or not computed."""
    if estimate is None or estimate["value"] is None:
        return "–"
    shown = "{:.1%}" if percent else "{:.2f}"
    value = shown.format(estimate["value"])
    if estimate["low"] is None or estimate["high"] is None:
        return value
    return f"{value} [{shown.format(estimate['low'])}, {shown.format(estimate['high'])}]"


def agreement_rows(by_rubric: dict[str, Any], first: str = "") -> list[str]:
    rows = []
    for rubric, found in by_rubric.items():
        judge, people = found["judge"] or {}, found["people"]
        cells = [
            f"{judge['samples']} ({judge['pairs']})" if judge else "–",
            _estimate(judge.get("kappa")),
            _estimate(judge.get("rho")),
            _estimate(judge.get("exact"), percent=True),
            _estimate(judge.get("within_1"), percent=True),
            f"{_number(people['alpha'])} ({people['samples']})" if people else "–",
        ]
        rows.append(f"|{first} {rubric} | {found['labels']} | " + " | ".join(cells) + " |")
    return rows


AGREEMENT_HEADER = (
    "| labels | judge: samples (pairs) | κ quadratic | Spearman ρ | exact | within ±1 | people: α (samples) |"
)


def agreement_section(agreement: dict[str, Any], heading: str = "##") -> list[str]:
    """The judge against people and people against each other, overall and per policy (`metrics.agreement`)."""
    level = f"{agreement['confidence_level']:.0%}"
    judged = "; ".join(f"`{mark}` against {source}" for mark, source in agreement["judged_marks"].items())
    lines = [
        f"{heading} Agreement with people",
        "",
        f"{agreement['labels']} labels from {len(agreement['annotators'])} annotators "
        f"({', '.join(agreement['annotators'])}) on {agreement['samples']} samples. Judge against people: "
        "each person's label is one pair with the judge's score (quadratic-weighted Cohen's κ, Spearman's ρ, "
        f"exact and within-one agreement, each with a {level} percentile bootstrap interval over samples, "
        f"{agreement['bootstrap_resamples']} resamples); people against each other: Krippendorff's α (ordinal for "
        "rubrics, nominal for the 0/1 marks) over the samples two or more people labelled. Safety marks: "
        + (judged + "; the others among people only." if judged else "no judge verdict, among people only."),
        "",
        f"| rubric {AGREEMENT_HEADER}",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *agreement_rows(agreement["overall"]),
    ]
    if agreement["by_policy"]:
        lines += ["", f"{heading}# Agreement per policy (a sample counts for every policy its thoughts cite)", ""]
        lines += [f"| policy | rubric {AGREEMENT_HEADER}", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for policy, by_rubric in agreement["by_policy"].items():
            lines += agreement_rows(by_rubric, f" `{policy}` |")
    return lines


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
    if harm := summary.get("harm_check"):
        lines += [
            "## Harm check (the violation scorer on each response, and on its thoughts alone)",
            "",
            f"- {harm['rated']} records rated: {harm['response_flagged']} responses flagged, "
            f"{harm['thoughts_flagged']} chains of thought flagged (ids in samples.jsonl, `run.safety`)",
            "",
        ]
    agreement = summary.get("agreement")
    if agreement:
        lines += [*agreement_section(agreement), ""]
    lines += [f"![{name}](charts/{name})" for name in charts]
    lines += deliberation_section(summary.get("deliberation") or {})
    lines += ["", f"## Failed grades ({len(summary['failures'])})", ""]
    lines += [f"- `{f['id']}` {f['side']} / {f['check']}: {f['message']}" for f in summary["failures"]] or ["none"]
    lines += ["", f"## Unusable input lines ({len(summary['bad_lines'])})", ""]
    lines += [f"- `{b['file']}:{b['line']}`: {b['message']}" for b in summary["bad_lines"]] or ["none"]
    if agreement:
        problems = agreement["problems"]
        lines += ["", f"## Labels file problems ({len(problems)}; a relabelled line still counts)", ""]
        lines += [f"- `{p['file']}:{p['line']}` {p['kind']}: {p['message']}" for p in problems] or ["none"]
    return "\n".join(lines) + "\n"
