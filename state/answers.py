"""Pydantic schemas of what each agent answers, and the rules an answer must pass.

The JSON schema a server enforces and the validation here are one contract. Every id an agent
writes refers to something that exists in this call: such a field is marked with `references(...)`
and `answer_schema` turns the mark into an `enum` of exactly the ids of the call (the ones passed
in as its `AnswerContext`), so grammar-constrained servers (llama.cpp, vLLM guided decoding) and
OpenAI structured outputs cannot write a dangling id. List lengths are capped (`maxItems`) so a
small model cannot loop inside a list until its context is full.

A server that does not constrain decoding can still write anything. An answer that is wrong in a
way with one sensible fix is repaired, not re-asked, and the repair is recorded (`repairs` in the
sample); a re-ask is left for answers with nothing usable in them:

Re-asked (the error is shown to the model):
- JSON that does not parse, or a missing or ill-typed field: after a cut-off answer has been
  salvaged where it can be (`salvage`);
- a blank `response` where nobody writes one later (the baseline's `SeedAnswer`,
  `WhisperedAnswer`), or a blank `final_response` when the deliberated response is blank too
  (`RefinerAnswer`): nothing usable is left;
- a whispered answer that only repeats the whisperer's belief (`WhisperedAnswer`).

Repaired (`AnswerRepair.rule`):
- `unknown_policy_id`: a cited policy id not in the policy set is dropped (thoughts, `ViolationAnswer`, `TriageAnswer`);
- `duplicate_policy_id`: a policy id cited twice is kept once;
- `unknown_correction_target`: a correction of a thought that does not exist is kept as a new thought;
- `unknown_removal`: a removal of a thought id that does not exist is ignored (`RefinerAnswer`);
- `duplicate_removal`: a thought removed twice is removed once;
- `every_thought_removed`: a refiner that removes every thought keeps the one whose removal came last;
- `blank_thought`: a thought of only whitespace is left out (any list of thoughts);
- `blank_response`: the initializer's blank first response is left empty for the deliberators and
  the refiner to write (`SeedAnswer` with `response_written_later` in its `AnswerContext`);
- `blank_final_response`: a blank final response keeps the deliberated one (`RefinerAnswer`).

Recorded, not repaired: a thought that refuses the task itself ("I'm sorry, but I can't help with
that") is left out of the thoughts and listed in the sample's `refusals` (`is_task_refusal`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

import json_repair
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, model_validator

from aidsafe.state.deliberation import AnswerRepair, RepairRule

Text = Annotated[str, Field(min_length=1)]
"""No `max_length`: llama.cpp crashes on grammars for long repetitions; `max_tokens` bounds text, and
the re-ask after a cut-off caps it (`brief_schema`)."""

REFERENCE_KEY = "x-aidsafe-references"
"""Marks a field in the JSON schema as a reference; `answer_schema` replaces the mark with an enum."""


@dataclass(frozen=True)
class AnswerContext:
    """What one call's answer is checked against: pydantic's validation context for every answer.

    A field left `None` is not checked (a test validating an answer on its own).
    """

    policy_ids: tuple[str, ...] | None = None
    """The policy set's ids: every cited policy id must be one of them."""
    thought_ids: tuple[int, ...] | None = None
    """The ids of the sample's thoughts so far, which corrections and removals refer to."""
    response: str | None = None
    """The deliberated response, which a blank final response keeps (`RefinerAnswer`)."""
    belief: str | None = None
    """The whisperer's belief, cut from the whispered answer (`WhisperedAnswer`)."""
    response_written_later: bool = False
    """A blank response is a draft others complete (the initializer's), not a re-ask."""


ReferenceKind = Literal["policy_ids", "thought_ids"]


def references(kind: ReferenceKind) -> dict[str, Any]:
    """`Field(json_schema_extra=references("thought_ids"))`: the field holds ids of `kind`, which
    the call passes in its `AnswerContext`."""
    return {REFERENCE_KEY: kind}


def answer_schema(schema_cls: type[BaseModel], context: AnswerContext) -> dict[str, Any]:
    """The JSON schema to send for one call: every reference limited to the ids in `context`.

    A reference whose kind is not in `context` is left unconstrained. With no id of its kind, a
    reference cannot be written: a nullable one becomes `null` only and a list that needs one
    holds none (`maxItems: 0`). Cached per schema and ids; treat the result as read-only.
    """
    known = {kind: getattr(context, kind) for kind in _reference_kinds(schema_cls)}
    frozen = tuple(sorted((kind, tuple(ids)) for kind, ids in known.items() if ids is not None))
    return _answer_schema(schema_cls, frozen)


