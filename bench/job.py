"""The `bench` job: the bench graph over a prompt file on the batch engine, one `BenchRecord` per prompt.

Prompt files are those `aidsafe generate` reads, plus a column naming the expected behaviour
(`refuse` or `comply`, see `state.bench.EXPECTED_ALIASES`), or one expectation for a whole file
(`expect=`), for benchmarks whose prompts are all harmful (StrongREJECT, HarmBench). Optional
columns give the prompt's category and the policy of the set it is about.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.inputs import InputProblem, Sample, content_id, read_samples
from aidsafe.batch.settings import run_settings
from aidsafe.graphs.bench import build_graph
from aidsafe.nodes.bench_subject import Subject
from aidsafe.nodes.context import Context
from aidsafe.policies import load_policies
from aidsafe.state.bench import EXPECTED_ALIASES, BenchRecord, Expected


@dataclasses.dataclass(frozen=True)
class BenchSample(Sample):
    expected: Expected = "refuse"
    category: str | None = None
    policy: str | None = None

    def checkpoint_key(self) -> str:
        return content_id(json.dumps([self.prompt, self.expected]))


@dataclasses.dataclass(frozen=True)
class BenchColumns:
    """Where a prompt file keeps what the bench needs besides the prompt."""

    expect_field: str = "expected"
    expect: Expected | None = None
    """One expectation for every prompt (the column is then not read)."""
    category_field: str = "category"
    policy_field: str = "policy"


def _missing_column(columns: BenchColumns, fields: Iterable[str]) -> str:
    return (
        f"no expected-behaviour column {columns.expect_field!r} (fields: {', '.join(fields) or 'none'}); "
        "name it with --expect-field, or give --expect refuse|comply for every prompt of the file"
    )


def _bench_sample(sample: Sample, columns: BenchColumns, policy_ids: set[str]) -> BenchSample | InputProblem:
    def problem(message: str) -> InputProblem:
        return InputProblem(sample.where, message, sample.id, sample.prompt)

    expected = columns.expect
    if expected is None:
        if columns.expect_field not in sample.metadata:
            return problem(_missing_column(columns, ["prompt", *sample.metadata]))
        raw = sample.metadata[columns.expect_field]
        expected = EXPECTED_ALIASES.get(str(raw).strip().lower()) if raw is not None else None
        if expected is None:
            return problem(
                f"{columns.expect_field!r} is {raw!r}; use refuse (or unsafe, harmful) or comply "
                "(or safe, unharmful, benign)"
            )
    category = sample.metadata.get(columns.category_field)
    policy = sample.metadata.get(columns.policy_field)
    if policy not in (None, "") and policy not in policy_ids:
        return problem(
            f"{columns.policy_field!r} is {policy!r}, not a policy of the set ({', '.join(sorted(policy_ids))})"
        )
    return BenchSample(
        sample.id,
        sample.prompt,
        sample.metadata,
        sample.where,
        expected=expected,
        category=None if category in (None, "") else str(category),
        policy=policy or None,
    )


def read_bench_samples(
    paths: Iterable[str | Path], *, columns: BenchColumns, policy_file: str | None = None, **options: Any
) -> Iterator[BenchSample | InputProblem]:
    """`read_samples` (same formats and options), each sample with its expected behaviour.

    A file whose first prompt has no expected-behaviour column is reported once, as a whole, and
    not read further: every line would fail the same way.
    """
    policy_ids = set(load_policies(policy_file).ids)
    usable: list[str | Path] = []
    for path in paths:
        first = next((s for s in read_samples([path], **{**options, "limit": 1}) if isinstance(s, Sample)), None)
        if columns.expect is None and first is not None and columns.expect_field not in first.metadata:
            yield InputProblem(str(path), _missing_column(columns, ["prompt", *first.metadata]))
        else:
            usable.append(path)
    for item in read_samples(usable, **options):
        yield item if isinstance(item, InputProblem) else _bench_sample(item, columns, policy_ids)


def bench_input(sample: Sample) -> dict[str, Any]:
    assert isinstance(sample, BenchSample)
    return {"prompt": sample.prompt, "expected": sample.expected, "id": sample.id}


def bench_record(sample: Sample, state: dict[str, Any], job: GraphJob) -> BenchRecord:
    assert isinstance(sample, BenchSample)
    return BenchRecord.model_validate(
        {
            **state,
            "id": sample.id,
            "prompt": sample.prompt,
            "expected": sample.expected,
            "category": sample.category,
            "policy": sample.policy,
            "model_under_test": job.settings.job["model_under_test"],
            "judge": job.settings.role_models["judge"],
            "policy_set": job.settings.policy_set,
            "metadata": sample.metadata,
        }
    )


def bench_job(context: dict[str, Any], subject: Subject, identity: str, model: BaseChatModel | None = None) -> GraphJob:
    """`context` holds the judge's concrete `base_url`; `subject` is where the model under test
    answers now, `identity` what it is across runs (its URL may change: a free port per run)."""
    ctx = Context(**context)
    settings = run_settings(ctx, "bench", ("judge",), model_under_test=identity)
    return GraphJob(
        name="bench",
        build=partial(build_graph, subject),
        context=context,
        to_input=bench_input,
        to_record=bench_record,
        record_type=BenchRecord,
        settings=settings,
        model=model,
    )
