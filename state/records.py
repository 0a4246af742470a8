"""Public records aidsafe writes, one JSON line each: the contract between generate, prefer and evaluate.

Field names follow the released AIDSAFE dataset (`prompt`, `thoughts`, `response`,
`deliberation_log`) plus what a dataset needs to say how it was made: model, policy-set hash, usage.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from aidsafe.state.deliberation import AgentError, DeliberationResult
from aidsafe.state.gate import SafetyVerdict
from aidsafe.state.preference import PreferenceResult
from aidsafe.state.revision import Lineage, PairLineage


class GenerateRecord(DeliberationResult):
    """One line of `aidsafe generate` output: a finished deliberation, with its input's metadata."""

    id: str
    model: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    """The run settings that made the record (graph, model per role, agents, rounds, temperature, ...)."""
    safety: SafetyVerdict | None = Field(default=None, exclude_if=lambda v: v is None)
    """The safety gate's verdict on the final response, when the run had one (`--safety-threshold`)."""
    cost_usd: float | None = Field(default=None, exclude_if=lambda v: v is None)
    """What the sample's model calls cost, when the run had prices (the key is left out otherwise)."""
    revision: Lineage | None = Field(default=None, exclude_if=lambda v: v is None)
    """A record of `aidsafe revise`: the policy set it came from, carried / revised / regenerated,
    what was superseded and why. Its `usage` and `cost_usd` are then the revision's own."""


class PreferenceRecord(PreferenceResult):
    """One line of `aidsafe prefer` output (see `PreferenceResult` on `negative_example`), with its
    input's metadata: a prompt row's other columns, or the generate record's `metadata` and columns."""

    id: str
    model: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    """The run settings that made the record (graph, model per role, whisper settings, ...)."""
    cost_usd: float | None = Field(default=None, exclude_if=lambda v: v is None)
    """What this run's calls for the pair cost, when the run had prices (the key is left out otherwise)."""
    revision: PairLineage | None = Field(default=None, exclude_if=lambda v: v is None)
    """A pair of `aidsafe revise-pairs`: carried with its chosen side, or remade around the revised one."""


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
    policy_set: str
    """Hash of the policy set the record was made with: `aidsafe train` names it in the model card."""


class DpoRecord(BaseModel):
    """TRL's conversational preference format: what `DPOTrainer` takes."""

    id: str
    prompt: list[ChatMessage]
    chosen: list[ChatMessage]
    rejected: list[ChatMessage]
    policy_set: str
