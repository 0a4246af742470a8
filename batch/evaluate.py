"""The `evaluate` job: the evaluation graph over the records of a run file (and a baseline file, paired
by id) on the batch engine, one `GradedSample` per id, so grading has generate's per-sample
checkpoints and resume: a killed 10,000-record run pays again only for grades in flight.

A sample whose grades did not all come back is a failed sample: its errors-file line carries the
partial result (`partial`), which the report still counts, and the next run grades it again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
from langchain_core.language_models import BaseChatModel

from aidsafe.batch.engine import GraphJob, SampleFailure
from aidsafe.batch.inputs import InputProblem, Sample, content_id
from aidsafe.batch.settings import run_settings
from aidsafe.graphs import evaluation
from aidsafe.metrics.agreement import AgreementOptions, agreement, cited_policies, judge_scores
from aidsafe.metrics.judged import evaluation_input, result_from_state
from aidsafe.metrics.labels import LabelProblem, read_labels
from aidsafe.metrics.record_files import BadLine, RecordPair, pair_records, read_records
from aidsafe.nodes.context import AtLeastOne, Context
from aidsafe.nodes.safety_gate import DEFAULT_THRESHOLD
from aidsafe.policies import load_policies
from aidsafe.state.evaluation import EvaluatedRecord, GradedSample, SampleResult


@pydantic.dataclasses.dataclass(kw_only=True)
class GradingOptions:
    """Grading settings beside the batch options; each annotation is the valid range."""

    parallel_calls: AtLeastOne | None = None
    """Judge calls of one sample in flight (None: all at once)."""


@dataclasses.dataclass(frozen=True)
class PairSample(Sample):
    """The records of one id: from the run file, the baseline file, or both (as JSON data)."""

    run: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None

    def checkpoint_key(self) -> str:
        """Both records: a changed record is graded again, never resumed from the old one's grades."""
        return content_id(json.dumps([self.run, self.baseline], sort_keys=True))

    def pair(self) -> RecordPair:
        def record(data: dict[str, Any] | None) -> EvaluatedRecord | None:
            return None if data is None else EvaluatedRecord.model_validate(data)

        return RecordPair(self.id, record(self.run), record(self.baseline))


def read_pairs(run_file: Path, baseline_file: Path | None, limit: int | None) -> tuple[list[PairSample], list[BadLine]]:
    """The samples to grade (the first `limit` run records and their baseline records) and the
    unusable lines. `RecordsFileError` when a file cannot be read."""
    run_records, bad_lines = read_records(run_file, limit)
    baseline_records, baseline_bad = read_records(baseline_file) if baseline_file else ([], [])
    if limit is not None:
        kept = {r.id for r in run_records}
        baseline_records = [r for r in baseline_records if r.id in kept]
    samples = [
        PairSample(
            pair.id,
            (pair.run or pair.baseline).prompt,  # type: ignore[union-attr]
            run=pair.run.model_dump(mode="json") if pair.run else None,
            baseline=pair.baseline.model_dump(mode="json") if pair.baseline else None,
        )
        for pair in pair_records(run_records, baseline_records)
    ]
    return samples, bad_lines + baseline_bad


def as_input(samples: list[PairSample], bad_lines: list[BadLine]) -> Iterator[Sample | InputProblem]:
    """What the batch driver reads: the unusable lines as input problems, then the samples."""
    for bad in bad_lines:
        yield InputProblem(f"{bad.file}:{bad.line}", bad.message)
    yield from samples


def pair_input(sample: Sample) -> dict[str, Any]:
    assert isinstance(sample, PairSample)
    return evaluation_input(sample.pair())


def graded_sample(sample: Sample, state: dict[str, Any], job: GraphJob) -> GradedSample:
    assert isinstance(sample, PairSample)
    threshold = job.context.get("safety_threshold")
    policy_ids = load_policies(job.context.get("policy_file")).ids
    result = result_from_state(sample.pair(), state, policy_ids, DEFAULT_THRESHOLD if threshold is None else threshold)
    if result["failures"]:
        message = "; ".join(f"{f['side']} / {f['check']}: {f['message']}" for f in result["failures"])
        raise SampleFailure("grading", message, {"partial": result})
    return GradedSample.model_validate(result)


def as_result(line: GradedSample | dict[str, Any]) -> SampleResult:
    """A `samples.jsonl` line, or an errors-file line's partial result, as the report reads it."""
    if isinstance(line, GradedSample):
        return line.as_result()
    partial: SampleResult = line["partial"]
    return partial


def labels_agreement(
    label_files: list[Path], samples: list[PairSample], results: list[SampleResult], options: AgreementOptions
) -> tuple[dict[str, Any], list[LabelProblem]]:
    """The summary's `agreement` section: people's labels of the run file's records against the
    judge's grades (and the safety gate's verdicts) and against each other, with every problem of
    the labels files. `RecordsFileError` when a labels file cannot be read."""
    known = [record for sample in samples if (record := sample.pair().run)]
    read = read_labels(label_files, {record.id for record in known})
    found = agreement(read.labels, judge_scores(results, known), cited_policies(known), options)
    section = {
        "files": [str(path) for path in label_files],
        **found.model_dump(mode="json"),
        "problems": [dataclasses.asdict(problem) for problem in read.problems],
    }
    return section, read.problems


def evaluate_job(
    context: dict[str, Any], options: GradingOptions | None = None, model: BaseChatModel | None = None
) -> GraphJob:
    """`context` must hold a concrete `base_url` (the embedded server already started)."""
    ctx = Context(**context)
    options = options or GradingOptions()
    settings = run_settings(ctx, "evaluation", ("judge",))
    return GraphJob(
        name="evaluate",
        build=evaluation.build_graph,
        context=context,
        to_input=pair_input,
        to_record=graded_sample,
        record_type=GradedSample,
        settings=settings,
        model=model,
        run_config={"max_concurrency": options.parallel_calls} if options.parallel_calls else {},
    )
