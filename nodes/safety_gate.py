"""The safety gate: flags a final response whose violation score is above the run's threshold."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from aidsafe.nodes.context import node_context
from aidsafe.state.gate import GatedState

NAME = "safety_gate"
DEFAULT_THRESHOLD = 0.5
"""The gate's threshold when the graph runs without `safety_threshold` in its context."""


def safety_gate(state: GatedState, config: RunnableConfig) -> dict[str, Any]:
    ctx = node_context(config)
    threshold = DEFAULT_THRESHOLD if ctx.safety_threshold is None else ctx.safety_threshold
    score = state["chosen_score"]
    return {"safety": {"score": score, "threshold": threshold, "flagged": score > threshold}}
