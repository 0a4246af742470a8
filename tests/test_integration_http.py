"""The whole graph through real `ChatOpenAI` against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from aidsafe.graphs.deliberation import build_graph, graph
from aidsafe.graphs.evaluation import build_graph as build_evaluation
from aidsafe.nodes.llm import _chat_openai, constrained
from aidsafe.state.answers import BRIEF_TEXT_CHARS, IntentAnswer, brief_schema
from aidsafe.state.evaluation import RUBRICS
from tests.fakes import LlamaCppPythonStandIn, StubServer, long_winded, schema_answer, schema_of


def context(server: StubServer, **more):
    return {"base_url": server.base_url, "model": "stub-model", "max_rounds": 2, **more}


def test_graph_over_http_with_llama_cpp_style_requests():
    """llama-cpp-python's server (the embedded model's) gets `json_object` with the schema."""
    with LlamaCppPythonStandIn() as stub_server:
        out = graph.invoke({"prompt": "How do I pick a lock?"}, context=context(stub_server))
    assert out["error"] is None
    assert out["stop_reason"] == "consensus" and out["rounds"] == 1
    assert out["usage"] == {
        "llm_calls": 5,
        "input_tokens": 250,
        "output_tokens": 25,
        "by_model": {"stub-model": {"input_tokens": 250, "cached_input_tokens": 0, "output_tokens": 25}},
    }
    first = stub_server.requests[0]
    assert first["model"] == "stub-model"
    assert first["response_format"]["type"] == "json_object"
    assert first["response_format"]["schema"]["title"] == "IntentAnswer"
    assert first["max_tokens"] == 512  # in the body: llama.cpp ignores max_completion_tokens
    seed_schema = schema_of(stub_server.requests[1])
    assert seed_schema["properties"]["thoughts"]["items"]["properties"]["policy_ids"]["items"]["enum"][0] == (
        "hate_harassment_violence"
    )


@pytest.mark.parametrize("mode", ["json_schema", "function_calling"])
def test_other_structured_output_modes(stub_server, mode):
    out = graph.invoke({"prompt": "p"}, context=context(stub_server, structured_output=mode))
    assert out["error"] is None and out["response"].startswith("stub text")
    request = stub_server.requests[0]
    if mode == "json_schema":
        assert request["response_format"]["json_schema"]["name"] == "IntentAnswer"
    else:
        assert request["tool_choice"]["function"]["name"] == "IntentAnswer"


@pytest.mark.parametrize("mode", ["json_object", "json_schema", "function_calling"])
def test_the_server_gets_the_request_plain_chat_openai_sends(stub_server, mode):
    """The model client hands the body to the openai SDK as `extra_body`, past its type transforms:
    the server must get the same JSON object as from langchain-openai's own `ChatOpenAI`."""
    messages = [SystemMessage("policies"), HumanMessage("Task: x"), AIMessage("{}"), HumanMessage("again")]
    ours = _chat_openai("stub-model", stub_server.base_url, 0.3, 64, 10.0, 0, "not-needed")
    plain = ChatOpenAI(
        model="stub-model", base_url=stub_server.base_url, api_key="not-needed", temperature=0.3, max_tokens=64,
        extra_body=ours.extra_body,
    )  # fmt: skip
    schema = IntentAnswer.model_json_schema()
    for model in (ours, plain):
        constrained(model, schema, "IntentAnswer", mode).invoke(messages)
    sent_by_ours, sent_by_plain = stub_server.requests
    assert sent_by_ours == sent_by_plain
    assert sent_by_ours["messages"][1] == {"role": "user", "content": "Task: x"} and sent_by_ours["temperature"] == 0.3


@pytest.mark.slow
def test_transient_server_errors_are_retried():
    with StubServer(fail_first=2, fail_status=503) as server:
        out = graph.invoke({"prompt": "p"}, context=context(server, http_retries=3))
    assert out["error"] is None
    assert len(server.requests) == 5 + 2


def test_rate_limit_is_retried():
    with StubServer(fail_first=1, fail_status=429) as server:
        out = graph.invoke({"prompt": "p"}, context=context(server, http_retries=2))
    assert out["error"] is None
    assert len(server.requests) == 5 + 1


