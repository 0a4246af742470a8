"""The `bench` job: the bench graph over suites of prompts on the batch engine, one `BenchRecord` per prompt.

A suite is a prompt file or a named suite (`bench/suites.py`). Prompt files are those `aidsafe
generate` reads, plus a column naming the expected behaviour (`refuse` or `comply`, see
`state.bench.EXPECTED_ALIASES`), or one expectation for a whole file (`expect=`), for benchmarks
whose prompts are all harmful (StrongREJECT, HarmBench). Optional columns give the prompt's
category and the policy of the set it is about. A named suite says all of that itself.
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
from aidsafe.bench.suites import suite_prompts
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
    suite: str | None = None

    def checkpoint_key(self) -> str:
        return content_id(json.dumps([self.prompt, self.expected]))


@dataclasses.dataclass(frozen=True)
class SuiteSpec:
    """A suite of a bench run: a named suite (`path` None) or a prompt file, reported under `name`."""

    name: str
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> SuiteSpec:
        """`NAME` (a named suite) or `NAME=FILE` (a file, reported as NAME)."""
        name, equals, path = text.partition("=")
        return cls(name.strip(), path if equals else None)


def spread(count: int, limit: int | None) -> list[int]:
    """`limit` indices spread evenly over `count` items (all of them when `limit` is None or larger):
    a named suite's files are sorted by category, so its first prompts would all be of one."""
    if limit is None or limit >= count:
        return list(range(count))
    return [index * count // limit for index in range(limit)]


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


def _bench_sample(
    sample: Sample, columns: BenchColumns, policy_ids: set[str], suite: str | None
) -> BenchSample | InputProblem:
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
        suite=suite,
    )


def _suite_of(where: str, files: dict[str, str]) -> str | None:
    """The suite of a sample read from `where` (`file:line`, `file[index]`, `folder:row n`)."""
    names = [
        (path, name)
        for path, name in files.items()
        if where.startswith(path) and where[len(path) : len(path) + 1] in (":", "[")
    ]
    return max(names, default=(None, None))[1]


def _named_suite(spec: SuiteSpec, per_suite: int | None) -> Iterator[BenchSample]:
    prompts = suite_prompts(spec.name)
    for index in spread(len(prompts), per_suite):
        p = prompts[index]
        yield BenchSample(p.id, p.prompt, {}, p.where, expected=p.expected, category=p.category, suite=p.suite)


def read_bench_samples(
    suites: Iterable[SuiteSpec],
    *,
    columns: BenchColumns,
    policy_file: str | None = None,
    per_suite: int | None = None,
    **options: Any,
) -> Iterator[BenchSample | InputProblem]:
    """The files' samples (`read_samples`: same formats and options, `limit` over all files), each
    with its expected behaviour and suite, then those of the named suites (`per_suite` of each,
    spread over it; `SuiteError` when one is unknown or not installed).

    A file whose first prompt has no expected-behaviour column is reported once, as a whole, and
    not read further: every line would fail the same way.
    """
    suites = list(suites)
    policy_ids = set(load_policies(policy_file).ids)
    usable: dict[str, str] = {}  # path -> suite name
    for spec in suites:
        if spec.path is None:
            continue
        first = next((s for s in read_samples([spec.path], **{**options, "limit": 1}) if isinstance(s, Sample)), None)
        if columns.expect is None and first is not None and columns.expect_field not in first.metadata:
            yield InputProblem(spec.path, _missing_column(columns, ["prompt", *first.metadata]))
        else:
            usable[str(Path(spec.path))] = spec.name
    for item in read_samples(list(usable), **options):
        if isinstance(item, InputProblem):
            yield item
        else:
            yield _bench_sample(item, columns, policy_ids, _suite_of(item.where, usable))
    for spec in suites:
        if spec.path is None:
            yield from _named_suite(spec, per_suite)


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
            "suite": sample.suite,
            "model_under_test": job.settings.job["model_under_test"],
            "self_judged": job.settings.job.get("self_judged", False),
            "judge": job.settings.role_models["judge"],
            "policy_set": job.settings.policy_set,
            "metadata": sample.metadata,
        }
    )


def bench_job(
    context: dict[str, Any],
    subject: Subject,
    identity: str,
    model: BaseChatModel | None = None,
    self_judged: bool = False,
) -> GraphJob:
    """`context` holds the judge's concrete `base_url`; `subject` is where the model under test
    answers now, `identity` what it is across runs (its URL may change: a free port per run).
    `self_judged`: the judge is the model under test (asked for with `--self-judge`)."""
    ctx = Context(**context)
    marks = {"self_judged": True} if self_judged else {}  # only then: other runs keep their fingerprint
    settings = run_settings(ctx, "bench", ("judge",), model_under_test=identity, **marks)
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
