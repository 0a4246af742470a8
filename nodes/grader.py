"""Auto-grader: an LLM judge scores one output 1-5 on one rubric, with a short justification.

One node per rubric, as in the paper (relevance, coherence, completeness of the CoT; faithfulness
CoT->policies, response->policies, response->CoT). Each rubric is a Markdown file beside this
module (`rubric_<name>.md`) injected into `grader.md`, so reviewers read the rubric as the judge
does. A node grades one side (`run`, or `baseline` when given), so each grade is one node and
one model call, checkpointed on its own (a resumed run pays only for missing grades); a grade
that fails after its re-asks is listed in `failures` and the other grades still count.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from aidsafe.nodes.agent import AgentLogic, Ask, messages
from aidsafe.nodes.context import Context
from aidsafe.nodes.llm import AgentFailure
from aidsafe.nodes.templates import template
from aidsafe.policies import PolicySet
from aidsafe.state.answers import RubricAnswer
from aidsafe.state.evaluation import (
    ComparisonSide,
    EvaluatedRecord,
    EvaluationState,
    GradingFailure,
    RubricGrade,
    ThoughtsAndResponseView,
)

GRADES_KEY: dict[ComparisonSide, str] = {"run": "run_grades", "baseline": "baseline_grades"}
SIDES: tuple[ComparisonSide, ...] = ("run", "baseline")


def node_name(rubric: str, side: ComparisonSide = "run") -> str:
    return f"grade_{rubric}" if side == "run" else f"grade_{rubric}_{side}"


def shown(output: ThoughtsAndResponseView, suffix: str = "") -> dict[str, str]:
    """An output as the judges read it: numbered thoughts with the policies each cites, and the response."""
    steps = [f"{i}. [{', '.join(t.policy_ids) or 'no policy'}] {t.text}" for i, t in enumerate(output.thoughts, 1)]
    return {f"thoughts{suffix}": "\n".join(steps) or "(no thoughts)", f"response{suffix}": output.response}


def grader(rubric: str, side: ComparisonSide = "run") -> AgentLogic[EvaluationState]:
    """The logic of the node that grades `side` on `rubric`."""
    rubric_text = template(f"rubric_{rubric}").template.strip()

    def grade(state: EvaluationState, ctx: Context, policies: PolicySet) -> Generator[Ask, Any, dict[str, Any]]:
        update: dict[str, Any] = {"run_grades": {}, "baseline_grades": {}}
        failures: list[GradingFailure] = []
        if state.get(side):
            record = EvaluatedRecord.model_validate(state.get(side))
            ask = Ask(
                RubricAnswer,
                messages(
                    policies,
                    "grader",
                    rubric=rubric,
                    rubric_text=rubric_text,
                    prompt=record.prompt,
                    **shown(record.output),
                ),
            )
            try:
                answer: RubricAnswer = yield ask
                grade: RubricGrade = {"score": answer.score, "justification": answer.justification}
                update[GRADES_KEY[side]][rubric] = grade
            except AgentFailure as exc:
                failures.append({"side": side, "check": rubric, "message": str(exc)})
        return {**update, "failures": failures}

    return grade
