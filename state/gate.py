"""State of the gated deliberation (`graphs.gated`): the deliberation's, plus the safety verdict."""

from __future__ import annotations

from typing import NotRequired

from typing_extensions import TypedDict

from aidsafe.state.deliberation import DeliberationOutput, DeliberationState
from aidsafe.state.preference import ThoughtsAndResponse


class SafetyVerdict(TypedDict):
    score: float
    """The violation scorer's rating of the final response, 0 (none) to 1."""
    threshold: float
    flagged: bool
    """`score > threshold`: the record stays in the output but is left out of the SFT export."""
    thoughts_score: NotRequired[float]
    """The scorer's rating of the chain of thought alone (`check_thoughts`); absent when not checked
    (and in records from before the check existed)."""
    thoughts_flagged: NotRequired[bool]
    """`thoughts_score > threshold`: the thoughts carry harm, whatever the response says; the record
    is left out of the SFT export like a flagged response."""


def safety_verdict(score: float, thoughts_score: float | None, threshold: float) -> SafetyVerdict:
    """The verdict on a sample's scores: each flagged when above `threshold`."""
    verdict: SafetyVerdict = {"score": score, "threshold": threshold, "flagged": score > threshold}
    if thoughts_score is not None:
        verdict["thoughts_score"], verdict["thoughts_flagged"] = thoughts_score, thoughts_score > threshold
    return verdict


class GatedOutput(DeliberationOutput):
    """What the gated deliberation returns: the deliberation's output and the gate's verdict."""

    safety: SafetyVerdict | None = None


class GatedState(DeliberationState):
    chosen: NotRequired[ThoughtsAndResponse]
    """The final response as the scorer's "chosen" side (its nodes read and write this key)."""
    chosen_score: NotRequired[float]
    thoughts_score: NotRequired[float]
    safety: NotRequired[SafetyVerdict | None]
