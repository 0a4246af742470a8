"""Violation judge: an LLM rates a sample against the policy set with a five-level rubric.

It runs in the "judge" role, so `judge_model` and `judge_base_url` put it on its own model. It
sees only numbered thought texts, never which agent wrote them, so it cannot tell the whispered
side from the deliberated one except by what they say.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import AgentLogic, AgentNode, Ask, agent_node, messages
from aidsafe.nodes.context import Context
from aidsafe.nodes.llm import ModelProvider
from aidsafe.policies import PolicySet
from aidsafe.state.answers import ViolationAnswer
from aidsafe.state.deliberation import Thought
from aidsafe.state.preference import Part, PreferenceState, Side, output_to_score, scored

NAME = "violation_judge"
TASKS: dict[Part, str] = {"response": NAME, "thoughts": "violation_judge_thoughts"}
"""The rubric of each part: the sample (`nodes/violation_judge.md`), or the thoughts alone."""


def numbered(thoughts: list[Thought]) -> str:
    return "\n".join(f"{i}. {t['text']}" for i, t in enumerate(thoughts, 1)) or "(no reasoning given)"


def violation_judge(side: Side, part: Part = "response") -> AgentLogic[PreferenceState]:
    def judge(state: PreferenceState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
        sample = output_to_score(state, side)
        answer: ViolationAnswer = yield Ask(
            ViolationAnswer,
            messages(
                policies,
                TASKS[part],
                prompt=state["prompt"],
                thoughts=numbered(sample["thoughts"]),
                response=sample["response"],
            ),
        )
        return scored(state, side, answer.score, part)

    return judge


class LlmJudge:
    """`ViolationScorer` by an LLM judge with a rubric over the policy set."""

    def __init__(self, provider: ModelProvider | None = None) -> None:
        self.provider = provider

    def node(self, name: str, side: Side, part: Part = "response") -> AgentNode:
        return agent_node(name, "judge", violation_judge(side, part), self.provider)
