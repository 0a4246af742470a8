"""The `revise` job: an output of `aidsafe generate` made under old policies, under new ones.

Each record is classified by what its thoughts cite (`classify`), before any call:

- **revised** when a thought cites a policy whose text it rested on was edited or removed
  (`PolicyDiff.superseding`): those thoughts move to the lineage's `superseded`, with the clauses
  that changed; the intents and the other thoughts are kept (renumbered from 0), the old response is
  the draft, and the deliberation's rounds and refiner run again. Also revised, with every thought
  kept: a record citing a policy that only gained clauses (widened), which therefore applies;
- **carried** otherwise, when no policy it did not cite is new or changed: nothing is paid; when
  some are, one triage call (`nodes/triage.py`) asks whether they apply to the prompt, and the
  record is revised if any does;
- **regenerated** from the prompt when it was made under another policy set than the old one the
  diff starts from (nothing says what changed for it).

`classify` also feeds `estimate`, the calls and tokens `aidsafe policies diff --records` shows
before anything is paid, so the estimate and the run agree on what each record needs.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import ValidationError

from aidsafe.batch.engine import GraphJob, SampleFailure
from aidsafe.batch.generate import DELIBERATION_ROLES, finished_record
from aidsafe.batch.inputs import InputProblem, Sample, content_id, first_problem, read_samples
from aidsafe.batch.prices import PriceTable
from aidsafe.batch.settings import run_settings
from aidsafe.graphs.revision import build_graph
from aidsafe.metrics.deliberation import DeliberationStats
from aidsafe.nodes.context import Context
from aidsafe.policies.diff import PolicyDiff
from aidsafe.state.deliberation import Thought, Usage, add_usage, no_usage
from aidsafe.state.records import GenerateRecord
from aidsafe.state.revision import Lineage, Outcome, SupersededThought


class RevisedRecord(GenerateRecord):
    """A line of `aidsafe revise` output: a deliberation record with its `revision` lineage."""

    stop_reason: Literal["consensus", "budget"]
    revision: Lineage


class SourceRecord(GenerateRecord):
    """A line `revise` accepts: a finished deliberation (a baseline record has none to revise)."""

    stop_reason: Literal["consensus", "budget"]


@dataclasses.dataclass(frozen=True)
class SampleWithRecord(Sample):
    """A generate record as a sample: the prompt, the record's own metadata, the whole record."""

    record: dict[str, Any] = dataclasses.field(default_factory=dict)

    def checkpoint_key(self) -> str:
        return content_id(json.dumps(self.record, sort_keys=True))


def as_revision_sample(sample: Sample) -> Sample | InputProblem:
    """The sample with its record, or a problem naming what is wrong with the line."""
    line = {**sample.metadata, "id": sample.id, "prompt": sample.prompt}
    if line.get("stop_reason") == "baseline":
        return InputProblem(sample.where, "a baseline record has no deliberation to revise", sample.id, sample.prompt)
    try:
        record = SourceRecord.model_validate(line)
    except ValidationError as exc:
        message = f"not an `aidsafe generate` record ({first_problem(exc)})"
        return InputProblem(sample.where, message, sample.id, sample.prompt)
    data = record.model_dump(mode="json")
    return SampleWithRecord(sample.id, sample.prompt, dict(record.metadata), sample.where, data)


def read_revision_samples(paths: Any, **options: Any) -> Iterator[Sample | InputProblem]:
    """`read_samples` over generate records, each line checked as one."""
    for item in read_samples(paths, **options):
        yield item if isinstance(item, InputProblem) else as_revision_sample(item)


@dataclass
class Plan:
    """What one record needs under the new policies: `classify`'s answer, before any call."""

    outcome: Outcome
    checked: str
    kept: list[Thought] = field(default_factory=list)
    kept_ids: list[dict[str, int]] = field(default_factory=list)
    superseded: list[SupersededThought] = field(default_factory=list)
    triage: list[str] = field(default_factory=list)
    """Policies the record never cited that are new, widened or edited: asked about in one call."""


def _cited(thoughts: Iterable[Thought]) -> set[str]:
    return {policy_id for thought in thoughts for policy_id in thought["policy_ids"]}


