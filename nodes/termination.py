"""Termination check: after each full round, stop on consensus or when the budget is spent.

Consensus means every agent of the round just finished agreed and changed nothing. No model call.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from aidsafe.nodes.context import node_context
from aidsafe.state.deliberation import DeliberationState

NAME = "termination_check"


def termination_check(state: DeliberationState, config: RunnableConfig) -> dict[str, Any]:
    ctx = node_context(config)
    round_number = state["rounds"] + 1
    this_round = [turn for turn in state["deliberation_log"] if turn["round"] == round_number]
    if this_round and all(turn["agreed"] for turn in this_round):
        return {"rounds": round_number, "stop_reason": "consensus"}
    if round_number >= ctx.max_rounds:
        return {"rounds": round_number, "stop_reason": "budget"}
    return {"rounds": round_number}
