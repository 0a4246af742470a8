"""Deliberator k of N: reviews all thoughts and the response against every policy.

It adds new thoughts or corrections, may update the response, or agrees that nothing is missing.
Repeats are dropped here too (not only asked of the model), so a turn that only repeats counts as
adding nothing.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import CONTEXT_BLOCKS, AgentLogic, Ask, as_thoughts, deliberation_blocks, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.answers import AnswerContext, CorrectionDraft, DeliberatorAnswer
from aidsafe.state.deliberation import DeliberationState, Thought, Turn


def node_name(index: int) -> str:
    return f"deliberator_{index}"


def _normalized(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def deliberator(index: int, count: int) -> AgentLogic[DeliberationState]:
    """The logic of deliberator `index` (1-based) of `count`."""
    name = node_name(index)

    def deliberate(state: DeliberationState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
        thoughts: list[Thought] = state["thoughts"]
        round_number = state["rounds"] + 1
        answer: DeliberatorAnswer = yield Ask(
            DeliberatorAnswer,
            messages(
                policies,
                "deliberator",
                context=CONTEXT_BLOCKS,
                round=round_number,
                agent_index=index,
                agent_count=count,
                **deliberation_blocks(state),
            ),
            AnswerContext(thought_ids=tuple(t["id"] for t in thoughts)),
        )
        seen = {_normalized(t["text"]) for t in thoughts}
        new_drafts: list[CorrectionDraft] = []
        for draft in answer.new_thoughts:
            key = _normalized(draft.text)
            if key and key not in seen:
                seen.add(key)
                new_drafts.append(draft)
        added = as_thoughts(new_drafts, name, round_number, first_id=len(thoughts))
        new_response = (answer.updated_response or "").strip()
        updated = new_response if new_response and new_response != state["response"] else None
        turn: Turn = {
            "round": round_number,
            "agent": name,
            "added_thoughts": [t["id"] for t in added],
            "updated_response": updated,
            "agreed": answer.agrees and not added and updated is None,
        }
        return {
            "thoughts": thoughts + added,
            "response": updated or state["response"],
            "deliberation_log": [turn],
        }

    return deliberate
