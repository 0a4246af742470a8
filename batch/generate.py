"""The `generate` job: the deliberation graph (or the zero-shot baseline) over a batch, one
`GenerateRecord` per prompt. Both graphs have the same output shape, so records and exports match."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal, TypeVar

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.inputs import Sample
from aidsafe.batch.settings import run_settings
from aidsafe.graphs import baseline, deliberation, gated
from aidsafe.metrics.deliberation import DeliberationStats
from aidsafe.nodes.context import Context, Role
from aidsafe.state.records import GenerateRecord

DELIBERATION_ROLES: tuple[Role, ...] = ("initializer", "deliberator", "refiner")
Record = TypeVar("Record", bound=BaseModel)


class DeliberationRecord(GenerateRecord):
    """A record of the deliberation: how `generate` tells its own lines in an existing output from
    baseline records (which would otherwise mark their prompts done)."""

    stop_reason: Literal["consensus", "budget"]


class BaselineRecord(GenerateRecord):
    """A record of the zero-shot baseline (`generate --baseline`)."""

    stop_reason: Literal["baseline"]


def deliberation_input(sample: Sample) -> dict[str, Any]:
    """The sample's metadata stays out of the graph (and its checkpoints): the record takes it from the sample."""
    return {"prompt": sample.prompt, "id": sample.id}


def finished_record(record_cls: type[Record], sample: Sample, state: dict[str, Any], job: GraphJob) -> Record:
    """A job's `to_record` (as `partial(finished_record, GenerateRecord)`): the final state plus
    what the batch knows of the sample."""
    return record_cls.model_validate(
        {
            **state,
            "id": sample.id,
            "prompt": sample.prompt,
            "metadata": sample.metadata,
            "model": job.settings.context["model"],
            "settings": job.settings.fingerprint,
        }
    )


def generate_job(
    context: dict[str, Any], n_deliberators: int = 2, model: BaseChatModel | None = None, *, zero_shot: bool = False
) -> GraphJob:
    """`context` must hold a concrete `base_url` (the embedded server already started).

    `zero_shot` runs the single-call LLM_ZS baseline instead of the deliberation.
    """
    ctx = Context(**context)
    build: Any
    if zero_shot:
        settings = run_settings(ctx, "baseline", ("generator",))
        build = baseline.build_graph
    elif ctx.safety_threshold is not None:  # the final response is rated too: the judge is a role
        settings = run_settings(
            ctx, "gated deliberation", (*DELIBERATION_ROLES, "judge"), n_deliberators=n_deliberators
        )
        build = partial(gated.build_graph, n_deliberators)
    else:
        settings = run_settings(ctx, "deliberation", DELIBERATION_ROLES, n_deliberators=n_deliberators)
        build = partial(deliberation.build_graph, n_deliberators)
    return GraphJob(
        name="baseline" if zero_shot else "generate",
        build=build,
        context=context,
        to_input=deliberation_input,
        to_record=partial(finished_record, GenerateRecord),
        record_type=BaselineRecord if zero_shot else DeliberationRecord,
        settings=settings,
        statistics=DeliberationStats,
        model=model,
    )