def _renumbered(kept: list[Thought]) -> tuple[list[Thought], list[dict[str, int]]]:
    new_id = {thought["id"]: index for index, thought in enumerate(kept)}
    thoughts: list[Thought] = [
        {**t, "id": new_id[t["id"]], "corrects": new_id.get(t["corrects"]) if t["corrects"] is not None else None}
        for t in kept
    ]
    return thoughts, [{"from": old, "to": new} for old, new in new_id.items()]


def classify(diff: PolicyDiff, record: dict[str, Any]) -> Plan:
    """Carried, revised or regenerated, and why; pure (the run and the estimate share it)."""
    made_under = record["policy_set"]
    if made_under == diff.new_hash:
        return Plan("carried", "already made under the new policy set")
    if made_under != diff.old_hash:
        checked = f"made under policy set {made_under}, not {diff.old_hash} (the diff's old set): regenerated"
        return Plan("regenerated", checked)
    thoughts: list[Thought] = record["thoughts"]
    superseded: list[SupersededThought] = []
    kept: list[Thought] = []
    for thought in thoughts:
        resting = sorted(set(thought["policy_ids"]) & diff.superseding)
        if resting:
            because = [note for policy_id in resting for note in diff.reasons(policy_id)]
            superseded.append({"thought": thought, "because": because})  # type: ignore[typeddict-item]
        else:
            kept.append(thought)
    renumbered, kept_ids = _renumbered(kept)
    cited = _cited(thoughts)
    checked = f"thoughts cite {', '.join(sorted(cited)) or 'no policy'}"
    if superseded:
        changed = sorted(_cited(s["thought"] for s in superseded) & diff.superseding)
        checked += f"; {', '.join(changed)} changed: {len(superseded)} thoughts superseded, deliberated again"
        return Plan("revised", checked, renumbered, kept_ids, superseded)
    widened = sorted(cited & diff.to_triage)
    if widened:
        checked += f"; {', '.join(widened)} gained clauses and applies: deliberated again"
        return Plan("revised", checked, renumbered, kept_ids)
    ask = sorted(diff.to_triage - cited)
    checked += "; none of them changed"
    if ask:
        checked += f"; asked whether {', '.join(ask)} apply"
    return Plan("carried", checked, renumbered, kept_ids, triage=ask)


def revision_input(diff: PolicyDiff, sample: Sample) -> dict[str, Any]:
    """The graph's input: the record's kept state and its lineage (`graphs/revision.py`)."""
    assert isinstance(sample, SampleWithRecord)
    record = sample.record
    plan = classify(diff, record)
    lineage: Lineage = {
        "from_policy_set": record["policy_set"],
        "outcome": plan.outcome,
        "checked": plan.checked,
        "kept_thoughts": plan.kept_ids,
        "superseded": plan.superseded,
        "previous": {
            "response": record["response"],
            "rounds": record["rounds"],
            "stop_reason": record["stop_reason"],
            "deliberation_log_turns": len(record["deliberation_log"]),
            "removed_thoughts": record["removed_thoughts"],
            "usage": record["usage"],
        },
    }
    base = {"prompt": sample.prompt, "id": sample.id, "revision": lineage}
    if plan.outcome == "regenerated":
        return base
    return {
        **base,
        "intents": record["intents"],
        "thoughts": plan.kept,
        "response": record["response"],
        "rounds": 0,
        "policy_set": diff.new_hash,
        "triage_ids": plan.triage,
        "error": None,
    }


def revised_record(sample: Sample, state: dict[str, Any], job: GraphJob) -> RevisedRecord:
    """A carried record is the old one with the new policy set and its lineage; any other is the
    finished deliberation. Either way `usage` is what this revision spent."""
    assert isinstance(sample, SampleWithRecord)
    lineage: Lineage = state["revision"]
    usage = state.get("usage") or no_usage()
    if lineage["outcome"] == "carried":
        old = {k: v for k, v in sample.record.items() if k not in ("cost_usd", "revision")}
        new_set = job.settings.policy_set
        return RevisedRecord.model_validate({**old, "policy_set": new_set, "revision": lineage, "usage": usage})
    if not state.get("thoughts") and not state.get("response"):
        raise SampleFailure("revision", "the revised deliberation left no thoughts and no response")
    return finished_record(RevisedRecord, sample, state, job)


