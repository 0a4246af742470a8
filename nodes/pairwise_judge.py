"""Pairwise judge: which of two outputs for the same prompt is better (win / tie / loss).

Judges favour a position, so the two outputs are shown in an order drawn from a generator seeded
with the sample id: across a file about half the samples show the run's output first, which
cancels the bias in the rates, and a re-run shows every sample exactly as before. The verdict is
mapped back to the run's side whatever the order.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any, Literal

from aidsafe.nodes.agent import Ask, messages
from aidsafe.nodes.context import Context
from aidsafe.nodes.grader import shown
from aidsafe.nodes.llm import AgentFailure
from aidsafe.policies import PolicySet
from aidsafe.state.answers import PairwiseAnswer
from aidsafe.state.evaluation import EvaluatedRecord, EvaluationState, PairwiseVerdict, Verdict

NAME = "pairwise_judge"


def run_shown_first(sample_id: str) -> bool:
    """Reproducible coin flip per sample (`random.Random` seeds from a str the same in every process)."""
    return random.Random(f"aidsafe-pairwise:{sample_id}").random() < 0.5


def verdict_for_run(better: Literal["A", "B", "tie"], run_first: bool) -> Verdict:
    if better == "tie":
        return "tie"
    run_label = "A" if run_first else "B"
    return "win" if better == run_label else "loss"


def compare(state: EvaluationState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
    run = EvaluatedRecord.model_validate(state.get("run"))
    baseline = EvaluatedRecord.model_validate(state.get("baseline"))
    run_first = run_shown_first(run.id)
    a, b = (run.output, baseline.output) if run_first else (baseline.output, run.output)
    ask = Ask(
        PairwiseAnswer,
        messages(policies, "pairwise_judge", prompt=run.prompt, **shown(a, "_a"), **shown(b, "_b")),
    )
    try:
        answer: PairwiseAnswer = yield ask
    except AgentFailure as exc:
        return {"pairwise": None, "failures": [{"side": "pair", "check": "pairwise", "message": str(exc)}]}
    verdict: PairwiseVerdict = {
        "verdict": verdict_for_run(answer.better, run_first),
        "run_shown_as": "A" if run_first else "B",
        "justification": answer.justification,
    }
    return {"pairwise": verdict}