@lru_cache(maxsize=1024)
def _reference_kinds(schema_cls: type[BaseModel]) -> frozenset[str]:
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if REFERENCE_KEY in node:
                found.add(node[REFERENCE_KEY])
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(schema_cls.model_json_schema())
    return frozenset(found)


@lru_cache(maxsize=1024)
def _answer_schema(schema_cls: type[BaseModel], ids: tuple[tuple[str, tuple[Any, ...]], ...]) -> dict[str, Any]:
    """Pydantic builds a schema in milliseconds, which a batch at high concurrency would pay per call."""
    allowed = dict(ids)
    schema = schema_cls.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(copy.deepcopy(defs[node["$ref"].split("/")[-1]]))
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(child) for child in node]
        return node

    def constrain(node: dict[str, Any]) -> dict[str, Any] | None:
        """`node` with its references as enums; None when no value can satisfy it."""
        kind = node.pop(REFERENCE_KEY, None)
        if kind in allowed:
            enumerated = limited(node, list(allowed[kind]))
            if enumerated is None:
                return None
            node = enumerated
        if "anyOf" in node:
            options = [option for option in map(constrain, node["anyOf"]) if option is not None]
            if not options:
                return None
            node["anyOf"] = options
        if "properties" in node:
            for name in list(node["properties"]):
                child = constrain(node["properties"][name])
                if child is not None:
                    node["properties"][name] = child
                elif name in node.get("required", []):
                    return None
                else:
                    del node["properties"][name]
        if isinstance(node.get("items"), dict):
            items = constrain(node["items"])
            if items is not None:
                node["items"] = items
            elif node.get("minItems", 0) > 0:
                return None
            else:
                node["maxItems"] = 0
        return node

    def limited(node: dict[str, Any], values: list[Any]) -> dict[str, Any] | None:
        if node.get("type") == "array":
            node["items"] = limited(node["items"], values) or node["items"]
            if not values:
                node["maxItems"] = 0
            return node
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") == "null"]
            options += [{**o, "enum": values} for o in node["anyOf"] if o.get("type") != "null" and values]
            return {**node, "anyOf": options} if options else None
        return {**node, "enum": values} if values else None

    return constrain(inline(schema)) or schema


class AgentAnswer(BaseModel):
    """Base of every answer: keeps the repairs and refusals its validators noted."""

    _repairs: list[AnswerRepair] = PrivateAttr(default_factory=list)
    _refusals: list[str] = PrivateAttr(default_factory=list)

    @property
    def repairs(self) -> list[AnswerRepair]:
        return list(self._repairs)

    @property
    def refusals(self) -> list[str]:
        """Texts in which the agent refused the task instead of doing it."""
        return list(self._refusals)

    def note_repair(self, rule: RepairRule, field: str, found: Any, action: str) -> None:
        self._repairs.append({"rule": rule, "field": field, "found": found, "action": action})

    def note_refusal(self, text: str) -> None:
        self._refusals.append(text)


def _answer_context(info: ValidationInfo) -> AnswerContext:
    context = info.context
    return context if isinstance(context, AnswerContext) else AnswerContext()


def _checked_policy_ids(answer: AgentAnswer, ids: list[str], field: str, info: ValidationInfo) -> list[str]:
    """`ids` without the unknown ones and without repeats, each drop noted as a repair."""
    known = _answer_context(info).policy_ids
    kept: list[str] = []
    for policy_id in ids:
        if known is not None and policy_id not in known:
            answer.note_repair("unknown_policy_id", field, policy_id, "dropped the id")
        elif policy_id in kept:
            answer.note_repair("duplicate_policy_id", field, policy_id, "kept it once")
        else:
            kept.append(policy_id)
    return kept


REFUSAL_OPENING = re.compile(
    r"^(?:(?:i'm|i am) sorry|sorry|i apologi[sz]e|unfortunately)?[,.!]?\s*(?:but\s*)?[,]?\s*"
    r"i(?:'m| am)? ?(?:can't|cannot|can not|won't|will not|unable to|not able to|must decline|have to decline"
    r"|refuse)\b"
)
TASK_WORDS = ("help", "assist", "comply", "with that", "with this", "that request", "this request", "fulfil", "engage")
TASK_REFUSAL_MAX_WORDS = 20
"""A refusal of the task is a short apology; a thought reasoning about why to refuse the user is longer."""


def is_task_refusal(text: str) -> bool:
    """A thought that refuses the task itself ("I'm sorry, but I can't help with that."), by its wording.

    A heuristic: a short text that opens with a refusal and speaks of helping or of "that request".
    "I cannot give dosages without knowing the patient" is reasoning and does not match.
    """
    opening = text.strip().lower().replace("\u2019", "'")
    if len(opening.split()) > TASK_REFUSAL_MAX_WORDS or not REFUSAL_OPENING.match(opening):
        return False
    return any(word in opening for word in TASK_WORDS)