def revise_job(
    context: dict[str, Any], diff: PolicyDiff, n_deliberators: int = 2, model: BaseChatModel | None = None
) -> GraphJob:
    """`context` holds the new policies (`policy_file`) and a concrete `base_url`."""
    ctx = Context(**context)
    settings = run_settings(
        ctx, "revision", (*DELIBERATION_ROLES, "judge"), n_deliberators=n_deliberators, from_policy_set=diff.old_hash
    )
    return GraphJob(
        name="revise",
        build=partial(build_graph, n_deliberators),
        context=context,
        to_input=partial(revision_input, diff),
        to_record=revised_record,
        record_type=RevisedRecord,
        settings=settings,
        statistics=DeliberationStats,
        model=model,
    )


# --------------------------------------------------------------------------------------------
# The estimate shown before anything is paid


@dataclass
class Estimate:
    """Calls and tokens of a revision against a full regeneration, from each record's own usage."""

    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    triage_calls: int = 0
    redo_calls: int = 0
    regenerate_calls: int = 0
    revision_usage: Usage = field(default_factory=no_usage)
    regeneration_usage: Usage = field(default_factory=no_usage)
    citing: Counter[str] = field(default_factory=Counter)
    """Records whose thoughts cite each policy (what a change to it touches)."""
    triaged_for: Counter[str] = field(default_factory=Counter)
    """Records a triage call asks about each policy."""

    def add(self, diff: PolicyDiff, record: dict[str, Any], n_deliberators: int = 2) -> None:
        plan = classify(diff, record)
        self.records += 1
        self.outcomes[plan.outcome] += 1
        self.citing.update(_cited(record["thoughts"]))
        self.triaged_for.update(plan.triage)
        usage: Usage = record["usage"]
        calls = usage["llm_calls"] or 2 + len(record["deliberation_log"]) + 1
        rounds_and_refiner = max(len(record["deliberation_log"]), n_deliberators) + 1
        spent = {"carried": 0, "revised": rounds_and_refiner, "regenerated": calls}[plan.outcome]
        triage = 1 if plan.triage else 0
        self.triage_calls += triage
        self.redo_calls += spent
        self.regenerate_calls += calls
        self.revision_usage = add_usage(self.revision_usage, _scaled(usage, (spent + triage) / calls))
        self.regeneration_usage = add_usage(self.regeneration_usage, usage)

    def lines(self, prices: PriceTable | None) -> list[str]:
        revision_calls = self.triage_calls + self.redo_calls
        counts = ", ".join(f"{k} {self.outcomes[k]}" for k in ("carried", "revised", "regenerated"))
        lines = [
            f"records {self.records}: {counts}",
            f"estimated calls: revision {revision_calls} (triage {self.triage_calls}, redo {self.redo_calls}) "
            f"against {self.regenerate_calls} for a full regeneration",
        ]
        if prices is not None:
            revision, full = prices.cost(self.revision_usage), prices.cost(self.regeneration_usage)
            lines.append(f"estimated cost: revision ${revision:.4f} against ${full:.4f} for a full regeneration")
        return lines


def _scaled(usage: Usage, factor: float) -> Usage:
    """`usage` times `factor`, per model too: the tokens of a share of the record's calls."""
    scaled: Usage = {
        "llm_calls": round(usage["llm_calls"] * factor),
        "input_tokens": round(usage["input_tokens"] * factor),
        "output_tokens": round(usage["output_tokens"] * factor),
    }
    by_model = usage.get("by_model")
    if by_model:
        scaled["by_model"] = {
            model: {
                "input_tokens": round(tokens["input_tokens"] * factor),
                "cached_input_tokens": round(tokens["cached_input_tokens"] * factor),
                "output_tokens": round(tokens["output_tokens"] * factor),
            }
            for model, tokens in by_model.items()
        }
    return scaled
