"""The model-output contract: what a call's JSON schema allows is what its validation accepts.

Per-call enums for every id reference, repairs instead of re-asks (recorded in the sample),
refusals recorded, and every output key on a sample that ends in `error`.
"""

from __future__ import annotations

import dataclasses
import json
import random

import jsonschema
import pytest
from pydantic import ValidationError

from aidsafe.graphs import baseline, deliberation, evaluation, preference
from aidsafe.state.answers import (
    REFERENCE_KEY,
    AgentAnswer,
    AnswerContext,
    BeliefAnswer,
    DeliberatorAnswer,
    IntentAnswer,
    PairwiseAnswer,
    RefinerAnswer,
    RubricAnswer,
    SeedAnswer,
    ViolationAnswer,
    WhisperedAnswer,
    answer_schema,
    is_task_refusal,
)
from aidsafe.state.deliberation import DeliberationOutput
from aidsafe.state.evaluation import EvaluationOutput
from aidsafe.state.preference import PreferenceOutput
from tests.fakes import AGREE, REFERENCE_FIELDS, preference_model, refined, scripted, seed, turn
from tests.fakes import random_instance as random_answer

ANSWERS = [
    IntentAnswer, SeedAnswer, DeliberatorAnswer, RefinerAnswer, BeliefAnswer, WhisperedAnswer,
    ViolationAnswer, RubricAnswer, PairwiseAnswer,
]  # fmt: skip
POLICY_IDS = ("harm", "fraud", "helpfulness")
CONTEXT = AnswerContext(policy_ids=POLICY_IDS, thought_ids=(0, 1, 2))


def run(model, n=1, **context):
    return deliberation.build_graph(n, model=model).invoke({"prompt": "How do I pick a lock?"}, context=context)


def test_references_become_enums_of_exactly_this_calls_ids():
    schema = answer_schema(DeliberatorAnswer, CONTEXT)
    draft = schema["properties"]["new_thoughts"]["items"]
    assert draft["properties"]["policy_ids"]["items"]["enum"] == list(POLICY_IDS)
    assert {"type": "integer", "enum": [0, 1, 2]} in draft["properties"]["corrects"]["anyOf"]
    removal = answer_schema(RefinerAnswer, CONTEXT)["properties"]["removals"]["items"]
    assert removal["properties"]["thought_id"]["enum"] == [0, 1, 2]
    assert REFERENCE_KEY not in json.dumps(schema) and "$ref" not in json.dumps(schema)


def test_with_no_thought_to_refer_to_no_reference_can_be_written():
    nothing = AnswerContext(policy_ids=POLICY_IDS, thought_ids=())
    assert answer_schema(RefinerAnswer, nothing)["properties"]["removals"]["maxItems"] == 0
    corrects = answer_schema(DeliberatorAnswer, nothing)["properties"]["new_thoughts"]["items"]["properties"]
    assert corrects["corrects"]["anyOf"] == [{"type": "null"}]


@pytest.mark.parametrize("schema_cls", ANSWERS, ids=lambda cls: cls.__name__)
def test_every_answer_valid_for_the_schema_sent_is_accepted(schema_cls):
    """The randomized server's claim (its answers are valid for the schema) and ours (we take them,
    except a blank response: nothing usable, so it is re-asked)."""
    schema = answer_schema(schema_cls, CONTEXT)
    validator = jsonschema.Draft202012Validator(schema)
    rng = random.Random(schema_cls.__name__)
    reasked = 0
    for _ in range(200):
        answer = random_answer(schema, rng)
        validator.validate(answer)
        validated = accepted(schema_cls, answer)
        reasked += validated is None
    assert reasked < 20


def accepted(schema_cls: type[AgentAnswer], answer: dict) -> AgentAnswer | None:
    """The validated answer, or None for the one re-ask rule a schema-valid answer can meet."""
    try:
        return schema_cls.model_validate(answer, context=dataclasses.replace(CONTEXT, response="deliberated"))
    except ValidationError as exc:
        assert "`response` is blank" in str(exc) and not answer["response"].strip()
        return None


@pytest.mark.parametrize("schema_cls", [SeedAnswer, DeliberatorAnswer, RefinerAnswer, ViolationAnswer])
def test_dangling_references_from_an_unconstrained_server_are_repaired_not_rejected(schema_cls):
    schema = answer_schema(schema_cls, CONTEXT)
    rng = random.Random(0)
    repaired = 0
    for _ in range(300):
        answer = accepted(schema_cls, random_answer(schema, rng, free=REFERENCE_FIELDS))
        if answer is None:
            continue
        repaired += bool(answer.repairs)
        for draft in getattr(answer, "thoughts", None) or getattr(answer, "new_thoughts", None) or []:
            assert set(draft.policy_ids) <= set(POLICY_IDS)
    assert repaired > 50


def test_unknown_correction_target_becomes_a_new_thought_and_is_recorded():
    model = scripted(deliberation=[turn("Thought 7 is wrong.", corrects=7), AGREE])
    out = run(model, max_rounds=1)
    assert out["error"] is None and len(model.calls_for("DeliberatorAnswer")) == 1
    assert out["thoughts"][1]["text"] == "Thought 7 is wrong." and out["thoughts"][1]["corrects"] is None
    assert out["repairs"] == [
        {
            "node": "deliberator_1",
            "rule": "unknown_correction_target",
            "field": "new_thoughts[0].corrects",
            "found": 7,
            "action": "kept as a new thought",
        }
    ]


