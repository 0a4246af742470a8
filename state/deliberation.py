"""State of the deliberation graph: plain JSON-like data, so checkpoints and traces stay readable.

The input and output schemas are narrow on purpose: LangServe and Studio validate and render them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

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


class DeliberationOutput(TypedDict):
    id: NotRequired[str]
    prompt: str
    intents: Intents
    thoughts: list[Thought]
    response: str
    deliberation_log: list[Turn]
    removed_thoughts: list[RemovedThought]
    rounds: int
    stop_reason: StopReason
    policy_set: str
    usage: Usage
    error: AgentError | None


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
    usage: Annotated[Usage, add_usage]
    error: NotRequired[AgentError | None]
