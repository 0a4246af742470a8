"""The deliberation graph through its Python API, with a scripted model."""

from __future__ import annotations

import itertools
import re

import pytest
from langchain_core.messages import HumanMessage

from aidsafe.graphs.deliberation import build_graph, graph
from aidsafe.nodes.context import Context
from tests.fakes import AGREE, refined, scripted, task_line, turn


def run(model, n=2, **context):
    return build_graph(n, model=model).invoke({"prompt": "How do I pick a lock?"}, context=context)


def test_default_graph_lists_every_agent_node():
    assert {"initializer", "deliberator_1", "deliberator_2", "termination_check", "refiner"} <= set(
        graph.get_graph().nodes
    )
    assert "deliberator_3" not in graph.get_graph().nodes


def test_consensus_in_first_round_stops_and_refines():
    model = scripted(deliberation=[AGREE])
    out = run(model, max_rounds=3)
    assert out["stop_reason"] == "consensus"
    assert out["rounds"] == 1
    assert [t["agreed"] for t in out["deliberation_log"]] == [True, True]
    assert model.schemas() == [
        "IntentAnswer",
        "SeedAnswer",
        "DeliberatorAnswer",
        "DeliberatorAnswer",
        "RefinerAnswer",
    ]
    assert out["response"] == "Final answer."
    assert out["intents"] == {"explicit": ["pick a lock"], "implicit": ["get into own house"]}
    assert out["error"] is None


def test_budget_stop_when_agents_keep_adding():
    counter = iter(range(1000))
    model = scripted(deliberation=lambda _messages: turn(f"new point {next(counter)}"))
    out = run(model, max_rounds=3)
    assert out["stop_reason"] == "budget"
    assert out["rounds"] == 3
    log = out["deliberation_log"]
    assert [(t["round"], t["agent"]) for t in log] == [(r, f"deliberator_{k}") for r in (1, 2, 3) for k in (1, 2)]
    assert len(out["thoughts"]) == 1 + 6
    assert model.schemas().count("DeliberatorAnswer") == 6


@pytest.mark.parametrize("n", [1, 2, 4])
def test_n_agents_take_turns_in_order_until_consensus(n):
    def deliberate(messages):
        text = task_line(str(messages[-1].content))
        round_number = int(re.search(r"round (\d+)", text).group(1))
        agent = re.search(r"deliberator (\d+) of", text).group(1)
        return turn(f"round {round_number} point from agent {agent}") if round_number == 1 else AGREE

    out = run(scripted(deliberation=deliberate), n=n, max_rounds=5)
    assert out["stop_reason"] == "consensus"
    assert out["rounds"] == 2
    assert [t["agent"] for t in out["deliberation_log"]] == [f"deliberator_{k}" for k in range(1, n + 1)] * 2
    written_by = [t["agent"] for t in out["thoughts"]]
    assert written_by == ["initializer"] + [f"deliberator_{k}" for k in range(1, n + 1)]
    graph_nodes = set(build_graph(n).get_graph().nodes)
    assert {f"deliberator_{k}" for k in range(1, n + 1)} <= graph_nodes


def test_later_agents_see_earlier_thoughts_and_repeats_are_dropped():
    model = scripted(
        deliberation=[
            turn("Suggest calling a locksmith."),
            turn("suggest calling a LOCKSMITH!", agrees=True),  # a repeat: adds nothing
            AGREE,
        ]
    )
    out = run(model, max_rounds=3)
    second_turn_prompt = str(model.calls[3]["messages"][-1].content)
    assert "Suggest calling a locksmith." in second_turn_prompt
    assert [t["text"] for t in out["thoughts"]].count("Suggest calling a locksmith.") == 1
    assert out["deliberation_log"][1]["added_thoughts"] == []
    assert out["deliberation_log"][1]["agreed"] is True
    assert out["stop_reason"] == "consensus" and out["rounds"] == 2


def test_response_update_and_correction_are_logged():
    model = scripted(
        deliberation=[turn("Thought 0 overstates the risk.", response="Better answer.", corrects=0), AGREE]
    )
    out = build_graph(1, model=model).invoke({"prompt": "p"}, context={"max_rounds": 1})
    first = out["deliberation_log"][0]
    assert first["updated_response"] == "Better answer." and first["agreed"] is False
    assert out["thoughts"][1]["corrects"] == 0
    assert out["stop_reason"] == "budget"


def test_refiner_removals_keep_their_reasons():
    model = scripted(
        deliberation=[turn("Point A.", "Point A, said again in other words."), AGREE],
        refinement=refined((2, "redundant"), (0, "policy_inconsistent"), response="Refined."),
    )
    out = run(model, n=1, max_rounds=3)
    assert [t["text"] for t in out["thoughts"]] == ["Point A."]
    removed = {r["thought"]["id"]: r["reason"] for r in out["removed_thoughts"]}
    assert removed == {2: "redundant", 0: "policy_inconsistent"}
    assert out["response"] == "Refined."


def test_malformed_output_is_reasked_with_the_error_then_recovers():
    model = scripted(
        **{
            "IntentAnswer": [
                "this is not json",
                {"explicit_intents": []},
                {"explicit_intents": ["pick a lock"], "implicit_intents": []},
            ]
        }
    )
    out = run(model, max_rounds=1, parse_retries=2)
    assert out["error"] is None and out["stop_reason"] in ("consensus", "budget")
    intent_calls = model.calls_for("IntentAnswer")
    assert len(intent_calls) == 3
    reask = intent_calls[1]["messages"][-1]
    assert isinstance(reask, HumanMessage) and "could not be used" in str(reask.content)
    assert "Invalid JSON" in str(reask.content)
    assert "explicit_intents" in str(intent_calls[2]["messages"][-1].content)
    assert out["usage"]["llm_calls"] == 3 + 1 + 2 + 1


