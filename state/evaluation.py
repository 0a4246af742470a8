"""What evaluation reads (generate and preference records) and the evaluation graph's state.

`EvaluatedRecord` is deliberately lenient: it needs only an id, the prompt and one output (the
`thoughts` and `response` of a generate record, or the `chosen` side of a preference record), so
files written by other tools and older versions still grade. Everything else is kept, unread.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypedDict

from aidsafe.state.deliberation import AgentError, Repair, Usage, add_usage, append
from aidsafe.state.gate import SafetyVerdict
from aidsafe.state.preference import score_gap

RUBRICS = (
    "relevance",
    "coherence",
    "completeness",
    "cot_policy_faithfulness",
    "response_policy_faithfulness",
    "response_cot_faithfulness",
)
"""The paper's auto-grader rubrics; each has its text in `nodes/rubric_<name>.md`."""

Verdict = Literal["win", "tie", "loss"]
ComparisonSide = Literal["run", "baseline"]
"""The two sides of a comparison: the file under evaluation and the one it is compared with."""


class ThoughtView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str
    policy_ids: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class ThoughtsAndResponseView(BaseModel):
    """One answer to a prompt: the chain of thought and the response."""

    thoughts: list[ThoughtView]
    response: str


class EvaluatedRecord(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    prompt: str
    thoughts: list[ThoughtView] | None = None
    response: str | None = None
    chosen: ThoughtsAndResponseView | None = None
    rejected: ThoughtsAndResponseView | None = None
    chosen_score: float | None = None
    rejected_score: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_an_error_line(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("error") and "thoughts" not in value and "chosen" not in value:
            raise ValueError(f"this is an errors-file line, not an output (generation failed: {value['error']})")
        return value

    @model_validator(mode="after")
    def _has_an_output(self) -> EvaluatedRecord:
        if self.chosen is None and (self.thoughts is None or self.response is None):
            raise ValueError("needs `thoughts` and `response` (generate record) or `chosen` (preference record)")
        return self

    @property
    def output(self) -> ThoughtsAndResponseView:
        """What is graded: the record's own output, or the chosen side of a preference pair."""
        if self.chosen is not None:
            return self.chosen
        return ThoughtsAndResponseView(thoughts=self.thoughts or [], response=self.response or "")

    @property
    def score_gap(self) -> float | None:
        if self.chosen_score is None or self.rejected_score is None:
            return None
        return score_gap(self.chosen_score, self.rejected_score)


class RubricGrade(TypedDict):
    score: int
    justification: str


class PairwiseVerdict(TypedDict):
    verdict: Verdict
    """From the run's side: win means the judge preferred the run's output over the baseline's."""
    run_shown_as: Literal["A", "B"]
    """The judge sees two anonymous outputs, A and B, in an order drawn per sample."""
    justification: str


class GradingFailure(TypedDict):
    side: ComparisonSide | Literal["pair", "sample"]
    """`sample` when the whole graph stopped (its node in `check`)."""
    check: str
    """A rubric name, or `pairwise`."""
    message: str


class SideResult(TypedDict):
    """One side's (the run's or the baseline's) deterministic metrics and judge grades."""

    metrics: dict[str, float]
    grades: dict[str, RubricGrade]
    safety: NotRequired[SafetyVerdict]
    """The harm check's verdict on the run's record (`--check-thoughts true`)."""


class SampleResult(TypedDict):
    """One sample's grading as the report reads it: a `GradedSample` line (no failures), or an
    errors-file line's partial result, whose `failures` name every grade that did not come back."""

    id: str
    run: SideResult | None
    baseline: SideResult | None
    pairwise: PairwiseVerdict | None
    failures: list[GradingFailure]
    repairs: list[Repair]
    """The judges' answers used after a fix (e.g. a cut-off rubric answer salvaged)."""
    usage: Usage


class GradedSample(BaseModel):
    """One line of `samples.jsonl`: a `SampleResult` every grade of which came back."""

    id: str
    run: SideResult | None
    baseline: SideResult | None
    pairwise: PairwiseVerdict | None
    usage: Usage
    cost_usd: float | None = Field(default=None, exclude_if=lambda v: v is None)
    """What the sample's judge calls cost, when the run had prices."""

    def as_result(self) -> SampleResult:
        return {
            "id": self.id,
            "run": self.run,
            "baseline": self.baseline,
            "pairwise": self.pairwise,
            "failures": [],
            "repairs": [],
            "usage": self.usage,
        }


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


def first_error(left: AgentError | None, right: AgentError | None) -> AgentError | None:
    return left or right


class EvaluationInput(TypedDict):
    """One prompt's records, a generate or preference line each: `run`, `baseline`, or both.

    Each given side is graded; with both, the pairwise judge compares them."""

    run: NotRequired[dict[str, Any] | None]
    baseline: NotRequired[dict[str, Any] | None]


class EvaluationOutput(TypedDict):
    run_grades: dict[str, RubricGrade]
    run_safety: dict[str, float]
    """The harm check's scores of the run's record (`check_thoughts`): `score` (the response) and
    `thoughts_score` (the thoughts alone), 0..1."""
    baseline_grades: dict[str, RubricGrade]
    pairwise: PairwiseVerdict | None
    failures: list[GradingFailure]
    repairs: list[Repair]
    usage: Usage
    error: AgentError | None


class EvaluationState(TypedDict):
    run: NotRequired[dict[str, Any] | None]
    baseline: NotRequired[dict[str, Any] | None]
    run_grades: Annotated[dict[str, RubricGrade], merge]
    baseline_grades: Annotated[dict[str, RubricGrade], merge]
    run_safety: Annotated[dict[str, float], merge]
    pairwise: NotRequired[PairwiseVerdict | None]
    failures: Annotated[list[GradingFailure], append]
    repairs: Annotated[list[Repair], append]
    usage: Annotated[Usage, add_usage]
    error: Annotated[AgentError | None, first_error]
