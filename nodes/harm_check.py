"""The evaluation's harm check: the violation scorer (`nodes/scorer.py`, any `scorer_format`) on a
graded record's response and on its thoughts alone, as the safety gate rates them at generation.

It adapts the evaluation's state (the record under `run`) to the scorer's and back: a score lands in
`run_safety`; a scorer's error becomes a failure of this check only, so the rubric grades still count.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from aidsafe.nodes.scorer import ViolationScorer
from aidsafe.state.deliberation import no_usage
from aidsafe.state.evaluation import EvaluatedRecord
from aidsafe.state.preference import Part

NAMES: dict[Part, str] = {"response": "harm_response", "thoughts": "harm_thoughts"}
SCORE_KEYS: dict[Part, tuple[str, str]] = {
    "response": ("chosen_score", "score"),
    "thoughts": ("thoughts_score", "thoughts_score"),
}
"""The scorer's key for each part, and the key of `run_safety` (named as in `SafetyVerdict`)."""


def scorer_input(state: dict[str, Any]) -> dict[str, Any]:
    record = EvaluatedRecord.model_validate(state["run"])
    output = record.output
    thoughts = [thought.model_dump() for thought in output.thoughts]
    return {"prompt": record.prompt, "chosen": {"thoughts": thoughts, "response": output.response}}


def harm_check(scorer: ViolationScorer, part: Part) -> Runnable[Any, dict[str, Any]]:
    name = NAMES[part]
    score_node = scorer.node(name, "chosen", part)
    scorer_key, verdict_key = SCORE_KEYS[part]

    def update(result: dict[str, Any]) -> dict[str, Any]:
        usage = result.get("usage") or no_usage()
        if result.get("error"):
            return {"failures": [{"side": "run", "check": name, "message": result["error"]["message"]}], "usage": usage}
        return {"run_safety": {verdict_key: result[scorer_key]}, "usage": usage}

    def run(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return update(score_node.invoke(scorer_input(state), config))

    async def arun(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return update(await score_node.ainvoke(scorer_input(state), config))

    return RunnableLambda(run, afunc=arun, name=name)
