"""Refiner: an impartial judge that removes repetitive, redundant, deceptive and
policy-inconsistent thoughts and returns the final chain of thought and response.

It names thoughts to remove by id instead of rewriting the chain, so the final CoT is exactly
what the deliberation produced, minus what the judge removed, and every removal keeps its reason.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import CONTEXT_BLOCKS, Ask, deliberation_blocks, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.answers import AnswerContext, RefinerAnswer
from aidsafe.state.deliberation import DeliberationState, RemovedThought, Thought

NAME = "refiner"


def refine(state: DeliberationState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    thoughts: list[Thought] = state["thoughts"]
    answer: RefinerAnswer = yield Ask(
        RefinerAnswer,
        messages(
            policies,
            "refiner",
            context=CONTEXT_BLOCKS,
            **deliberation_blocks(state),
        ),
        AnswerContext(thought_ids=tuple(t["id"] for t in thoughts), response=state["response"]),
    )
    by_id = {t["id"]: t for t in thoughts}
    removed: list[RemovedThought] = [
        {"thought": by_id[r.thought_id], "reason": r.reason, "explanation": r.explanation} for r in answer.removals
    ]
    removed_ids = {r.thought_id for r in answer.removals}
    return {
        "thoughts": [t for t in thoughts if t["id"] not in removed_ids],
        "removed_thoughts": removed,
        "response": answer.final_response,
    }
