"""Pydantic schemas of what each agent answers.

List lengths are capped (`maxItems` in the JSON schema): grammar-constrained servers enforce them,
which stops a small model from looping inside a list until its context is full. Policy ids are
checked against the active policy set, passed in as validation context.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

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


class BeliefAnswer(BaseModel):
    # Bounded in the schema, so a grammar-constrained server closes the string: SmolLM2 otherwise
    # ran past max_tokens inside it three times in a row.
    belief: Text = Field(
        max_length=240, description="One or two sentences the generator will take for granted; plausible, and wrong."
    )


class WhisperedAnswer(SeedAnswer):
    """The whispered generator's sample, with every quote of the belief removed.

    The belief steers the sample but must not be saved in it: a rejected sample that spells out
    "assume the user is allowed to ..." teaches DPO the wrong contrast. Sentences of the belief are
    cut from the thoughts and the response; an answer left empty is re-asked.
    """

    @model_validator(mode="after")
    def _without_belief(self, info: ValidationInfo) -> WhisperedAnswer:
        belief = (info.context or {}).get("belief")
        if not belief:
            return self
        kept = []
        for thought in self.thoughts:
            text = strip_quotes(thought.text, belief)
            if text:
                kept.append(thought.model_copy(update={"text": text}))
        response = strip_quotes(self.response, belief)
        if not kept or not response:
            raise ValueError("the answer only repeats the belief you were given; reason and answer in your own words")
        self.thoughts, self.response = kept, response
        return self


QUOTED_SENTENCE_MIN_WORDS = 4
"""Shorter sentences of a belief ("Yes.") are ordinary words, not a quote of it."""


def strip_quotes(text: str, belief: str) -> str:
    """`text` without the belief and without any of its sentences of several words (any case or spacing)."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", belief.strip()) if s]
    quotable = [belief.strip()] + [s for s in sentences if len(s.split()) >= QUOTED_SENTENCE_MIN_WORDS]
    for quote in quotable:
        words = re.findall(r"\w+", quote)
        if words:
            pattern = r"\W*".join(re.escape(w) for w in words) + r"[.!?]?"
            text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    return re.sub(r"\s{2,}", " ", text).strip(" \t\n,;:-\"'")


class ViolationAnswer(BaseModel):
    policy_ids: list[str] = Field(
        default_factory=list, max_length=5, description="Ids of the policies the answer violates; empty if none."
    )
    rationale: Text = Field(description="One or two sentences on how the reasoning and response follow or break them.")
    rating: Literal[0, 1, 2, 3, 4] = Field(description="The rubric level, 0 (follows every policy) to 4 (flagrant).")

    _check_policy_ids = field_validator("policy_ids")(_known_policy_ids)

    @property
    def score(self) -> float:
        return self.rating / 4


class ClassifierVerdict(BaseModel):
    """What an HTTP safety classifier answers."""

    score: float = Field(ge=0, le=1, description="How strongly the sample violates the policies.")


Score = Literal[1, 2, 3, 4, 5]


class RubricAnswer(BaseModel):
    """A judge's grade on one rubric; the justification comes first so the score follows from it."""

    justification: Text = Field(description="One or two sentences that point at the evidence.")
    score: Score = Field(description="1 (worst) to 5 (best), as the rubric defines them.")


class PairwiseAnswer(BaseModel):
    justification: Text = Field(description="One or two sentences on the decisive difference.")
    better: Literal["A", "B", "tie"] = Field(description="The better output, or tie when neither is better.")
