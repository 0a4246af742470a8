"""Grade samples with the evaluation graph, concurrently, one self-contained coroutine per sample.

`grade_sample` takes one sample and returns its whole result (deterministic metrics, judge grades,
pairwise verdict, failures, usage) and never raises, so any engine (this semaphore, a worker
pool, a distributed runner) can drive it with the caller as the only writer of the output.
Every grade that did not come back is named in `failures`: nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from tqdm.asyncio import tqdm_asyncio

from aidsafe.metrics.deterministic import record_metrics
from aidsafe.metrics.records import RecordPair
from aidsafe.state.deliberation import add_usage
from aidsafe.state.evaluation import RUBRICS, EvaluatedRecord

SampleResult = dict[str, Any]
"""{id, run, baseline, pairwise, failures, repairs, usage}; `run`/`baseline` are {metrics, grades} or None.

`repairs` are the judges' answers used after a fix (e.g. a cut-off rubric answer salvaged)."""


def _side(record: EvaluatedRecord | None, policy_ids: Sequence[str]) -> dict[str, Any] | None:
    return None if record is None else {"metrics": record_metrics(record, policy_ids), "grades": {}}


def deterministic_result(sample: RecordPair, policy_ids: Sequence[str]) -> SampleResult:
    return {
        "id": sample.id,
        "run": _side(sample.run, policy_ids),
        "baseline": _side(sample.baseline, policy_ids),
        "pairwise": None,
        "failures": [],
        "repairs": [],
        "usage": add_usage(None, None),
    }


async def grade_sample(
    sample: RecordPair,
    policy_ids: Sequence[str],
    graph: CompiledStateGraph[Any, Any, Any, Any],
    context: dict[str, Any],
    parallel_calls: int | None = None,
) -> SampleResult:
    """Deterministic metrics plus every judge grade of one sample (and the pairwise verdict).

    `parallel_calls` caps the judge calls of this sample in flight (default: all at once); a
    server that answers one request at a time needs 1, or queued requests run into the timeout.
    """
    result = deterministic_result(sample, policy_ids)
    records = {side: record for side, record in (("run", sample.run), ("baseline", sample.baseline)) if record}
    payload = {side: record.model_dump(mode="json") for side, record in records.items()}
    try:
        config: RunnableConfig = {"metadata": {"sample_id": sample.id}, "max_concurrency": parallel_calls}
        out = await graph.ainvoke(payload, config=config, context=context)
    except Exception as exc:  # a crash must not lose the batch: the sample is listed as failed
        out = {"error": {"node": "evaluation", "message": f"{type(exc).__name__}: {exc}"}}
    result["failures"].extend(out.get("failures", []))
    if out.get("error"):
        result["failures"].append({"side": "sample", "check": out["error"]["node"], "message": out["error"]["message"]})
    for side in records:
        result[side]["grades"] = out.get(f"{side}_grades") or {}
    result["pairwise"] = out.get("pairwise")
    result["repairs"] = out.get("repairs") or []
    result["usage"] = out.get("usage") or result["usage"]
    _list_missing_grades(result, list(records), expect_pairwise=len(records) == 2)
    return result


def _list_missing_grades(result: SampleResult, present: list[str], expect_pairwise: bool) -> None:
    failed = {(f["side"], f["check"]) for f in result["failures"]}
    for side in present:
        for rubric in RUBRICS:
            if rubric not in result[side]["grades"] and (side, rubric) not in failed:
                result["failures"].append({"side": side, "check": rubric, "message": "no grade came back"})
    if expect_pairwise and result["pairwise"] is None and ("pair", "pairwise") not in failed:
        result["failures"].append({"side": "pair", "check": "pairwise", "message": "no verdict came back"})


async def grade_samples(
    samples: Sequence[RecordPair],
    policy_ids: Sequence[str],
    graph: CompiledStateGraph[Any, Any, Any, Any],
    context: dict[str, Any],
    concurrency: int,
    parallel_calls: int | None = None,
) -> list[SampleResult]:
    """Results in the samples' order, at most `concurrency` samples in flight, with a progress bar."""
    semaphore = asyncio.Semaphore(concurrency)

    async def bounded(sample: RecordPair) -> SampleResult:
        async with semaphore:
            return await grade_sample(sample, policy_ids, graph, context, parallel_calls)

    results: list[SampleResult] = await tqdm_asyncio.gather(
        *(bounded(s) for s in samples), desc="grading", unit="sample", disable=None
    )
    return results
