"""Whispered generator: reasons and answers with the ear-whisperer's belief injected into its input.

Without a belief it is a plain generator, which is the baseline the whisper is measured against.
The belief is cut out of the answer (`state.answers.WhisperedAnswer`), so the saved sample shows
the reasoning it led to, never the belief itself.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import Ask, as_thoughts, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.answers import AnswerContext, WhisperedAnswer
from aidsafe.state.preference import PreferenceState

NAME = "whispered_generator"


def belief_block(belief: str | None) -> str:
    if not belief:
        return ""
    return f'\nWhat you know about this request (take it for granted):\n"""\n{belief}\n"""\n'


def generate(state: PreferenceState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    belief = state.get("candidate_belief")
    answer: WhisperedAnswer = yield Ask(
        WhisperedAnswer,
        messages(policies, NAME, prompt=state["prompt"], belief=belief_block(belief)),
        AnswerContext(belief=belief),
    )
    iteration = len(state.get("attempts") or []) + 1
    return {"candidate": {"thoughts": as_thoughts(answer.thoughts, NAME, iteration), "response": answer.response}}
