"""Zero-shot baseline (the paper's LLM_ZS): one call writes policy-embedded thoughts and a response.

Same policies, same shared system prefix and same output shape as the deliberation graph, so a
baseline file and a deliberation file are produced, stored and graded the same way; what differs
is only that nobody deliberates: no intents, no deliberation log, nothing removed.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import Ask, as_thoughts, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.answers import SeedAnswer
from aidsafe.state.deliberation import DeliberationState

NAME = "baseline"


def generate(state: DeliberationState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    answer: SeedAnswer = yield Ask(SeedAnswer, messages(policies, "baseline", prompt=state["prompt"]))
    return {
        "intents": {"explicit": [], "implicit": []},
        "thoughts": as_thoughts(answer.thoughts, NAME, 0),
        "response": answer.response,
        "deliberation_log": [],
        "removed_thoughts": [],
        "rounds": 0,
        "stop_reason": "baseline",
        "policy_set": policies.hash,
        "error": None,
    }
