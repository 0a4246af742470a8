"""Ear-whisperer: writes a short bad belief that leads the generator into a plausible violation.

Plain resampling gives "rejected" chains of thought about as good as the chosen ones, so DPO
learns little from the pair. The whisperer is shown every belief tried so far with the score it
earned, best first, and asked for a better one: in-context search for the most effective belief.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import Ask, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.answers import BeliefAnswer
from aidsafe.state.preference import Attempt, PreferenceState

NAME = "ear_whisperer"


def best_first(attempts: list[Attempt]) -> list[Attempt]:
    """Highest score first; on ties the earlier attempt first (a stable sort)."""
    return sorted(attempts, key=lambda attempt: -attempt["score"])


def render_tried(attempts: list[Attempt]) -> str:
    if not attempts:
        return "(none yet)"
    return "\n".join(f"- score {a['score']:.2f}: {a['belief']}" for a in best_first(attempts))


def whisper(state: PreferenceState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    answer: BeliefAnswer = yield Ask(
        BeliefAnswer,
        messages(policies, NAME, prompt=state["prompt"], tried=render_tried(state.get("attempts") or [])),
    )
    return {"candidate_belief": answer.belief.strip(), "policy_set": policies.hash, "error": None}