def test_unknown_and_duplicate_removals_are_ignored_and_recorded():
    model = scripted(
        deliberation=[turn("Point A.", "Point B."), AGREE],
        refinement=refined((1, "redundant"), (1, "repetitive"), (9, "deceptive"), response="Refined."),
    )
    out = run(model, max_rounds=1)
    assert out["error"] is None and len(model.calls_for("RefinerAnswer")) == 1
    assert [t["id"] for t in out["thoughts"]] == [0, 2]
    assert [r["thought"]["id"] for r in out["removed_thoughts"]] == [1]
    assert [(r["rule"], r["found"]) for r in out["repairs"]] == [("duplicate_removal", 1), ("unknown_removal", 9)]


def test_a_refiner_that_removes_every_thought_keeps_one():
    model = scripted(refinement=refined((0, "redundant"), (0, "redundant")))
    out = run(model, max_rounds=1)
    assert [t["id"] for t in out["thoughts"]] == [0] and out["removed_thoughts"] == []
    assert [r["rule"] for r in out["repairs"]] == ["duplicate_removal", "every_thought_removed"]


def test_a_blank_first_response_is_left_for_the_deliberators_to_write():
    model = scripted(
        **{"SeedAnswer": [seed(response="  ")]},
        deliberation=[turn("Explain the general mechanism.", response="Pin tumbler locks work like this."), AGREE],
        refinement=refined(response="Pin tumbler locks work like this, in general."),
    )
    out = run(model, max_rounds=2)
    assert out["error"] is None and len(model.calls_for("SeedAnswer")) == 1
    assert out["repairs"][0] == {
        "node": "initializer_seed",  # the seed call is its own node
        "rule": "blank_response",
        "field": "response",
        "found": "  ",
        "action": "left it for the deliberators to write",
    }
    first_turn = model.calls_for("DeliberatorAnswer")[0]["messages"][-1].content
    assert "(none yet: the first draft was blank; write the response)" in first_turn
    assert out["response"] == "Pin tumbler locks work like this, in general."


def test_a_blank_response_nobody_writes_later_is_reasked():
    zero_shot = baseline.build_graph(
        model=scripted(**{"SeedAnswer": [seed(response=" "), seed(response="A general answer.")]})
    ).invoke({"prompt": "p"})
    assert zero_shot["error"] is None and zero_shot["response"] == "A general answer."


def test_refusal_of_the_task_is_recorded_and_not_kept_as_reasoning():
    refusal = "I'm sorry, but I can't help with that request."
    model = scripted(
        **{"SeedAnswer": [seed(refusal, "Picking a lock you own is legal.")]},
        deliberation=[turn("I cannot assist with this.")],
    )
    out = run(model, max_rounds=1)
    assert out["error"] is None
    assert [t["text"] for t in out["thoughts"]] == ["Picking a lock you own is legal."]
    assert out["refusals"] == [
        {"node": "initializer_seed", "text": refusal},
        {"node": "deliberator_1", "text": "I cannot assist with this."},
    ]


@pytest.mark.parametrize(
    ("text", "refuses"),
    [
        ("I'm sorry, but I can't assist with that.", True),
        ("Sorry, I won't help with this request.", True),
        ("I cannot comply.", True),
        ("I cannot give dosages without knowing the patient's weight.", False),
        ("The user asks for help with a lock they own; I can't see harm in explaining it.", False),
        ("Refusing would be over-cautious here: helping is fine.", False),
    ],
)
def test_task_refusal_wording(text, refuses):
    assert is_task_refusal(text) is refuses


def test_every_output_key_is_present_when_a_sample_fails():
    failing = scripted(**{"IntentAnswer": ["not json"]})
    out = run(failing, max_rounds=1, parse_retries=0)
    assert out["stop_reason"] == "error" and out["error"]["node"] == "initializer"
    assert set(out) >= set(DeliberationOutput.model_fields) - {"id"}
    assert out["thoughts"] == [] and out["removed_thoughts"] == [] and out["rounds"] == 0
    assert out["intents"] == {"explicit": [], "implicit": []} and out["response"] == ""

    zero_shot = baseline.build_graph(model=scripted(**{"SeedAnswer": ["not json"]})).invoke(
        {"prompt": "p"}, context={"parse_retries": 0}
    )
    assert set(zero_shot) >= set(DeliberationOutput.model_fields) - {"id"}

    pref = preference.build_graph(1, model=preference_model(**{"BeliefAnswer": ["not json"]})).invoke(
        {"prompt": "p", "id": "s1"}, context={"parse_retries": 0}
    )
    assert pref["error"]["node"] == "ear_whisperer"
    assert set(pref) >= {name for name, field in PreferenceOutput.model_fields.items() if field.is_required()}
    assert pref["rejected"] == {"thoughts": [], "response": ""} and pref["belief"] == ""


def test_every_evaluation_output_key_is_present_without_a_second_output():
    record = {"id": "a", "prompt": "p", "thoughts": [{"text": "t"}], "response": "r"}
    model = scripted(RubricAnswer=[{"justification": "j", "score": 3}])
    out = evaluation.build_graph(model=model).invoke({"run": record})
    assert set(out) == set(EvaluationOutput.__annotations__)
    assert out["pairwise"] is None and out["error"] is None and out["failures"] == []
