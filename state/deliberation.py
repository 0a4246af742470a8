"""State of the deliberation graph: plain JSON-like data, so checkpoints and traces stay readable.

The input and output schemas are narrow on purpose: LangServe and Studio validate and render them.
The output schema is the pydantic `DeliberationResult` the generate record extends (LangGraph still
returns a plain dict of its keys), so the fields of a finished deliberation are written once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

StopReason = Literal["consensus", "budget", "error", "baseline"]
"""`baseline`: the zero-shot single-call graph (LLM_ZS), which never deliberates."""
RemovalReason = Literal["repetitive", "redundant", "deceptive", "policy_inconsistent"]


class Intents(TypedDict):
    explicit: list[str]
    implicit: list[str]


class Thought(TypedDict):
    id: int
    text: str
    agent: str
    round: int
    policy_ids: list[str]
    corrects: int | None


class Turn(TypedDict):
    """One agent turn of the deliberation, as the released AIDSAFE `deliberation_log` keeps it."""

    round: int
    agent: str
    added_thoughts: list[int]
    updated_response: str | None
    agreed: bool


class RemovedThought(TypedDict):
    thought: Thought
    reason: RemovalReason
    explanation: str


RepairRule = Literal[
    "unknown_policy_id",
    "duplicate_policy_id",
    "unknown_correction_target",
    "unknown_removal",
    "duplicate_removal",
    "every_thought_removed",
    "blank_thought",
    "blank_response",
    "blank_final_response",
    "truncated_answer_salvaged",
]
"""What was wrong with an answer that was used anyway; the rules are listed in `state/answers.py`."""


class AnswerRepair(TypedDict):
    rule: RepairRule
    field: str
    """Where in the answer, e.g. `new_thoughts[1].corrects`."""
    found: Any
    """The value that was repaired (for a cut-off answer, how it ended)."""
    action: str
    """What was done instead of a re-ask, e.g. "kept as a new thought"."""


class Repair(AnswerRepair):
    """An answer fixed instead of re-asked, kept in the sample for audit."""

    node: str


class Refusal(TypedDict):
    """An agent that refused the task itself instead of reasoning: its words, left out of the thoughts."""

    node: str
    text: str


class ModelUsage(TypedDict):
    input_tokens: int
    cached_input_tokens: int
    """Of `input_tokens`, those the server read from its prompt cache (priced lower by some providers)."""
    output_tokens: int


class Usage(TypedDict):
    llm_calls: int
    input_tokens: int
    output_tokens: int
    by_model: NotRequired[dict[str, ModelUsage]]
    """The same tokens per model as the server named it, so that each model's price applies."""


class AgentError(TypedDict):
    node: str
    message: str


def no_usage() -> Usage:
    """The usage of no call at all: where a sum starts."""
    return {"llm_calls": 0, "input_tokens": 0, "output_tokens": 0}


def add_usage(left: Usage | None, right: Usage | None) -> Usage:
    """Reducer: each node reports the usage of its own calls; the state keeps the sum."""
    parts = [part for part in (left, right) if part]
    total: Usage = {
        "llm_calls": sum(part["llm_calls"] for part in parts),
        "input_tokens": sum(part["input_tokens"] for part in parts),
        "output_tokens": sum(part["output_tokens"] for part in parts),
    }
    by_model: dict[str, ModelUsage] = {}
    for part in parts:
        for model, tokens in (part.get("by_model") or {}).items():
            kept = by_model.setdefault(model, {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0})
            for key in ("input_tokens", "cached_input_tokens", "output_tokens"):
                kept[key] += tokens[key]  # type: ignore[literal-required]
    if by_model:
        total["by_model"] = by_model
    return total


def append(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
    return (left or []) + (right or [])


class DeliberationInput(TypedDict):
    prompt: str
    id: NotRequired[str]
    metadata: NotRequired[dict[str, Any]]


class DeliberationResult(BaseModel):
    """A finished deliberation (or zero-shot baseline) of one prompt: the released AIDSAFE columns
    plus how it was made. `state.records.GenerateRecord` adds what the batch knows."""

    id: str | None = None
    prompt: str
    intents: Intents
    thoughts: list[Thought]
    response: str
    deliberation_log: list[Turn]
    removed_thoughts: list[RemovedThought]
    rounds: int
    stop_reason: StopReason
    policy_set: str
    repairs: list[Repair] = Field(default_factory=list)
    """Answers fixed instead of re-asked (`state/answers.py`): each with its node, rule and field."""
    refusals: list[Refusal] = Field(default_factory=list)
    """Agents that refused the task itself; their words are not in `thoughts`. Filter on it."""
    usage: Usage


class DeliberationOutput(DeliberationResult):
    """What the deliberation and baseline graphs return; `error` names the node that gave up."""

    error: AgentError | None = None


class DeliberationState(TypedDict):
    prompt: str
    id: NotRequired[str]
    metadata: NotRequired[dict[str, Any]]
    intents: NotRequired[Intents]
    thoughts: NotRequired[list[Thought]]
    """Every thought written so far; the refiner replaces the list with the ones it keeps."""
    response: NotRequired[str]
    deliberation_log: Annotated[list[Turn], append]
    removed_thoughts: NotRequired[list[RemovedThought]]
    rounds: NotRequired[int]
    stop_reason: NotRequired[StopReason]
    policy_set: NotRequired[str]
    repairs: Annotated[list[Repair], append]
    refusals: Annotated[list[Refusal], append]
    usage: Annotated[Usage, add_usage]
    error: NotRequired[AgentError | None]
