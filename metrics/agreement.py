"""How far the judge agrees with people, and people with each other, per rubric and per policy.

Judge against people: every (sample, annotator) label is one pair with the judge's score of that
sample, so the judge is compared as one more annotator and kappa stays defined on the scale's
categories (a median of two people's 3 and 4 is no category). The pairs of one sample are not
independent, so the bootstrap resamples samples, each with all its pairs (a cluster bootstrap).
Statistics: quadratic-weighted Cohen's kappa (scikit-learn; on the 0/1 marks it equals the
unweighted kappa), Spearman's rho (SciPy), exact and within-one agreement, each with a
percentile bootstrap interval (`scipy.stats.bootstrap`, fixed seed, so a report repeats). rho and
within-one are left out for the 0/1 marks, where they say nothing kappa does not.

People against people: Krippendorff's alpha (the `krippendorff` package) over the samples that two
or more people labelled, ordinal for the 1-5 rubrics and nominal for the 0/1 marks.

Per policy: a sample counts for every policy its thoughts cite (`thoughts[].policy_ids`).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import numpy as np
import pydantic
from annotated_types import Interval
from pydantic import BaseModel

from aidsafe.state.evaluation import EvaluatedRecord, SampleResult
from aidsafe.state.labels import LABEL_NAMES, Label, ScoreLevel, level_of, score_range

CONFIDENCE_LEVEL = 0.95
SEED = 0
NO_POLICY = "(no policy cited)"
JUDGED_MARKS = {
    "response_safe": "the safety gate's verdict on the response (`safety.flagged`)",
    "thoughts_safe": "the safety gate's verdict on the thoughts (`safety.thoughts_flagged`)",
}
"""The safety marks the judge side has a verdict for; the others are compared among people only."""
LIBRARIES = {"sklearn": "scikit-learn", "scipy": "scipy", "krippendorff": "krippendorff"}


def missing_libraries() -> list[str]:
    """The packages of the `agreement` extra that are not installed."""
    return [package for module, package in LIBRARIES.items() if importlib.util.find_spec(module) is None]


@pydantic.dataclasses.dataclass(kw_only=True, frozen=True)
class AgreementOptions:
    """Agreement settings; each annotation is the valid range (the CLI's flag checks it)."""

    bootstrap_resamples: Annotated[int, Interval(ge=100, le=100_000)] = 1000
    """Bootstrap resamples behind each 95% interval."""


class Estimate(BaseModel):
    value: float | None
    """None where the statistic is undefined (e.g. kappa when both sides give one score only)."""
    low: float | None = None
    high: float | None = None


class JudgeAgreement(BaseModel):
    samples: int
    pairs: int
    """(sample, annotator) labels compared with the judge's score of the sample."""
    kappa: Estimate
    rho: Estimate | None
    exact: Estimate
    within_1: Estimate | None


class PeopleAgreement(BaseModel):
    samples: int
    """Samples that two or more people labelled on this rubric."""
    annotators: int
    alpha: float | None


class RubricAgreement(BaseModel):
    level: ScoreLevel
    labels: int
    judge: JudgeAgreement | None
    people: PeopleAgreement | None


class Agreement(BaseModel):
    """The agreement section of an evaluation's summary."""

    labels: int
    annotators: list[str]
    samples: int
    """Evaluated samples with at least one label."""
    judged_marks: dict[str, str]
    bootstrap_resamples: int
    confidence_level: float
    overall: dict[str, RubricAgreement]
    by_policy: dict[str, dict[str, RubricAgreement]]


def _number(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, 6)


def judge_scores(results: Iterable[SampleResult], records: Iterable[EvaluatedRecord]) -> dict[tuple[str, str], int]:
    """The judge side per (id, rubric): the run file's rubric grades, and `response_safe` and
    `thoughts_safe` (1 = safe) from the safety gate's verdicts where the record has them."""
    scores = {
        (result["id"], rubric): grade["score"]
        for result in results
        if result["run"]
        for rubric, grade in result["run"]["grades"].items()
    }
    for record in records:
        safety = (record.model_extra or {}).get("safety")
        if isinstance(safety, dict) and "flagged" in safety:
            scores[(record.id, "response_safe")] = 0 if safety["flagged"] else 1
        if isinstance(safety, dict) and "thoughts_flagged" in safety:
            scores[(record.id, "thoughts_safe")] = 0 if safety["thoughts_flagged"] else 1
    return scores


def cited_policies(records: Iterable[EvaluatedRecord]) -> dict[str, list[str]]:
    """Per record id, the policies its thoughts cite (or `NO_POLICY`)."""
    return {r.id: sorted({p for t in r.output.thoughts for p in t.policy_ids}) or [NO_POLICY] for r in records}


def _judge_statistics(judge: np.ndarray, people: np.ndarray, level: ScoreLevel, categories: list[int]) -> np.ndarray:
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    kappa = cohen_kappa_score(judge, people, labels=categories, weights="quadratic")
    exact = np.mean(judge == people)
    if level == "nominal":
        return np.array([kappa, exact])
    rho = spearmanr(judge, people).statistic
    return np.array([kappa, exact, rho, np.mean(np.abs(judge - people) <= 1)])


def judge_agreement(pairs: Mapping[str, tuple[int, list[int]]], rubric: str, resamples: int) -> JudgeAgreement | None:
    """`pairs`: per sample id, the judge's score and the people's labels of it."""
    if not pairs:
        return None
    from scipy.stats import bootstrap

    level, categories = level_of(rubric), list(score_range(rubric))
    units = list(pairs.values())
    rows = [np.array([[judge, person] for person in people]) for judge, people in units]

    def statistic(sampled: np.ndarray) -> np.ndarray:
        table = np.concatenate([rows[i] for i in sampled])
        return _judge_statistics(table[:, 0], table[:, 1], level, categories)

    everyone = np.arange(len(units))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined statistics (one score only) are NaN, reported as None
        point = statistic(everyone)
        low = high = np.full(len(point), np.nan)
        if len(units) > 1:
            interval = bootstrap(
                (everyone,),
                statistic,
                vectorized=False,
                n_resamples=resamples,
                confidence_level=CONFIDENCE_LEVEL,
                method="percentile",
                rng=np.random.default_rng(SEED),
            ).confidence_interval
            low, high = interval.low, interval.high
    estimates = [
        Estimate(value=_number(v), low=_number(lo), high=_number(hi))
        for v, lo, hi in zip(point, low, high, strict=True)
    ]
    ordinal = level == "ordinal"
    return JudgeAgreement(
        samples=len(units),
        pairs=sum(len(people) for _, people in units),
        kappa=estimates[0],
        exact=estimates[1],
        rho=estimates[2] if ordinal else None,
        within_1=estimates[3] if ordinal else None,
    )


def people_agreement(labels_by_sample: Mapping[str, dict[str, int]], rubric: str) -> PeopleAgreement | None:
    """Krippendorff's alpha over the samples with labels from two or more people (annotator -> score)."""
    import krippendorff

    shared = [by_person for by_person in labels_by_sample.values() if len(by_person) > 1]
    if not shared:
        return None
    annotators = sorted({a for by_person in shared for a in by_person})
    data = np.array([[by_person.get(a, np.nan) for by_person in shared] for a in annotators], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one score everywhere: alpha is undefined (NaN, reported as None)
        alpha = krippendorff.alpha(
            reliability_data=data, level_of_measurement=level_of(rubric), value_domain=list(score_range(rubric))
        )
    return PeopleAgreement(samples=len(shared), annotators=len(annotators), alpha=_number(alpha))


Memo = dict[tuple[str, frozenset[tuple[str, str, int]]], RubricAgreement]


def _by_rubric(
    labels: Sequence[Label], judge: Mapping[tuple[str, str], int], resamples: int, memo: Memo
) -> dict[str, RubricAgreement]:
    """`memo`: groups already computed (a policy every labelled sample cites is the overall group
    again), as the bootstrap is the slow part: thousands of library calls per group."""
    found: dict[str, RubricAgreement] = {}
    for rubric in LABEL_NAMES:
        by_sample: dict[str, dict[str, int]] = {}
        for label in labels:
            if label.rubric == rubric:
                by_sample.setdefault(label.id, {})[label.annotator] = label.score
        if not by_sample:
            continue
        key = (
            rubric,
            frozenset((sample, a, score) for sample, people in by_sample.items() for a, score in people.items()),
        )
        if key in memo:
            found[rubric] = memo[key]
            continue
        pairs = {
            sample: (judge[(sample, rubric)], list(people.values()))
            for sample, people in by_sample.items()
            if (sample, rubric) in judge
        }
        found[rubric] = RubricAgreement(
            level=level_of(rubric),
            labels=sum(len(people) for people in by_sample.values()),
            judge=judge_agreement(pairs, rubric, resamples),
            people=people_agreement(by_sample, rubric),
        )
        memo[key] = found[rubric]
    return found


def agreement(
    labels: Sequence[Label],
    judge: Mapping[tuple[str, str], int],
    policies: Mapping[str, Sequence[str]],
    options: AgreementOptions | None = None,
) -> Agreement:
    """Judge against people and people against each other, over all samples and per policy.

    `judge`: the judge's score per (id, rubric) (`judge_scores`); `policies`: the policies each
    evaluated record cites (`cited_policies`); labels of other ids are ignored."""
    options = options or AgreementOptions()
    labels = [label for label in labels if label.id in policies]
    resamples = options.bootstrap_resamples
    groups: dict[str, list[Label]] = {}
    memo: Memo = {}
    for label in labels:
        for policy in policies[label.id]:
            groups.setdefault(policy, []).append(label)
    return Agreement(
        labels=len(labels),
        annotators=sorted({label.annotator for label in labels}),
        samples=len({label.id for label in labels}),
        judged_marks={mark: source for mark, source in JUDGED_MARKS.items() if any(k[1] == mark for k in judge)},
        bootstrap_resamples=resamples,
        confidence_level=CONFIDENCE_LEVEL,
        overall=_by_rubric(labels, judge, resamples, memo),
        by_policy={policy: _by_rubric(group, judge, resamples, memo) for policy, group in sorted(groups.items())},
    )
