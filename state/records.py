"""Public records aidsafe writes, one JSON line each: the contract between generate, prefer and evaluate.

Field names follow the released AIDSAFE dataset (`prompt`, `thoughts`, `response`,
`deliberation_log`) plus what a dataset needs to say how it was made: model, policy-set hash, usage.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from aidsafe.state.deliberation import AgentError, Intents, RemovedThought, StopReason, Thought, Turn, Usage
from aidsafe.state.gate import SafetyVerdict
from aidsafe.state.preference import Sample


class GenerateRecord(BaseModel):
    """One line of `aidsafe generate` output: a finished deliberation."""

    id: str
    prompt: str
    intents: Intents
    thoughts: list[Thought]
    response: str
    deliberation_log: list[Turn]
    removed_thoughts: list[RemovedThought]
    rounds: int
    stop_reason: StopReason
    model: str
    policy_set: str
    usage: Usage
    metadata: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    """The run settings that made the record (graph, model per role, agents, rounds, temperature, ...)."""
    safety: SafetyVerdict | None = Field(default=None, exclude_if=lambda v: v is None)
    """The safety gate's verdict on the final response, when the run had one (`--safety-threshold`)."""
    cost_usd: float | None = Field(default=None, exclude_if=lambda v: v is None)
    """What the sample's model calls cost, when the run had prices (the key is left out otherwise)."""


class PreferenceRecord(BaseModel):
    """One line of `aidsafe prefer` output. `rejected` holds policy-violating text on purpose:
    `negative_example` is always true so that no one mistakes it for training targets."""

    id: str
    prompt: str
    chosen: Sample
    rejected: Sample
    belief: str
    chosen_score: float
    rejected_score: float
    iterations: int
    negative_example: Literal[True] = True
    model: str
    policy_set: str
    usage: Usage
    settings: dict[str, Any] = Field(default_factory=dict)
    """The run settings that made the record (graph, model per role, whisper settings, ...)."""
    cost_usd: float | None = Field(default=None, exclude_if=lambda v: v is None)
    """What this run's calls for the pair cost, when the run had prices (the key is left out otherwise)."""


class ErrorRecord(BaseModel):
    """One line of an errors file: a sample or an input line that produced no record, and why."""

    id: str | None
    error: AgentError
    prompt: str | None = None


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class SftRecord(BaseModel):
    """TRL's conversational format: `SFTTrainer` applies the model's chat template to `messages`."""

    id: str
    messages: list[ChatMessage]


class DpoRecord(BaseModel):
    """TRL's conversational preference format: what `DPOTrainer` takes."""

    id: str
    prompt: list[ChatMessage]
    chosen: list[ChatMessage]
    rejected: list[ChatMessage]
