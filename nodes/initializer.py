"""Initializer: decompose the request into intents, then seed thoughts and a first response.

Two calls, as in the paper: the intents are settled before any reasoning starts, so the seed
thoughts address both what is asked and why it may be asked. Each is its own graph node, so the
intents are checkpointed before the seed call starts: a kill then pays again only the call in flight.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import Ask, as_thoughts, intent_values, messages
from aidsafe.nodes.context import Context
from aidsafe.policies import PolicySet
from aidsafe.state.answers import AnswerContext, IntentAnswer, SeedAnswer
from aidsafe.state.deliberation import DeliberationState

NAME = "initializer"
"""The first node (the intents), and the agent the seed thoughts are written by."""
SEED = "initializer_seed"
"""The second node: seed thoughts and the first response."""


def decompose(state: DeliberationState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    intents: IntentAnswer = yield Ask(IntentAnswer, messages(policies, "initializer_intents", prompt=state["prompt"]))
    return {
        "intents": {"explicit": intents.explicit_intents, "implicit": intents.implicit_intents},
        "policy_set": policies.hash,
        "error": None,
    }


def initialize(state: DeliberationState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    seed: SeedAnswer = yield Ask(
        SeedAnswer,
        messages(
            policies,
            "initializer_seed",
            context=("request", "intents"),
            prompt=state["prompt"],
            **intent_values(state["intents"]),
        ),
        AnswerContext(response_written_later=True),
    )
    return {
        "thoughts": as_thoughts(seed.thoughts, NAME, 0),
        "response": seed.response,
        "rounds": 0,
    }
