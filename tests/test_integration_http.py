"""The whole graph through real `ChatOpenAI` against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import pytest

from aidsafe.graphs.deliberation import build_graph, graph
from tests.fakes import StubServer, schema_of


def context(server: StubServer, **more):
    return {"base_url": server.base_url, "model": "stub-model", "max_rounds": 2, **more}


def test_graph_over_http_with_llama_cpp_style_requests(stub_server):
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
    assert seed_schema["$defs"]["ThoughtDraft"]["properties"]["policy_ids"]["items"]["enum"][0] == (
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


def test_transient_server_errors_are_retried():
    with StubServer(fail_first=2, fail_status=503) as server:
        out = graph.invoke({"prompt": "p"}, context=context(server, http_retries=3))
    assert out["error"] is None
    assert len(server.requests) == 5 + 2


def test_rate_limit_is_retried():
    with StubServer(fail_first=1, fail_status=429) as server:
        out = graph.invoke({"prompt": "p"}, context=context(server, http_retries=2))
    assert out["error"] is None


def test_answer_cut_at_max_tokens_is_reasked():
    with StubServer(truncate_first=1) as server:
        out = graph.invoke({"prompt": "p"}, context=context(server))
    assert out["error"] is None
    reask = server.requests[1]["messages"][-1]["content"]
    assert "cut off at 512 tokens" in reask
    assert out["usage"]["llm_calls"] == 6


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
