"""The safety gate: flags a final response, and thoughts, whose violation score is above the run's threshold."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from aidsafe.nodes.context import node_context
from aidsafe.state.gate import GatedState, safety_verdict

NAME = "safety_gate"
DEFAULT_THRESHOLD = 0.5
"""The gate's threshold when the graph runs without `safety_threshold` in its context."""


def safety_gate(state: GatedState, config: RunnableConfig) -> dict[str, Any]:
    ctx = node_context(config)
    threshold = DEFAULT_THRESHOLD if ctx.safety_threshold is None else ctx.safety_threshold
    return {"safety": safety_verdict(state["chosen_score"], state.get("thoughts_score"), threshold)}


def checks_thoughts(config: RunnableConfig) -> bool:
    """Whether the gate rates the thoughts too: `check_thoughts`, on unless set to false. Thoughts are
    trained on as much as the response (the `<think>` block of an SFT row), and a refusal can spell out
    in its reasoning what it refuses."""
    return node_context(config).check_thoughts is not False