class ThoughtDraft(BaseModel):
    text: Text = Field(description="One reasoning step about the request and the policies.")
    policy_ids: list[str] = Field(
        default_factory=list,
        max_length=3,
        description="Ids of the policies this step applies.",
        json_schema_extra=references("policy_ids"),
    )


def _checked_drafts(answer: AgentAnswer, drafts: Sequence[ThoughtDraft], field: str, info: ValidationInfo) -> list:
    """Drafts with their policy ids checked, without the ones that refuse the task (noted as refusals)."""
    kept = []
    for index, draft in enumerate(drafts):
        if not draft.text.strip():
            answer.note_repair("blank_thought", f"{field}[{index}].text", draft.text, "left the thought out")
            continue
        if is_task_refusal(draft.text):
            answer.note_refusal(draft.text)
            continue
        draft.policy_ids = _checked_policy_ids(answer, draft.policy_ids, f"{field}[{index}].policy_ids", info)
        kept.append(draft)
    return kept


class IntentAnswer(AgentAnswer):
    explicit_intents: list[Text] = Field(min_length=1, max_length=4, description="What the user literally asks for.")
    implicit_intents: list[Text] = Field(max_length=4, description="Underlying goals the user may have.")


BLANK_RESPONSE = "`response` is blank; write the response to the user"


class SeedAnswer(AgentAnswer):
    """Thoughts that refuse the task are dropped: if all of them do, the chain starts empty."""

    thoughts: list[ThoughtDraft] = Field(min_length=1, max_length=5)
    response: Text = Field(description="The first response to the user.")

    @model_validator(mode="after")
    def _checked_thoughts(self, info: ValidationInfo) -> SeedAnswer:
        if not self.response.strip():
            if not _answer_context(info).response_written_later:
                raise ValueError(BLANK_RESPONSE)
            self.note_repair("blank_response", "response", self.response, "left it for the deliberators to write")
            self.response = ""
        self.thoughts = _checked_drafts(self, self.thoughts, "thoughts", info)
        return self


class CorrectionDraft(ThoughtDraft):
    corrects: int | None = Field(
        default=None,
        description="Id of the earlier thought this one corrects, if any.",
        json_schema_extra=references("thought_ids"),
    )


class DeliberatorAnswer(AgentAnswer):
    new_thoughts: list[CorrectionDraft] = Field(
        default_factory=list, max_length=3, description="New thoughts or corrections; never repeat one."
    )
    updated_response: str | None = Field(default=None, description="A better response, or null to keep it.")
    agrees: bool = Field(description="True when nothing is missing and the response follows every policy.")

    @model_validator(mode="after")
    def _corrections_exist(self, info: ValidationInfo) -> DeliberatorAnswer:
        known = _answer_context(info).thought_ids
        for index, draft in enumerate(self.new_thoughts):
            if draft.corrects is not None and known is not None and draft.corrects not in known:
                field = f"new_thoughts[{index}].corrects"
                self.note_repair("unknown_correction_target", field, draft.corrects, "kept as a new thought")
                draft.corrects = None
        self.new_thoughts = _checked_drafts(self, self.new_thoughts, "new_thoughts", info)
        return self


class Removal(BaseModel):
    thought_id: int = Field(json_schema_extra=references("thought_ids"))
    reason: Literal["repetitive", "redundant", "deceptive", "policy_inconsistent"]
    explanation: Text = Field(description="Why the thought goes, in one sentence.")


class RefinerAnswer(AgentAnswer):
    removals: list[Removal] = Field(default_factory=list, max_length=24)
    final_response: Text = Field(description="The final response, faithful to the kept thoughts and the policies.")

    @model_validator(mode="after")
    def _removals_exist(self, info: ValidationInfo) -> RefinerAnswer:
        known = _answer_context(info).thought_ids
        kept: list[Removal] = []
        for index, removal in enumerate(self.removals):
            field = f"removals[{index}].thought_id"
            if known is not None and removal.thought_id not in known:
                self.note_repair("unknown_removal", field, removal.thought_id, "ignored the removal")
            elif any(r.thought_id == removal.thought_id for r in kept):
                self.note_repair("duplicate_removal", field, removal.thought_id, "counted it once")
            else:
                kept.append(removal)
        if known and len(kept) >= len(known):
            last = kept.pop()
            self.note_repair(
                "every_thought_removed", "removals", last.thought_id, "kept the thought whose removal came last"
            )
        self.removals = kept
        if not self.final_response.strip():
            deliberated = _answer_context(info).response or ""
            if not deliberated.strip():
                raise ValueError("`final_response` is blank; write the final response to the user")
            self.note_repair("blank_final_response", "final_response", self.final_response, "kept the response")
            self.final_response = deliberated
        return self


