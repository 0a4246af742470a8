"""The `prefer` job: the preference (ear-whisperer) graph over a batch, one `PreferenceRecord` per prompt.

The input is a prompts file or the output of `aidsafe generate`, told apart row by row: a row with
`thoughts` is a generate record, and its thoughts and response become the chosen sample, so the
deliberation is not run a second time (only scored). Other rows are prompts: the graph deliberates
for the chosen side first.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from functools import partial
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import TypeAdapter, ValidationError

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.generate import finished_record
from aidsafe.batch.inputs import InputProblem, Sample, content_id, first_problem, read_samples
from aidsafe.batch.settings import run_settings
from aidsafe.graphs.preference import build_graph
from aidsafe.metrics.deliberation import DeliberationStats
from aidsafe.nodes.context import Context, Role
from aidsafe.state.preference import ThoughtsAndResponse
from aidsafe.state.records import GenerateRecord, PreferenceRecord

PREFERENCE_ROLES: tuple[Role, ...] = ("initializer", "deliberator", "refiner", "whisperer", "generator", "judge")
_CHOSEN = TypeAdapter(ThoughtsAndResponse)


@dataclasses.dataclass(frozen=True)
class SampleWithChosen(Sample):
    """A prompt that arrives with its chosen sample (a row of `aidsafe generate` output)."""

    chosen: ThoughtsAndResponse | None = None

    def checkpoint_key(self) -> str:
        """The chosen side too: a run from prompts deliberated its own, which must not be resumed."""
        return content_id(json.dumps([self.prompt, self.chosen], sort_keys=True))


def with_chosen(sample: Sample) -> Sample | InputProblem:
    """The sample with the chosen side of a generate record, or a problem naming what is wrong.

    `thoughts` marks a generate record; `response` alone does not, because prompt datasets often
    carry a reference response (BeaverTails, for one) and those rows are prompts.
    """
    if "chosen" in sample.metadata and "rejected" in sample.metadata:
        message = (
            "is a preference record (`aidsafe prefer` output): its chosen side would be generated again; "
            "give prefer the prompts or the `aidsafe generate` records"
        )
        return InputProblem(sample.where, message, sample.id)
    if "thoughts" not in sample.metadata:
        return sample
    if "response" not in sample.metadata:
        message = "has 'thoughts' but no 'response': a row of `aidsafe generate` output needs both"
        return InputProblem(sample.where, message, sample.id, sample.prompt)
    try:
        chosen = _CHOSEN.validate_python({name: sample.metadata[name] for name in ("thoughts", "response")})
    except ValidationError as exc:
        return InputProblem(
            sample.where, f"not a usable chosen sample ({first_problem(exc)})", sample.id, sample.prompt
        )
    if not chosen["response"].strip():
        return InputProblem(sample.where, "the chosen sample has an empty response", sample.id, sample.prompt)
    rest = {k: v for k, v in sample.metadata.items() if k not in GenerateRecord.model_fields}
    original = sample.metadata.get("metadata")
    metadata = {**rest, **original} if isinstance(original, dict) else rest
    return SampleWithChosen(sample.id, sample.prompt, metadata, sample.where, chosen)


def read_preference_samples(paths: Any, **options: Any) -> Iterator[Sample | InputProblem]:
    """`read_samples`, with generate records turned into samples that carry their chosen side."""
    for item in read_samples(paths, **options):
        yield item if isinstance(item, InputProblem) else with_chosen(item)


def preference_input(sample: Sample) -> dict[str, Any]:
    given = sample.chosen if isinstance(sample, SampleWithChosen) else None
    return {
        "prompt": sample.prompt,
        "id": sample.id,
        **({"chosen": given} if given else {}),
    }


def prefer_job(context: dict[str, Any], n_deliberators: int = 2, model: BaseChatModel | None = None) -> GraphJob:
    """`context` must hold a concrete `base_url` (the embedded server already started)."""
    ctx = Context(**context)
    settings = run_settings(ctx, "preference", PREFERENCE_ROLES, n_deliberators=n_deliberators)
    return GraphJob(
        name="prefer",
        build=partial(build_graph, n_deliberators),
        context=context,
        to_input=preference_input,
        to_record=partial(finished_record, PreferenceRecord),
        record_type=PreferenceRecord,
        settings=settings,
        statistics=DeliberationStats,
        model=model,
    )
