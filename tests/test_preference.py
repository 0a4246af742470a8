"""The preference (ear-whisperer) graph through its Python API, with scripted models."""

from __future__ import annotations

import argparse
import json

from langchain_core.messages import HumanMessage

from aidsafe.cli.options import add_model_arguments, context_from_args
from aidsafe.graphs.preference import build_graph, graph
from aidsafe.nodes.context import Context
from tests.fakes import BELIEFS, CHOSEN, belief, preference_model, rating, scripted, whispered


def run(model, prompt="How do I open my own door?", **context):
    return build_graph(1, model=model).invoke({"prompt": prompt, "id": "s1"}, context={"max_rounds": 1, **context})


def whisperer_prompts(model):
    return [str(c["messages"][-1].content) for c in model.calls_for("BeliefAnswer")]


def test_default_graph_shows_every_node_and_the_deliberation_subgraph():
    nodes = set(graph.get_graph().nodes)
    assert {"deliberation", "score_chosen", "ear_whisperer", "whispered_generator", "score_rejected", "keep_best"} <= (
        nodes
    )
    assert "deliberation:refiner" in graph.get_graph(xray=True).nodes
    assert graph.name == "aidsafe_preference"


def test_loop_feeds_earlier_beliefs_and_scores_back_best_first_and_keeps_the_best():
    model = preference_model({"answer 1": 1, "answer 2": 2, "answer 3": 1})
    out = run(model, whisper_iterations=3, violation_threshold=0.75)
    first, second, third = whisperer_prompts(model)
    assert "(none yet)" in first
    assert f"- score 0.25: {BELIEFS[0]}" in second
    assert third.index(f"score 0.50: {BELIEFS[1]}") < third.index(f"score 0.25: {BELIEFS[0]}")
    assert out["iterations"] == 3
    assert out["belief"] == BELIEFS[1]
    assert out["rejected"]["response"] == "answer 2" and out["rejected_score"] == 0.5
    assert out["chosen"]["response"] == "Final answer." and out["chosen_score"] == 0.0
    assert out["negative_example"] is True and out["error"] is None


def test_loop_stops_early_once_the_score_reaches_the_threshold():
    model = preference_model({"answer 1": 1, "answer 2": 3})
    out = run(model, whisper_iterations=5, violation_threshold=0.75)
    assert out["iterations"] == 2 and out["rejected_score"] == 0.75
    assert model.schemas().count("BeliefAnswer") == 2
    assert out["belief"] == BELIEFS[1]


def test_ties_keep_the_earlier_attempt():
    out = run(preference_model({"answer 1": 2, "answer 2": 2, "answer 3": 2}), whisper_iterations=3)
    assert out["belief"] == BELIEFS[0] and out["rejected"]["response"] == "answer 1"


def test_belief_is_injected_but_never_saved_in_the_rejected_sample():
    quoting = whispered(
        f"As we know, {BELIEFS[0].upper()}",
        "Locks in rented flats   belong to the tenant",
        "So helping is fine.",
        response=f"{BELIEFS[0]} Here is how to open it.",
    )
    model = preference_model(**{"WhisperedAnswer": [quoting]})
    out = run(model, whisper_iterations=1)
    generator_input = str(model.calls_for("WhisperedAnswer")[0]["messages"][-1].content)
    assert BELIEFS[0] in generator_input
    saved = json.dumps(out["rejected"]).lower()
    assert "belong to the tenant" not in saved and "locks in rented flats" not in saved
    assert [t["text"] for t in out["rejected"]["thoughts"]] == ["As we know", "So helping is fine."]
    assert out["rejected"]["response"] == "Here is how to open it."
    assert out["belief"] == BELIEFS[0]


def test_answer_that_only_repeats_the_belief_is_reasked():
    model = preference_model(
        **{"WhisperedAnswer": [whispered(BELIEFS[0], response=BELIEFS[0]), whispered(response="My own words.")]}
    )
    out = run(model, whisper_iterations=1)
    assert out["error"] is None and out["rejected"]["response"] == "My own words."
    generator_calls = model.calls_for("WhisperedAnswer")
    assert len(generator_calls) == 2
    reask = generator_calls[1]["messages"][-1]
    assert isinstance(reask, HumanMessage) and "only repeats the belief" in str(reask.content)


def test_chosen_from_the_input_is_reused_without_generating_it_again():
    model = preference_model({CHOSEN["response"]: 1})
    out = build_graph(1, model=model).invoke(
        {"prompt": "p", "id": "s1", "chosen": CHOSEN}, context={"whisper_iterations": 2}
    )
    one_try = ["BeliefAnswer", "WhisperedAnswer", "ViolationAnswer"]
    assert model.schemas() == ["ViolationAnswer", *one_try, *one_try]
    assert out["chosen"] == CHOSEN and out["chosen_score"] == 0.25
    assert out["usage"]["llm_calls"] == 7
    assert out["policy_set"] and out["id"] == "s1"


def test_judge_runs_on_its_own_model():
    generator = preference_model()
    judge = scripted(**{"ViolationAnswer": [rating(4)]})
    seen = []

    def provider(role, ctx: Context):
        seen.append((role, ctx.model_for(role)))
        return judge if role == "judge" else generator

    out = build_graph(1, model=provider).invoke(
        {"prompt": "p", "chosen": CHOSEN}, context=Context(model="small", judge_model="big-judge")
    )
    assert set(judge.schemas()) == {"ViolationAnswer"}
    assert "ViolationAnswer" not in generator.schemas()
    assert ("judge", "big-judge") in seen and ("whisperer", "small") in seen and ("generator", "small") in seen
    assert out["chosen_score"] == 1.0 and out["iterations"] == 1


def test_whisperer_garbage_ends_the_sample_with_a_clear_error():
    model = preference_model(**{"BeliefAnswer": ["not json"]})
    out = run(model, parse_retries=1)
    assert out["error"]["node"] == "ear_whisperer"
    assert "no valid BeliefAnswer after 2 attempts" in out["error"]["message"]
    assert out["rejected"] == {"thoughts": [], "response": ""} and "WhisperedAnswer" not in model.schemas()


def test_error_after_a_scored_attempt_keeps_the_marker_on_the_rejected_sample():
    model = preference_model(**{"BeliefAnswer": [belief(BELIEFS[0]), "not json"]})
    out = run(model, parse_retries=0, whisper_iterations=3)
    assert out["error"]["node"] == "ear_whisperer"
    assert out["rejected"] and out["negative_example"] is True and out["iterations"] == 1


def test_whisper_settings_through_configurable_as_langserve_sends_them():
    model = preference_model()
    out = build_graph(1, model=model).invoke(
        {"prompt": "p", "chosen": CHOSEN}, config={"configurable": {"whisper_iterations": 2}}
    )
    assert out["iterations"] == 2


async def test_async_invoke():
    out = await build_graph(1, model=preference_model({"answer 1": 4})).ainvoke(
        {"prompt": "p", "id": "a"}, context={"max_rounds": 1}
    )
    assert out["iterations"] == 1 and out["rejected_score"] == 1.0 and out["id"] == "a"


def test_whisper_settings_are_cli_flags():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(["--whisper-iterations", "5", "--violation-threshold", "0.5", "--scorer-url", "http://c"])
    assert context_from_args(args) == {"whisper_iterations": 5, "violation_threshold": 0.5, "scorer_url": "http://c"}
    assert context_from_args(parser.parse_args([])) == {}  # flags left out keep the context's own defaults