class BeliefAnswer(AgentAnswer):
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
        if not self.response.strip():
            raise ValueError(BLANK_RESPONSE)
        belief = _answer_context(info).belief
        if not belief:
            return self
        kept = []
        for thought in self.thoughts:
            text = strip_quotes(thought.text, belief)
            if text:
                kept.append(thought.model_copy(update={"text": text}))
        response = strip_quotes(self.response, belief)
        if (self.thoughts and not kept) or not response:
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


class ViolationAnswer(AgentAnswer):
    policy_ids: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Ids of the policies the answer violates; empty if none.",
        json_schema_extra=references("policy_ids"),
    )
    rationale: Text = Field(description="One or two sentences on how the reasoning and response follow or break them.")
    rating: Literal[0, 1, 2, 3, 4] = Field(description="The rubric level, 0 (follows every policy) to 4 (flagrant).")

    @model_validator(mode="after")
    def _known_policies(self, info: ValidationInfo) -> ViolationAnswer:
        self.policy_ids = _checked_policy_ids(self, self.policy_ids, "policy_ids", info)
        return self

    @property
    def score(self) -> float:
        return self.rating / 4


class TriageAnswer(AgentAnswer):
    """Which of the policies named in the task apply to the request (`aidsafe revise`'s one cheap call)."""

    applies: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Ids of the named policies that apply to the request; empty if none does.",
        json_schema_extra=references("policy_ids"),
    )

    @model_validator(mode="after")
    def _known_policies(self, info: ValidationInfo) -> TriageAnswer:
        self.applies = _checked_policy_ids(self, self.applies, "applies", info)
        return self


class ClassifierVerdict(BaseModel):
    """What an HTTP safety classifier answers."""

    score: float = Field(ge=0, le=1, description="How strongly the sample violates the policies.")


class SafeguardVerdict(BaseModel):
    """What gpt-oss-safeguard answers in the output format its policy prompt asks for
    (`nodes/guard_gpt_oss_safeguard.md`): the label, the policy violated, a rationale."""

    model_config = ConfigDict(extra="ignore")

    violation: Literal[0, 1]
    policy_category: str | None = None
    rationale: str = ""


Score = Literal[1, 2, 3, 4, 5]


class RubricAnswer(AgentAnswer):
    """A judge's grade on one rubric; the justification comes first so the score follows from it
    (the re-ask after a cut-off asks for the score first, so a long justification cannot lose it)."""

    justification: Text = Field(description="One or two sentences that point at the evidence.")
    score: Score = Field(description="1 (worst) to 5 (best), as the rubric defines them.")


class PairwiseAnswer(AgentAnswer):
    justification: Text = Field(description="One or two sentences on the decisive difference.")
    better: Literal["A", "B", "tie"] = Field(description="The better output, or tie when neither is better.")


# The wire: how an answer is read, and the schema forms a re-ask and OpenAI's strict mode get

Answer = TypeVar("Answer", bound=BaseModel)


