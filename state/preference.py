"""State of the preference (ear-whisperer) graph and the record it produces.

The record is the contract with the batch runner and the DPO export: `prompt`, `chosen` and
`rejected` samples ({thoughts, response}), the `belief` that produced the rejected one, both
scores, the iterations used, and `negative_example: true` because the rejected side holds
policy-violating text on purpose.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from aidsafe.state.deliberation import AgentError, Refusal, Repair, Thought, Usage, add_usage, append

Side = Literal["chosen", "rejected"]
Part = Literal["response", "thoughts"]
"""What a violation scorer rates: the sample as it always has (`response`: the LLM judge and the HTTP
classifier see the thoughts and the response, a guard model the response it classifies), or the
chain of thought alone (`thoughts`: the safety gate's check for harm a refusal carries in its reasoning)."""
WhisperStop = Literal["threshold", "budget"]


class ThoughtsAndResponse(TypedDict):
    """One output for a prompt: a chain of thought and a response, as `aidsafe generate` writes them.

    Each side of a preference pair is one; `state.evaluation.ThoughtsAndResponseView` reads the same shape leniently."""

    thoughts: list[Thought]
    response: str


class Attempt(TypedDict):
    """One turn of the whisper loop, fed back to the whisperer so that it can do better."""

    belief: str | None
    """None for a plain sample without a whisper (the baseline the benchmark compares against)."""
    rejected: ThoughtsAndResponse
    score: float


class PreferenceInput(TypedDict):
    prompt: str
    id: NotRequired[str]
    metadata: NotRequired[dict[str, Any]]
    chosen: NotRequired[ThoughtsAndResponse]
    """An existing chosen sample (e.g. from an `aidsafe generate` record): skips the deliberation."""


def score_gap(chosen_score: float, rejected_score: float) -> float:
    """How much more the rejected side violates the policies than the chosen one (violation scores,
    0..1): what a pair teaches. Positive for a useful pair; the one gap the export's filter, the card,
    the viewer and the evaluate report all show."""
    return rejected_score - chosen_score


class PreferenceResult(BaseModel):
    """A finished preference pair. `rejected` holds policy-violating text on purpose:
    `negative_example` is always true so that no one mistakes it for training targets.
    `state.records.PreferenceRecord` adds what the batch knows."""

    id: str | None = None
    prompt: str
    chosen: ThoughtsAndResponse
    rejected: ThoughtsAndResponse
    belief: str
    chosen_score: float
    rejected_score: float
    iterations: int
    negative_example: Literal[True] = True
    policy_set: str
    repairs: list[Repair] = Field(default_factory=list)
    """Answers fixed instead of re-asked (`state/answers.py`): each with its node, rule and field."""
    refusals: list[Refusal] = Field(default_factory=list)
    """Agents that refused the task itself; their words are not in `thoughts`. Filter on it."""
    usage: Usage

    @property
    def score_gap(self) -> float:
        return score_gap(self.chosen_score, self.rejected_score)


class PreferenceOutput(PreferenceResult):
    """What the preference graph returns; `error` names the node that gave up."""

    error: AgentError | None = None


class PreferenceState(TypedDict):
    prompt: str
    id: NotRequired[str]
    metadata: NotRequired[dict[str, Any]]
    thoughts: NotRequired[list[Thought]]
    """Written by the deliberation subgraph; becomes the chosen sample."""
    response: NotRequired[str]
    chosen: NotRequired[ThoughtsAndResponse]
    chosen_score: NotRequired[float]
    candidate_belief: NotRequired[str]
    """The whisperer's latest belief, injected into the generator's input (never saved in a sample)."""
    candidate: NotRequired[ThoughtsAndResponse]
    """The whispered generator's latest sample, waiting for its score."""
    attempts: Annotated[list[Attempt], append]
    belief: NotRequired[str]
    rejected: NotRequired[ThoughtsAndResponse]
    rejected_score: NotRequired[float]
    iterations: NotRequired[int]
    negative_example: NotRequired[bool]
    whisper_stop: NotRequired[WhisperStop | None]
    policy_set: NotRequired[str]
    repairs: Annotated[list[Repair], append]
    refusals: Annotated[list[Refusal], append]
    usage: Annotated[Usage, add_usage]
    error: NotRequired[AgentError | None]


def output_to_score(state: PreferenceState, side: Side) -> ThoughtsAndResponse:
    """The output a scorer rates: the given or deliberated chosen one, or the latest whispered one."""
    if side == "rejected":
        candidate: ThoughtsAndResponse = state["candidate"]
        return candidate
    given: ThoughtsAndResponse | None = state.get("chosen")
    return given or ThoughtsAndResponse(thoughts=state["thoughts"], response=state["response"])


def scored(state: PreferenceState, side: Side, score: float, part: Part = "response") -> dict[str, Any]:
    """The state update of a scorer, whichever scorer it is; the thoughts' score has a key of its own."""
    if part == "thoughts":
        return {"thoughts_score": score}
    if side == "chosen":
        return {"chosen": output_to_score(state, side), "chosen_score": score}
    attempt: Attempt = {"belief": state.get("candidate_belief"), "rejected": state["candidate"], "score": score}
    return {"attempts": [attempt]}