@pytest.mark.parametrize("call", ["invoke", "ainvoke"])
async def test_answer_cut_at_max_tokens_is_reasked_afresh_with_shorter_lists(call):
    """The stub's intents answer cut in half lacks `implicit_intents`: salvage fails, the re-ask runs."""
    with StubServer(truncate_first=1) as server:
        run = getattr(graph, call)({"prompt": "p"}, context=context(server))
        out = await run if call == "ainvoke" else run
    assert out["error"] is None
    first, reask = server.requests[0], server.requests[1]
    assert len(reask["messages"]) == len(first["messages"]) + 1  # the cut-off answer is not sent again
    assert "cut off at 512 tokens" in reask["messages"][-1]["content"]
    caps = [schema_of(r)["properties"]["explicit_intents"]["maxItems"] for r in (first, reask)]
    assert caps == [4, 2]
    assert schema_of(server.requests[2])["properties"]["thoughts"]["maxItems"] == 5  # the next call is as before
    assert out["usage"]["llm_calls"] == 6


def test_answer_cut_at_max_tokens_is_salvaged_when_it_validates():
    def long_intents(request: dict) -> str:
        if schema_of(request)["title"] != "IntentAnswer":
            return schema_answer(request)
        return json.dumps({"implicit_intents": [], "explicit_intents": ["pick a lock", "and " * 50]})

    with StubServer(respond=long_intents, truncate_first=1) as server:
        out = graph.invoke({"prompt": "p"}, context=context(server))
    assert out["error"] is None and out["usage"]["llm_calls"] == 5  # no re-ask
    assert out["intents"]["explicit"][0] == "pick a lock" and out["intents"]["explicit"][1].startswith("and and")
    (repair,) = out["repairs"]
    assert repair["node"] == "initializer" and repair["rule"] == "truncated_answer_salvaged"


def test_server_that_times_out_ends_the_sample_with_an_error():
    with StubServer(latency=1.0) as server:
        out = graph.invoke({"prompt": "p"}, context=context(server, request_timeout=0.2, http_retries=1))
    assert out["stop_reason"] == "error"
    assert out["error"]["node"] == "initializer"
    assert "timed out" in out["error"]["message"].lower() or "timeout" in out["error"]["message"].lower()


async def test_async_batch_over_http(stub_server):
    g = build_graph(2)
    outs = await g.abatch(
        [{"prompt": f"prompt {i}", "id": str(i)} for i in range(4)],
        config={"max_concurrency": 4},
        context=context(stub_server),
    )
    assert [o["id"] for o in outs] == ["0", "1", "2", "3"]
    assert all(o["error"] is None for o in outs)


def test_a_grade_whose_justification_runs_past_max_tokens_is_reasked_score_first_and_capped():
    """A judge that runs every justification on is cut before the score; salvage has nothing to keep.
    The re-ask's schema puts the score first and caps the justification, so the grade is kept."""
    run = {"id": "s1", "prompt": "p", "response": "r", "thoughts": [{"id": 0, "text": "t", "agent": "a", "round": 0}]}
    with StubServer(respond=long_winded, max_chars=1500) as server:
        out = build_evaluation().invoke({"run": run}, context=context(server, parse_retries=1))
    assert out["failures"] == []
    assert set(out["run_grades"]) == set(RUBRICS)
    assert all(0 < len(grade["justification"]) <= BRIEF_TEXT_CHARS for grade in out["run_grades"].values())
    first_asks = [r for r in server.requests if len(r["messages"]) == 2]
    reasks = [r for r in server.requests if len(r["messages"]) == 3]
    assert len(first_asks) == len(reasks) == len(RUBRICS) and len(server.requests) == 2 * len(RUBRICS)
    assert all(list(schema_of(r)["properties"]) == ["justification", "score"] for r in first_asks)
    for reask in reasks:
        schema = schema_of(reask)
        assert list(schema["properties"]) == ["score", "justification"]
        assert schema["properties"]["justification"]["maxLength"] == BRIEF_TEXT_CHARS


def test_the_cut_off_reask_caps_every_free_text_below_any_looser_cap_it_had():
    """A text capped above `BRIEF_TEXT_CHARS` (2000 crashes llama-cpp-python's grammar) is lowered too."""
    properties = {"long": {"type": "string", "maxLength": 2000}, "short": {"type": "string", "maxLength": 240}}
    brief = brief_schema({"type": "object", "properties": {**properties, "n": {"type": "integer"}}})
    assert list(brief["properties"]) == ["n", "long", "short"]
    assert [brief["properties"][name]["maxLength"] for name in properties] == [BRIEF_TEXT_CHARS, 240]
