"""State of the revision graph and the lineage a revised record carries (plain JSON data).

A record made under an old policy set is revised under a new one (`aidsafe revise`): carried over
as it is, revised (its intents and the thoughts that cite only unchanged policies are kept, the rest
is `superseded`, and the deliberation runs again from there), or regenerated from the prompt. The
`revision` of the record says which, from which policy set, and why.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict

from aidsafe.state.deliberation import (
    DeliberationInput,
    DeliberationOutput,
    DeliberationState,
    Intents,
    RemovedThought,
    Thought,
    Usage,
)
from aidsafe.state.preference import PreferenceInput, PreferenceOutput, PreferenceState, ThoughtsAndResponse

Outcome = Literal["carried", "revised", "regenerated"]


class ClauseNote(TypedDict):
    """One change of the policy text a superseded thought rested on (`policies/diff.py`)."""

    policy_id: str
    kind: str | None
    """`allows` or `forbids`; None when the whole policy was removed."""
    status: str
    """`changed`, `removed`, or `policy removed`."""
    clause_id: str | None
    old: str | None
    new: str | None


class SupersededThought(TypedDict):
    thought: Thought
    """As it was in the old record (its old id)."""
    because: list[ClauseNote]


class Triage(TypedDict):
    """The one short call that decides whether policies the record never cited now apply to it."""

    asked: list[str]
    applies: list[str]


class Previous(TypedDict):
    """What the old record held that the revision replaced."""

    response: str
    rounds: int
    stop_reason: str
    deliberation_log_turns: int
    removed_thoughts: list[RemovedThought]
    usage: Usage


class Lineage(TypedDict):
    from_policy_set: str
    outcome: Outcome
    checked: str
    """In words: what was checked, and what decided the outcome."""
    kept_thoughts: list[dict[str, int]]
    """`{"from": old id, "to": new id}` for each thought carried into the revision (renumbered from 0)."""
    superseded: list[SupersededThought]
    triage: NotRequired[Triage]
    previous: Previous


class RevisionInput(DeliberationInput):
    """A record's kept state: the deliberation continues from it (or restarts, when regenerated)."""

    intents: NotRequired[Intents]
    thoughts: NotRequired[list[Thought]]
    response: NotRequired[str]
    rounds: NotRequired[int]
    policy_set: NotRequired[str]
    revision: Lineage
    triage_ids: NotRequired[list[str]]


class RevisionState(DeliberationState):
    revision: Lineage
    triage_ids: NotRequired[list[str]]
    """Policies to ask about (added, widened or edited, not cited by the record); empty: none."""


class RevisionOutput(DeliberationOutput):
    revision: Lineage


class PreviousPair(TypedDict):
    """The pair as it was before its chosen side was revised."""

    chosen: ThoughtsAndResponse
    rejected: ThoughtsAndResponse
    belief: str
    chosen_score: float
    rejected_score: float


class PairLineage(TypedDict):
    """A preference pair under new policies: carried with its chosen side, or remade around the
    revised chosen side (a new rejected side from the ear-whisperer under the new text)."""

    from_policy_set: str
    outcome: Outcome
    """The chosen side's record's outcome (`revision.outcome` of the revised generate record)."""
    checked: str
    previous: NotRequired[PreviousPair]


class PairRevisionInput(PreferenceInput):
    revision: PairLineage


class PairRevisionState(PreferenceState):
    revision: PairLineage


class PairRevisionOutput(PreferenceOutput):
    revision: PairLineage
