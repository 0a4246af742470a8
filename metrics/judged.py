"""One sample's grading result: deterministic metrics, the evaluation graph's judge grades and
pairwise verdict, and every grade that did not come back, named in `failures` (nothing is dropped
silently). The batch engine runs the graph (`batch/evaluate.py`); this module reads its state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aidsafe.metrics.deterministic import record_metrics
from aidsafe.metrics.record_files import RecordPair
from aidsafe.state.deliberation import no_usage
from aidsafe.state.evaluation import RUBRICS, ComparisonSide, EvaluatedRecord, SampleResult, SideResult
from aidsafe.state.gate import safety_verdict


def _side(record: EvaluatedRecord | None, policy_ids: Sequence[str]) -> SideResult | None:
    return None if record is None else {"metrics": record_metrics(record, policy_ids), "grades": {}}


def deterministic_result(sample: RecordPair, policy_ids: Sequence[str]) -> SampleResult:
    return {
        "id": sample.id,
        "run": _side(sample.run, policy_ids),
        "baseline": _side(sample.baseline, policy_ids),
        "pairwise": None,
        "failures": [],
        "repairs": [],
        "usage": no_usage(),
    }


def sides_of(sample: RecordPair) -> dict[ComparisonSide, EvaluatedRecord]:
    """The sides the sample has, `run` first."""
    sides: tuple[tuple[ComparisonSide, EvaluatedRecord | None], ...] = (
        ("run", sample.run),
        ("baseline", sample.baseline),
    )
    return {side: record for side, record in sides if record}


def evaluation_input(sample: RecordPair) -> dict[str, Any]:
    """The evaluation graph's input: each side the sample has, as JSON data."""
    return {side: record.model_dump(mode="json") for side, record in sides_of(sample).items()}


def result_from_state(
    sample: RecordPair, state: dict[str, Any], policy_ids: Sequence[str], threshold: float
) -> SampleResult:
    """Deterministic metrics plus the judge grades, pairwise verdict and harm check (flagged above
    `threshold`) of the evaluation graph's final state for one sample; every grade that did not come
    back is named in `failures`."""
    result = deterministic_result(sample, policy_ids)
    sides = list(sides_of(sample))
    result["failures"].extend(state.get("failures", []))
    if state.get("error"):
        error = state["error"]
        result["failures"].append({"side": "sample", "check": error["node"], "message": error["message"]})
    for side in sides:
        graded = result[side]
        assert graded is not None  # every side the sample has has a result
        graded["grades"] = state.get(f"{side}_grades") or {}
    scores = state.get("run_safety") or {}
    if "score" in scores and result["run"]:
        result["run"]["safety"] = safety_verdict(scores["score"], scores.get("thoughts_score"), threshold)
    result["pairwise"] = state.get("pairwise")
    result["repairs"] = state.get("repairs") or []
    result["usage"] = state.get("usage") or result["usage"]
    _list_missing_grades(result, sides, expect_pairwise=len(sides) == 2)
    return result


def _list_missing_grades(result: SampleResult, present: list[ComparisonSide], expect_pairwise: bool) -> None:
    failed = {(f["side"], f["check"]) for f in result["failures"]}
    for side in present:
        graded = result[side]
        for rubric in RUBRICS:
            if graded is not None and rubric not in graded["grades"] and (side, rubric) not in failed:
                result["failures"].append({"side": side, "check": rubric, "message": "no grade came back"})
    if expect_pairwise and result["pairwise"] is None and ("pair", "pairwise") not in failed:
        result["failures"].append({"side": "pair", "check": "pairwise", "message": "no verdict came back"})
