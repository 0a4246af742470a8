"""Pydantic schemas of what each agent answers.

List lengths are capped (`maxItems` in the JSON schema): grammar-constrained servers enforce them,
which stops a small model from looping inside a list until its context is full. Policy ids are
checked against the active policy set, passed in as validation context.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

Text = Annotated[str, Field(min_length=1)]
"""No `max_length`: llama.cpp turns long repetitions into grammars it refuses; `max_tokens` bounds text."""


def _known_policy_ids(ids: list[str], info: ValidationInfo) -> list[str]:
    known = (info.context or {}).get("policy_ids")
    unknown = [i for i in ids if known is not None and i not in known]
    if known is not None and unknown:
        raise ValueError(f"unknown policy ids {unknown}; use only {sorted(known)}")
    return ids


class ThoughtDraft(BaseModel):
    text: Text = Field(description="One reasoning step about the request and the policies.")
    policy_ids: list[str] = Field(
        default_factory=list, max_length=3, description="Ids of the policies this step applies."
    )

    _check_policy_ids = field_validator("policy_ids")(_known_policy_ids)


class IntentAnswer(BaseModel):
    explicit_intents: list[Text] = Field(min_length=1, max_length=4, description="What the user literally asks for.")
    implicit_intents: list[Text] = Field(max_length=4, description="Underlying goals the user may have.")


class SeedAnswer(BaseModel):
    thoughts: list[ThoughtDraft] = Field(min_length=1, max_length=5)
    response: Text = Field(description="The first response to the user.")


class CorrectionDraft(ThoughtDraft):
    corrects: int | None = Field(default=None, description="Id of the earlier thought this one corrects, if any.")


class DeliberatorAnswer(BaseModel):
    new_thoughts: list[CorrectionDraft] = Field(
        default_factory=list, max_length=3, description="New thoughts or corrections; never repeat one."
    )
    updated_response: str | None = Field(default=None, description="A better response, or null to keep it.")
    agrees: bool = Field(description="True when nothing is missing and the response follows every policy.")

    @field_validator("new_thoughts")
    @classmethod
    def _corrections_exist(cls, drafts: list[CorrectionDraft], info: ValidationInfo) -> list[CorrectionDraft]:
        count = (info.context or {}).get("thought_count")
        for draft in drafts:
            if draft.corrects is not None and count is not None and not 0 <= draft.corrects < count:
                raise ValueError(f"corrects={draft.corrects} is not an existing thought id (0..{count - 1})")
        return drafts


class Removal(BaseModel):
    thought_id: int
    reason: Literal["repetitive", "redundant", "deceptive", "policy_inconsistent"]
    explanation: Text = Field(description="Why the thought goes, in one sentence.")


class RefinerAnswer(BaseModel):
    removals: list[Removal] = Field(default_factory=list, max_length=24)
    final_response: Text = Field(description="The final response, faithful to the kept thoughts and the policies.")

    @field_validator("removals")
    @classmethod
    def _removals_exist(cls, removals: list[Removal], info: ValidationInfo) -> list[Removal]:
        count = (info.context or {}).get("thought_count")
        ids = [r.thought_id for r in removals]
        bad = [i for i in ids if count is not None and not 0 <= i < count]
        if bad:
            raise ValueError(f"thought ids {bad} do not exist (0..{(count or 0) - 1})")
        if len(set(ids)) != len(ids):
            raise ValueError("a thought is removed more than once")
        if count and len(ids) >= count:
            raise ValueError("keep at least one thought")
        return removals


Score = Literal[1, 2, 3, 4, 5]


class RubricAnswer(BaseModel):
    """A judge's grade on one rubric; the justification comes first so the score follows from it."""

    justification: Text = Field(description="One or two sentences that point at the evidence.")
    score: Score = Field(description="1 (worst) to 5 (best), as the rubric defines them.")


class PairwiseAnswer(BaseModel):
    justification: Text = Field(description="One or two sentences on the decisive difference.")
    better: Literal["A", "B", "tie"] = Field(description="The better output, or tie when neither is better.")