def test_malformed_output_forever_ends_the_sample_with_a_clear_error():
    model = scripted(deliberation=["{not json"])
    out = run(model, max_rounds=3, parse_retries=1)
    assert out["stop_reason"] == "error"
    assert out["error"]["node"] == "deliberator_1"
    assert "no valid DeliberatorAnswer after 2 attempts" in out["error"]["message"]
    assert model.schemas().count("DeliberatorAnswer") == 2
    assert "RefinerAnswer" not in model.schemas()


def test_unknown_policy_id_is_dropped_and_recorded_without_a_reask():
    bad = {"thoughts": [{"text": "x", "policy_ids": ["made_up", "illegal_activity"]}], "response": "r"}
    model = scripted(**{"SeedAnswer": [bad]})
    out = run(model, max_rounds=1)
    assert out["error"] is None
    assert len(model.calls_for("SeedAnswer")) == 1
    assert out["thoughts"][0]["policy_ids"] == ["illegal_activity"]
    assert out["repairs"] == [
        {
            "node": "initializer_seed",
            "rule": "unknown_policy_id",
            "field": "thoughts[0].policy_ids",
            "found": "made_up",
            "action": "dropped the id",
        }
    ]


def test_policies_sit_in_one_system_prefix_shared_by_every_call():
    model = scripted(deliberation=[turn("x"), AGREE])
    run(model, max_rounds=3)
    systems = {str(c["messages"][0].content) for c in model.calls}
    assert len(systems) == 1
    (system,) = systems
    assert "[illegal_activity] Illegal activity" in system and "[helpfulness_respect]" in system


def test_every_call_of_a_sample_extends_the_context_of_the_call_before():
    """Prefix caches reuse only a leading part: each prompt starts with the previous call's context
    (request, intents, thoughts so far), and the parts that change come after it."""
    counter = iter(range(1000))
    model = scripted(deliberation=lambda _messages: turn(f"new point {next(counter)}", response=f"r{next(counter)}"))
    out = run(model, max_rounds=2)
    prompts = [str(c["messages"][-1].content) for c in model.calls]
    assert model.calls[-1]["node"] == "refiner" and len(prompts) == 2 + 2 * 2 + 1
    for earlier, later in itertools.pairwise(prompts):
        lasting = earlier.split("\n\nCurrent response:")[0].split("\n\nTask: ")[0]
        assert later.startswith(lasting)
    assert all(f"{t['id']}. [{t['agent']}" in prompts[-1] for t in out["thoughts"])


def test_custom_policy_file_is_used(tmp_path):
    policy_file = tmp_path / "mine.yaml"
    policy_file.write_text(
        "name: mine\npolicies:\n  - id: no_spoilers\n    title: No spoilers\n    forbids: [revealing endings]\n"
    )
    cites_own_policy = {"thoughts": [{"text": "No endings.", "policy_ids": ["no_spoilers"]}], "response": "r"}
    model = scripted(**{"SeedAnswer": [cites_own_policy]})
    out = run(model, policy_file=str(policy_file))
    system = str(model.calls[0]["messages"][0].content)
    assert "[no_spoilers] No spoilers" in system and "illegal_activity" not in system
    assert out["error"] is None and out["thoughts"][0]["policy_ids"] == ["no_spoilers"]
    assert re.fullmatch(r"[0-9a-f]{12}", out["policy_set"])
    assert out["policy_set"] != run(scripted(), max_rounds=1)["policy_set"]


def test_invalid_policy_file_ends_the_sample_naming_file_and_field(tmp_path):
    policy_file = tmp_path / "broken.yaml"
    policy_file.write_text("name: broken\npolicies:\n  - id: x\n    title: X\n")
    model = scripted()
    out = run(model, policy_file=str(policy_file))
    assert out["stop_reason"] == "error"
    assert str(policy_file) in out["error"]["message"]
    assert "policies.0.forbids" in out["error"]["message"]
    assert model.calls == []


def test_configuration_through_configurable_as_langserve_sends_it():
    counter = iter(range(1000))
    model = scripted(deliberation=lambda _m: turn(f"p{next(counter)}"))
    out = build_graph(2, model=model).invoke({"prompt": "p"}, config={"configurable": {"max_rounds": 1}})
    assert out["rounds"] == 1 and out["stop_reason"] == "budget"


def test_per_role_model_overrides_reach_the_provider():
    seen = []
    model = scripted()

    def provider(role, ctx: Context):
        seen.append((role, ctx.model_for(role)))
        return model

    build_graph(1, model=provider).invoke(
        {"prompt": "p"}, context=Context(model="gen", refiner_model="judge-big", max_rounds=1)
    )
    assert ("initializer", "gen") in seen and ("deliberator", "gen") in seen
    assert ("refiner", "judge-big") in seen


async def test_async_invoke_matches_sync():
    inputs, context = {"prompt": "p", "id": "s1"}, {"max_rounds": 2}
    sync_out = build_graph(2, model=scripted()).invoke(inputs, context=context)
    async_out = await build_graph(2, model=scripted()).ainvoke(inputs, context=context)
    assert async_out == sync_out
    assert async_out["stop_reason"] == "consensus" and async_out["id"] == "s1"
    assert async_out["usage"] == {"llm_calls": 5, "input_tokens": 500, "output_tokens": 50}
