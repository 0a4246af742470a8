"""The `revise-pairs` job: preference pairs (`aidsafe prefer` output) under new policies, after their
generate records were revised (`aidsafe revise`).

Each pair is matched by id to its revised record. A record that was carried carries its pair (new
policy set, lineage, no call). A record that was revised or regenerated gives the pair its new
chosen side, and the preference graph makes a new rejected side for it under the new text
(`graphs/pair_revision.py`); the old pair is kept in the lineage's `previous`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import ValidationError

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.generate import finished_record
from aidsafe.batch.inputs import InputProblem, Sample, first_problem, read_samples
from aidsafe.batch.prefer import PREFERENCE_ROLES, SampleWithChosen
from aidsafe.batch.settings import run_settings
from aidsafe.graphs.pair_revision import build_graph
from aidsafe.metrics.deliberation import DeliberationStats
from aidsafe.nodes.context import Context
from aidsafe.state.deliberation import no_usage
from aidsafe.state.records import GenerateRecord, PreferenceRecord
from aidsafe.state.revision import PairLineage


class RevisedPreferenceRecord(PreferenceRecord):
    """A line of `aidsafe revise-pairs` output: a preference record with its `revision`."""

    revision: PairLineage


@dataclasses.dataclass(frozen=True)
class PairSample(SampleWithChosen):
    """A pair with its new chosen side (the revised record's) and the old pair."""

    pair: dict[str, Any] = dataclasses.field(default_factory=dict)
    lineage: PairLineage | None = None


def revised_chosen(path: Path, policy_set: str) -> dict[str, GenerateRecord]:
    """The records of an `aidsafe revise` output, by id; each must be revised under `policy_set`."""
    records: dict[str, GenerateRecord] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = GenerateRecord.model_validate_json(line)
            except ValidationError as exc:
                raise ValueError(f"{path}:{number}: not an `aidsafe revise` record ({first_problem(exc)})") from None
            if record.revision is None or record.policy_set != policy_set:
                raise ValueError(
                    f"{path}:{number}: not revised for these policies (policy set {record.policy_set}, "
                    f"--policies is {policy_set}): give the `aidsafe revise` output made with the same --policies"
                )
            records[record.id] = record
    return records


def as_pair_sample(sample: Sample, revised: dict[str, GenerateRecord]) -> Sample | InputProblem:
    line = {**sample.metadata, "id": sample.id, "prompt": sample.prompt}
    try:
        pair = PreferenceRecord.model_validate(line)
    except ValidationError as exc:
        return InputProblem(sample.where, f"not an `aidsafe prefer` record ({first_problem(exc)})", sample.id)
    record = revised.get(pair.id)
    if record is None or record.revision is None:
        return InputProblem(sample.where, f"no revised record with id {pair.id!r} in the revised records", pair.id)
    source = record.revision
    outcome = source["outcome"]
    checked = f"its chosen side's record was {outcome} ({source['checked']})"
    if outcome == "carried" and pair.policy_set != source["from_policy_set"]:
        outcome, checked = "revised", f"made under {pair.policy_set}, its record under {source['from_policy_set']}"
    lineage: PairLineage = {"from_policy_set": pair.policy_set, "outcome": outcome, "checked": checked}
    if outcome != "carried":
        lineage["previous"] = {
            "chosen": pair.chosen,
            "rejected": pair.rejected,
            "belief": pair.belief,
            "chosen_score": pair.chosen_score,
            "rejected_score": pair.rejected_score,
        }
    chosen = {"thoughts": record.thoughts, "response": record.response}
    pair_data = pair.model_dump(mode="json")
    return PairSample(pair.id, pair.prompt, dict(pair.metadata), sample.where, chosen, pair_data, lineage)  # type: ignore[arg-type]


def read_pair_samples(
    paths: Any, *, revised: dict[str, GenerateRecord], **options: Any
) -> Iterator[Sample | InputProblem]:
    for item in read_samples(paths, **options):
        yield item if isinstance(item, InputProblem) else as_pair_sample(item, revised)


def pair_input(sample: Sample) -> dict[str, Any]:
    assert isinstance(sample, PairSample)
    return {"prompt": sample.prompt, "id": sample.id, "chosen": sample.chosen, "revision": sample.lineage}


def revised_pair(sample: Sample, state: dict[str, Any], job: GraphJob) -> RevisedPreferenceRecord:
    assert isinstance(sample, PairSample)
    if state["revision"]["outcome"] == "carried":
        old = {k: v for k, v in sample.pair.items() if k not in ("cost_usd", "revision")}
        update = {"policy_set": job.settings.policy_set, "revision": state["revision"], "usage": no_usage()}
        return RevisedPreferenceRecord.model_validate({**old, **update})
    return finished_record(RevisedPreferenceRecord, sample, state, job)


def revise_pairs_job(context: dict[str, Any], n_deliberators: int = 2, model: BaseChatModel | None = None) -> GraphJob:
    """`context` holds the new policies (`policy_file`) and a concrete `base_url`."""
    ctx = Context(**context)
    settings = run_settings(ctx, "preference", PREFERENCE_ROLES, n_deliberators=n_deliberators, revised_pairs=True)
    return GraphJob(
        name="revise-pairs",
        build=partial(build_graph, n_deliberators),
        context=context,
        to_input=pair_input,
        to_record=revised_pair,
        record_type=RevisedPreferenceRecord,
        settings=settings,
        statistics=DeliberationStats,
        model=model,
    )
