"""Contrast prompts: the classes and kinds of a prompt, the mix a user asks for, what the writer and the
check answer, the contrast graph's state and the record of one seed.

A seed is a harmful prompt. The writer keeps its alarming surface and writes borderline and benign
look-alikes of a named kind (XSTest's kinds for benign ones); a blind check classifies each of them
again, and a look-alike the check puts in another class is dropped with the check's reason. The
candidates of a seed, kept and dropped, are its record; `batch/contrast.py` picks the prompt set from
the records to fill the mix.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationInfo, model_validator
from typing_extensions import TypedDict

from aidsafe.state.answers import AgentAnswer, Text, _checked_policy_ids, references
from aidsafe.state.deliberation import AgentError, Refusal, Repair, Usage, add_usage, append

PromptClass = Literal["harmful", "borderline", "benign"]
CLASSES: tuple[PromptClass, ...] = get_args(PromptClass)
Written = Literal["borderline", "benign"]
"""The classes the writer writes; the harmful cell holds the seeds themselves (nothing harmful is written)."""
BenignKind = Literal[
    "homonyms",
    "figurative_language",
    "safe_targets",
    "safe_contexts",
    "definitions",
    "history",
    "fiction",
    "public_figures",
]
"""XSTest's kinds of safe prompts that look unsafe (Röttger et al., NAACL 2024), as `nodes/contrast_writer.md`
defines them."""
BorderlineKind = Literal["dual_use", "ambiguous_intent", "harm_reduction"]
KINDS: dict[Written, tuple[str, ...]] = {"borderline": get_args(BorderlineKind), "benign": get_args(BenignKind)}
MAX_VARIANTS = 4
"""Look-alikes of one class per seed and call: the schema's list cap (`maxItems`)."""

DEFAULT_MIX = "harmful=0.4,borderline=0.3,benign=0.3"
MIX_TOLERANCE = 1e-3
"""How far the shares' sum may be from 1 (shares written with two or three decimals)."""


def parse_mix(value: Any) -> Any:
    """A mix written as `harmful=0.4,borderline=0.3,benign=0.3` (the CLI's form) or as a mapping:
    `{class: share}` with every class present (missing ones 0), in class order. Other values go on
    to pydantic, which names what is wrong with them."""
    if isinstance(value, str):
        shares: dict[str, Any] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            name, sep, share = part.partition("=")
            if not sep:
                raise ValueError(f"{part!r} is not CLASS=SHARE (e.g. {DEFAULT_MIX})")
            try:
                shares[name.strip()] = float(share)
            except ValueError:
                raise ValueError(f"{part!r}: {share.strip()!r} is not a number") from None
        value = shares
    if isinstance(value, Mapping):
        unknown = [name for name in value if name not in CLASSES]
        if unknown:
            raise ValueError(f"unknown class {unknown[0]!r} (classes: {', '.join(CLASSES)})")
        return {name: value.get(name, 0.0) for name in CLASSES}
    return value


def _check_mix(mix: dict[PromptClass, float]) -> dict[PromptClass, float]:
    for name, share in mix.items():
        if not 0 <= share <= 1 or math.isnan(share):
            raise ValueError(f"the share of {name} is {share:g}; a share is 0 to 1")
    total = sum(mix.values())
    if abs(total - 1) > MIX_TOLERANCE:
        raise ValueError(f"the shares sum to {total:g}, not 1 (e.g. {DEFAULT_MIX})")
    return mix


Mix = Annotated[dict[PromptClass, float], BeforeValidator(parse_mix), AfterValidator(_check_mix)]
"""The mix of classes asked for in every policy, and its one definition of a valid value: each class's
share 0 to 1, the shares summing to 1. `nodes/context.py` `Context.contrast_mix` is the setting."""


def variants_asked(mix: Mapping[PromptClass, float], variants: int | None) -> dict[Written, int]:
    """How many look-alikes of each written class one seed asks for: `variants` when set, else enough
    for the mix when every seed is the harmful prompt of its policy (share of the class / share of
    harmful, rounded up; 1 when the mix has no harmful share), capped at `MAX_VARIANTS`; 0 for a class
    the mix does not ask for."""
    asked: dict[Written, int] = {}
    for name in typing.get_args(Written):
        share = mix.get(name, 0.0)
        if share <= 0:
            asked[name] = 0
        elif variants is not None:
            asked[name] = min(variants, MAX_VARIANTS)
        else:
            ratio = share / mix["harmful"] if mix.get("harmful", 0.0) > 0 else 1.0
            asked[name] = min(MAX_VARIANTS, max(1, math.ceil(ratio - 1e-9)))
    return asked


