"""Aggregate per-sample results into the summary that the Markdown report and charts render.

Means are over the records of each file that have the value; pairwise rates are over the samples
that have a verdict. Every failure and every unusable line is carried into the summary by id or
file:line, so the report can list them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from aidsafe.metrics.deterministic import DETERMINISTIC_METRICS
from aidsafe.metrics.record_files import BadLine
from aidsafe.state.deliberation import add_usage, no_usage
from aidsafe.state.evaluation import RUBRICS, ComparisonSide, SampleResult
from aidsafe.state.gate import SafetyVerdict

FILES: tuple[ComparisonSide, ...] = ("run", "baseline")
LABELS = {
    "relevance": "Relevance of CoT (judge, 1-5)",
    "coherence": "Coherence of CoT (judge, 1-5)",
    "completeness": "Completeness of CoT (judge, 1-5)",
    "cot_policy_faithfulness": "Faithfulness CoT → policies (judge, 1-5)",
    "response_policy_faithfulness": "Faithfulness response → policies (judge, 1-5)",
    "response_cot_faithfulness": "Faithfulness response → CoT (judge, 1-5)",
    "thoughts": "Thoughts per sample",
    "cot_words": "CoT length (words)",
    "redundancy": "Redundancy (share of repeated word 3-grams)",
    "policy_coverage": "Policy coverage (share of policies cited)",
    "refusal": "Refusal rate (keyword list)",
    "score_gap": "Score gap (rejected − chosen violation)",
}


def _values(results: Sequence[SampleResult], file: ComparisonSide, metric: str) -> list[float]:
    values: list[float] = []
    for result in results:
        side = result[file]
        if side is None:
            continue
        if metric in side["grades"]:
            values.append(side["grades"][metric]["score"])
        elif metric in side["metrics"]:
            values.append(side["metrics"][metric])
    return values


def relative_change(run: float | None, baseline: float | None) -> float | None:
    if run is None or not baseline:
        return None
    return (run - baseline) / abs(baseline)


def summarize(
    results: Sequence[SampleResult],
    *,
    run_file: str,
    baseline_file: str | None,
    bad_lines: Sequence[BadLine],
    judge: str | None,
    seconds: float,
) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for name in (*RUBRICS, *DETERMINISTIC_METRICS):
        values = {file: _values(results, file, name) for file in FILES}
        if not any(values.values()):
            continue
        means = {file: fmean(v) if v else None for file, v in values.items()}
        metrics[name] = {
            "label": LABELS[name],
            **means,
            "relative_change": relative_change(means["run"], means["baseline"]),
            **{f"n_{file}": len(v) for file, v in values.items()},
        }
    verdicts = Counter(r["pairwise"]["verdict"] for r in results if r["pairwise"])
    judged_pairs = sum(verdicts.values())
    usage = no_usage()
    for result in results:
        usage = add_usage(usage, result["usage"])
    return {
        "files": {"run": run_file, "baseline": baseline_file},
        "judge": judge,
        "samples": {
            "run": sum(r["run"] is not None for r in results),
            "baseline": sum(r["baseline"] is not None for r in results),
            "paired": sum(r["run"] is not None and r["baseline"] is not None for r in results),
        },
        "metrics": metrics,
        "score_distributions": {
            rubric: {
                file: {score: _values(results, file, rubric).count(score) for score in range(1, 6)} for file in FILES
            }
            for rubric in RUBRICS
            if rubric in metrics
        },
        "pairwise": {
            "n": judged_pairs,
            "counts": {v: verdicts[v] for v in ("win", "tie", "loss")},
            "rates": {v: verdicts[v] / judged_pairs if judged_pairs else None for v in ("win", "tie", "loss")},
        },
        "harm_check": harm_counts([r["run"]["safety"] for r in results if r["run"] and "safety" in r["run"]]),
        "failures": [{"id": r["id"], **f} for r in results for f in r["failures"]],
        "bad_lines": [{"file": b.file, "line": b.line, "message": b.message} for b in bad_lines],
        "usage": usage,
        "seconds": round(seconds, 2),
        "seconds_per_sample": round(seconds / len(results), 3) if results else None,
    }


def harm_counts(verdicts: Sequence[SafetyVerdict]) -> dict[str, int] | None:
    """The harm check's counts (`check_thoughts`): records rated, and those whose response or
    thoughts were flagged; None when it did not run."""
    if not verdicts:
        return None
    return {
        "rated": len(verdicts),
        "response_flagged": sum(v["flagged"] for v in verdicts),
        "thoughts_flagged": sum(v.get("thoughts_flagged", False) for v in verdicts),
    }
