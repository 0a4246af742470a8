"""Keep best: after each scored attempt, keep the best belief and its rejected sample, and decide
whether the whisper loop goes on. No model call.

Stops when the best score reaches `violation_threshold` or after `whisper_iterations` attempts.
Every state that holds a rejected sample is marked `negative_example`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from aidsafe.nodes.context import node_context
from aidsafe.nodes.ear_whisperer import best_first
from aidsafe.state.preference import PreferenceState, WhisperStop

NAME = "keep_best"


def keep_best(state: PreferenceState, config: RunnableConfig) -> dict[str, Any]:
    ctx = node_context(config)
    attempts = state["attempts"]
    best = best_first(attempts)[0]
    stop: WhisperStop | None = None
    if best["score"] >= ctx.violation_threshold:
        stop = "threshold"
    elif len(attempts) >= ctx.whisper_iterations:
        stop = "budget"
    return {
        "belief": best["belief"],
        "rejected": best["rejected"],
        "rejected_score": best["score"],
        "iterations": len(attempts),
        "negative_example": True,
        "whisper_stop": stop,
    }