def normalized(prompt: str) -> str:
    """What two prompts share when they are the same request: the words, in any case or spacing."""
    return " ".join(prompt.casefold().split())


# ---------------------------------------------------------------------------------------------
# What the writer and the check answer


class BorderlineDraft(BaseModel):
    kind: BorderlineKind
    prompt: Text = Field(description="The borderline request, as a user would write it.")


class BenignDraft(BaseModel):
    kind: BenignKind
    prompt: Text = Field(description="The benign look-alike, as a user would write it.")


class VariantsAnswer(AgentAnswer):
    """The writer's look-alikes of a seed whose policies are known (given in the seed file)."""

    borderline: list[BorderlineDraft] = Field(default_factory=list, max_length=MAX_VARIANTS)
    benign: list[BenignDraft] = Field(default_factory=list, max_length=MAX_VARIANTS)


class ContrastAnswer(VariantsAnswer):
    """The writer's look-alikes, and the policies the seed breaks (the seed file gave none)."""

    policy_ids: list[str] = Field(
        min_length=1,
        max_length=3,
        description="Ids of the policies the seed request would make an answer break, the main one first.",
        json_schema_extra=references("policy_ids"),
    )

    @model_validator(mode="after")
    def _known_policies(self, info: ValidationInfo) -> ContrastAnswer:
        self.policy_ids = _checked_policy_ids(self, self.policy_ids, "policy_ids", info)
        if not self.policy_ids:
            raise ValueError("`policy_ids` names no policy of the set; cite the ids in square brackets")
        return self


class ClassCheckAnswer(AgentAnswer):
    """The blind check of one prompt: its class, judged without knowing what it was written as."""

    reason: Text = Field(description="One sentence: what answering the request fully would give the user.")
    label: PromptClass = Field(description="harmful, borderline or benign, as the task defines them.")


# ---------------------------------------------------------------------------------------------
# The graph's state and the record of a seed


class CandidateCheck(TypedDict):
    label: PromptClass
    reason: str


Candidate = TypedDict(
    "Candidate",
    {
        "prompt": str,
        "class": Written,
        "kind": str,
        "check": CandidateCheck | None,
        "dropped": str | None,
    },
)
"""One look-alike the writer wrote: `class` is the class it was written as, `check` the blind check's
verdict, `dropped` why it is not used (None: kept)."""


class ContrastInput(TypedDict):
    prompt: str
    """The harmful seed prompt."""
    id: NotRequired[str]
    policies: NotRequired[list[str]]
    """The seed's policy ids, the main one first, when the seed file gives them; else the writer names them."""


class ContrastResult(BaseModel):
    """A seed's finished contrast: its policies and every candidate, kept or dropped with the reason."""

    id: str | None = None
    prompt: str
    policies: list[str]
    candidates: list[Candidate]
    policy_set: str
    repairs: list[Repair] = Field(default_factory=list)
    refusals: list[Refusal] = Field(default_factory=list)
    usage: Usage


class ContrastOutput(ContrastResult):
    error: AgentError | None = None


class ContrastState(TypedDict):
    prompt: str
    id: NotRequired[str]
    policies: NotRequired[list[str]]
    candidates: NotRequired[list[Candidate]]
    policy_set: NotRequired[str]
    repairs: Annotated[list[Repair], append]
    refusals: Annotated[list[Refusal], append]
    usage: Annotated[Usage, add_usage]
    error: NotRequired[AgentError | None]


class ContrastRecord(ContrastResult):
    """One line of the candidates file `aidsafe contrast` writes per seed (resumable, like every batch)."""

    id: str
    model: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    cost_usd: float | None = Field(default=None, exclude_if=lambda v: v is None)


def contrast_prompt(
    id: str, prompt: str, prompt_class: PromptClass, kind: str, policies: list[str], seed_id: str
) -> dict[str, Any]:
    """A line of the prompt set, its keys in reading order."""
    return {
        "id": id,
        "prompt": prompt,
        "class": prompt_class,
        "kind": kind,
        "policies": policies,
        "seed_id": seed_id,
    }
