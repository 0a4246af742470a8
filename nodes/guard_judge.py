"""Policy-following guard models as the violation scorer, each asked in its own documented format.

Served behind an OpenAI-compatible API (vLLM) as the `judge` role's model (`judge_model`,
`judge_base_url`), through the one client path (`nodes/llm.py`), with the run's policy set as the
policy the guard enforces:

- `gpt-oss-safeguard`: the policy is the system message (`nodes/guard_gpt_oss_safeguard.md`: the
  sections and the output format OpenAI's user guide recommends), the content to classify the user
  message; it answers `{"violation": 0|1, "policy_category", "rationale"}`.
- `llama-guard` (Llama Guard 3): the conversation (the user's request, then the content as the
  Agent's message) goes through the model's own chat template, which reads the unsafe-content
  categories from `chat_template_kwargs.categories` (one per policy, `S1`..`Sn`, each written by
  `nodes/guard_llama_guard.md`); it answers `safe`, or `unsafe` and a line of categories.

Both are labels, so the score is 0 or 1. An answer that fits neither format ends that sample with an
error that quotes it: guard models are not re-asked (they answer in their format or not at all).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_openai import ChatOpenAI
from pydantic import ValidationError

from aidsafe.nodes.agent import AgentNode, fixed_signature
from aidsafe.nodes.context import node_context
from aidsafe.nodes.llm import (
    AgentFailure,
    Conversation,
    ModelProvider,
    Request,
    adrive,
    drive,
    drive_options,
    openai_compatible_model,
    server_failure,
    usage_of,
)
from aidsafe.nodes.templates import template
from aidsafe.policies import PolicyFileError, PolicySet
from aidsafe.state.answers import SafeguardVerdict
from aidsafe.state.deliberation import Usage, no_usage
from aidsafe.state.preference import Part, PreferenceState, Side, output_to_score, scored

GuardFormat = Literal["gpt-oss-safeguard", "llama-guard"]
CONTENT_NAMES: dict[Part, str] = {
    "response": "the assistant's final response",
    "thoughts": "the assistant's chain of thought (its reasoning before the response)",
}
QUOTED_CHARS = 200
"""How much of an unreadable answer its error quotes."""
NO_SCHEMA: dict[str, Any] = {}
"""A guard answers in text: no answer schema is sent (nor counted toward a spending cap's bound)."""


class GuardAnswerError(ValueError):
    """A guard model's answer that is not in its format."""


@dataclass(frozen=True)
class GuardRequest:
    messages: list[BaseMessage]
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Sent in the request body beside the messages (e.g. `chat_template_kwargs`)."""


def content_of(state: PreferenceState, side: Side, part: Part) -> str:
    sample = output_to_score(state, side)
    if part == "thoughts":
        return "\n".join(t["text"] for t in sample["thoughts"]) or "(no reasoning given)"
    return sample["response"]


def safeguard_request(prompt: str, content: str, part: Part, policies: PolicySet) -> GuardRequest:
    policy = template("guard_gpt_oss_safeguard").substitute(
        policy_set=policies.name, part=CONTENT_NAMES[part], policies=policies.render()
    )
    user = template("guard_gpt_oss_safeguard_content").substitute(
        prompt=prompt, part=CONTENT_NAMES[part], content=content
    )
    return GuardRequest([SystemMessage(content=policy), HumanMessage(content=user)])


def safeguard_score(answer: str, policies: PolicySet) -> float:
    """The label of a gpt-oss-safeguard answer: its JSON object (fenced or not), or a bare 0 or 1."""
    text = answer.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    if text in ("0", "1"):
        return float(text)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise GuardAnswerError("no JSON object with a `violation` label (0 or 1)")
    try:
        verdict = SafeguardVerdict.model_validate(json.loads(text[start : end + 1]))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        why = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(exc)
        raise GuardAnswerError(f"not the JSON object the policy asks for ({why})") from None
    return float(verdict.violation)


def llama_guard_categories(policies: PolicySet) -> dict[str, str]:
    """The unsafe-content categories of the chat template: `S<n>` for the n-th policy."""
    return {
        f"S{number}": template("guard_llama_guard")
        .substitute(
            title=policy.title.rstrip("."),
            forbids="; ".join(policy.forbids),
            allows="; ".join(policy.allows) or "(nothing listed)",
        )
        .strip()
        for number, policy in enumerate(policies.policies, 1)
    }


def llama_guard_request(prompt: str, content: str, part: Part, policies: PolicySet) -> GuardRequest:
    messages: list[BaseMessage] = [HumanMessage(content=prompt), AIMessage(content=content)]
    return GuardRequest(messages, {"chat_template_kwargs": {"categories": llama_guard_categories(policies)}})


CATEGORY = re.compile(r"S(\d+)")


def llama_guard_score(answer: str, policies: PolicySet) -> float:
    """`safe` -> 0; `unsafe` with an optional line of categories (`S1,S3`, each one of the policies) -> 1."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    label = lines[0].lower() if lines else ""
    if label == "safe":
        return 0.0
    if label != "unsafe":
        raise GuardAnswerError("the first line must read 'safe' or 'unsafe'")
    for category in (c.strip() for c in (lines[1] if len(lines) > 1 else "").split(",") if c.strip()):
        number = CATEGORY.fullmatch(category)
        if number is None or not 1 <= int(number.group(1)) <= len(policies.policies):
            raise GuardAnswerError(f"unknown category {category!r} (the prompt lists S1 to S{len(policies.policies)})")
    return 1.0


@dataclass(frozen=True)
class Format:
    request: Callable[[str, str, Part, PolicySet], GuardRequest]
    score: Callable[[str, PolicySet], float]


FORMATS: dict[GuardFormat, Format] = {
    "gpt-oss-safeguard": Format(safeguard_request, safeguard_score),
    "llama-guard": Format(llama_guard_request, llama_guard_score),
}


def with_body(model: Runnable, extra_body: dict[str, Any]) -> Runnable:
    if not extra_body:
        return model
    if isinstance(model, ChatOpenAI):
        return model.bind(extra_body={**(model.extra_body or {}), **extra_body})
    return model.bind(extra_body=extra_body)


class GuardJudge:
    """`ViolationScorer` backed by a served guard model that speaks `guard_format`."""

    def __init__(self, guard_format: GuardFormat, provider: ModelProvider | None = None) -> None:
        self.guard_format, self.format = guard_format, FORMATS[guard_format]
        self.provider = provider or openai_compatible_model

    def node(self, name: str, side: Side, part: Part = "response") -> AgentNode:
        def turn(state: PreferenceState, config: RunnableConfig) -> Conversation[dict[str, Any]]:
            usage: Usage = no_usage()
            answer = ""
            try:
                ctx = node_context(config)
                policies = ctx.policies
                request = self.format.request(state["prompt"], content_of(state, side, part), part, policies)
                model = with_body(self.provider("judge", ctx), request.extra_body)
                reply = yield Request(model, request.messages, ctx.model_for("judge"), ctx.max_tokens, NO_SCHEMA)
                if isinstance(reply, openai.OpenAIError):
                    raise server_failure(reply)
                usage, answer = usage_of(reply), reply.text
                score = self.format.score(answer, policies)
            except GuardAnswerError as exc:
                said = answer.strip()[:QUOTED_CHARS]
                message = f"{self.guard_format} answer not understood: {exc}; it said {said!r}"
                return {"error": {"node": name, "message": message}, "usage": usage}
            except (AgentFailure, PolicyFileError) as exc:
                return {"error": {"node": name, "message": str(exc)}, "usage": usage}
            return {**scored(state, side, score, part), "usage": usage}

        @fixed_signature
        def run(state: PreferenceState, config: RunnableConfig) -> dict[str, Any]:
            return drive(turn(state, config))

        @fixed_signature
        async def arun(state: PreferenceState, config: RunnableConfig) -> dict[str, Any]:
            return await adrive(turn(state, config), **drive_options(config))

        return AgentNode("judge", run, arun, name)