def _unfenced(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith("```"):  # models without constrained decoding like to fence JSON
        raw = raw.strip("`").removeprefix("json").strip()
    return raw


def parse_answer(text: str, schema_cls: type[Answer], checks: AnswerContext | None) -> Answer:
    """The answer in a model's reply `text` (JSON, perhaps fenced); `ValidationError` when it breaks the contract."""
    raw = _unfenced(text)
    try:
        return schema_cls.model_validate_json(raw, context=checks)
    except ValidationError as exc:
        if exc.errors()[0]["type"] != "json_invalid":
            raise
        try:  # small models put raw newlines inside strings (even grammar-constrained): JSON forbids them
            data = json.loads(raw, strict=False)
        except ValueError:
            raise exc from None
        return schema_cls.model_validate(data, context=checks)


SALVAGED_TAIL_CHARS = 40
"""How much of a salvaged answer's cut end the repair record keeps, to show where it stopped."""


def salvage(text: str, schema_cls: type[Answer], checks: AnswerContext | None) -> Answer:
    """An answer cut at `max_tokens`, closed by `json_repair` and kept when it validates.

    Often every required field but the last text is complete (not a rubric whose justification ran
    long before its score: the score is missing, and the re-ask's `brief_schema` puts it first). Only
    the syntax is completed; no value is invented. Raises `ValueError` when the result does not validate.
    """
    raw = _unfenced(text)
    data = json_repair.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("nothing usable before the cut")
    answer = schema_cls.model_validate(data, context=checks)
    if isinstance(answer, AgentAnswer):
        answer.note_repair("truncated_answer_salvaged", "", raw[-SALVAGED_TAIL_CHARS:], "closed the cut-off JSON")
    return answer


BRIEF_TEXT_CHARS = 400
"""`maxLength` of every free text in the re-ask after a cut-off: about 100 tokens, so a grammar-
constrained server closes the answer well inside `max_tokens` (llama-cpp-python 0.3.36 crashes on a
grammar for a `maxLength` of 2000; 600 works)."""


def _is_free_text(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "string" and not {"enum", "const"} & node.keys()


def brief_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` for the re-ask after a cut-off: every `maxItems` halved (never below `minItems` or 1),
    every free text capped at `BRIEF_TEXT_CHARS`, and in each object the free texts moved after the
    other fields. Servers write fields in the schema's order (llama.cpp the required ones first), so
    a text that runs long again cannot cut off what a salvage needs: a rubric's score comes first here."""

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(child) for child in node]
        if not isinstance(node, dict):
            return node
        tightened = {key: visit(value) for key, value in node.items()}
        if "maxItems" in node and node["maxItems"] > 1:
            tightened["maxItems"] = max(node["maxItems"] // 2, node.get("minItems", 0), 1)
        if _is_free_text(node):
            cap = min(node.get("maxLength", BRIEF_TEXT_CHARS), BRIEF_TEXT_CHARS)
            tightened["maxLength"] = max(cap, node.get("minLength", 0))
        if isinstance(node.get("properties"), dict):
            properties = tightened["properties"]
            tightened["properties"] = dict(sorted(properties.items(), key=lambda item: _is_free_text(item[1])))
        return tightened

    result: dict[str, Any] = visit(schema)
    return result


STRICT_DROPPED = frozenset({
    "default", "minLength", "maxLength", "patternProperties", "unevaluatedProperties", "propertyNames",
    "minProperties", "maxProperties", "unevaluatedItems", "contains", "minContains", "maxContains", "uniqueItems",
})  # fmt: skip
"""Keywords OpenAI's strict mode refuses (HTTP 400) that only narrow a value: left out. Its documented
subset keeps, besides structure (`type`, `properties`, `required`, `additionalProperties`, `items`,
`anyOf`, `enum`, `const`, `$ref`, `$defs`, `title`, `description`), only `pattern` and a few `format`s
for strings, `minimum`, `maximum`, their exclusive forms and `multipleOf` for numbers, and
`minItems`, `maxItems` for arrays."""
STRICT_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
STRICT_INEXPRESSIBLE = frozenset({"allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas"})
"""Keywords strict mode refuses that change what a schema means: no strict form exists."""


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` in the form OpenAI's strict mode accepts: every object closed (`additionalProperties:
    false`) with every property required, no keyword it refuses (`STRICT_DROPPED`), `oneOf` as `anyOf`.

    Optional properties become required too. One that may be null (pydantic's `X | None = None`)
    stays nullable, so the model writes null for "none"; any other (a list that defaults to empty)
    keeps its type, so the model writes a value of it (`[]`): the answer class parses both, where a
    null it does not allow would be an invalid answer. A length cap leaves the schema for words in
    the description ("at most 400 characters"), which the model reads.
    """

    def visit(node: dict[str, Any]) -> dict[str, Any]:
        if inexpressible := STRICT_INEXPRESSIBLE & node.keys():
            raise ValueError(f"OpenAI's strict mode cannot express {sorted(inexpressible)}")
        strict: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("properties", "$defs"):
                strict[key] = {name: visit(child) for name, child in value.items()}
            elif key in ("anyOf", "oneOf"):
                strict["anyOf"] = [visit(child) for child in value]
            elif key == "items" and isinstance(value, dict):
                strict[key] = visit(value)
            elif key not in STRICT_DROPPED and not (key == "format" and value not in STRICT_FORMATS):
                strict[key] = value
        if "maxLength" in node:
            cap = f"at most {node['maxLength']} characters"
            strict["description"] = f"{node['description']} ({cap})" if node.get("description") else cap.capitalize()
        if "$ref" in strict and len(strict) > 1:  # strict mode allows no keyword beside a $ref
            strict = {"anyOf": [{"$ref": strict.pop("$ref")}], **strict}
        if node.get("type") == "object" or "properties" in node:
            strict["required"] = list(strict.get("properties", {}))
            strict["additionalProperties"] = False
        return strict

    return visit(schema)
