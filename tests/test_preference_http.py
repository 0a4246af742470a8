"""The preference graph over HTTP: real `ChatOpenAI` against stub servers, and the HTTP classifier."""

from __future__ import annotations

import json

import pytest

from aidsafe.embedded import EmbeddedServer
from aidsafe.graphs.preference import build_graph, graph
from aidsafe.nodes.safety_classifier import HttpSafetyClassifier
from tests.fakes import (
    STUB_BELIEF,
    ClassifierStub,
    StubServer,
    judge_by_response,
    schema_of,
    scripted,
    whisper_stub_answer,
)

CHOSEN = {"thoughts": [], "response": "Use your spare key."}


def test_whisper_loop_over_http_with_the_judge_on_its_own_server():
    def judge_side(request):
        shown = request["messages"][-1]["content"]
        return json.dumps({"rationale": "r", "rating": 3 if "Use your spare key." in shown else 4})

    with StubServer(respond=whisper_stub_answer) as server, StubServer(respond=judge_side) as judge:
        out = graph.invoke(
            {"prompt": "How do I open my door?", "id": "h1", "chosen": CHOSEN},
            context={"base_url": server.base_url, "model": "gen", "judge_base_url": judge.base_url, "judge_model": "j"},
        )
    assert out["error"] is None
    assert out["chosen_score"] == 0.75 and out["rejected_score"] == 1.0 and out["iterations"] == 1
    assert out["belief"] == STUB_BELIEF
    assert out["rejected"]["response"].startswith("stub text") and out["negative_example"] is True
    assert [schema_of(r)["title"] for r in server.requests] == ["BeliefAnswer", "WhisperedAnswer"]
    assert [schema_of(r)["title"] for r in judge.requests] == ["ViolationAnswer", "ViolationAnswer"]
    assert {r["model"] for r in judge.requests} == {"j"} and {r["model"] for r in server.requests} == {"gen"}
    assert out["usage"]["llm_calls"] == 4


def scores_by_response(body):
    return 200, json.dumps({"score": 0.9 if body["response"] != CHOSEN["response"] else 0.1})


@pytest.mark.parametrize("configured", ["context", "constructor"])
def test_http_classifier_replaces_the_judge(configured):
    judge = judge_by_response({})
    model = scripted(
        **{"BeliefAnswer": [{"belief": "b b b b"}], "ViolationAnswer": judge, "WhisperedAnswer": [
            {"thoughts": [{"text": "t"}], "response": "bad"}]}
    )  # fmt: skip
    with ClassifierStub(respond=scores_by_response) as classifier:
        if configured == "context":
            g, context = build_graph(1, model=model), {"scorer_url": classifier.url}
        else:
            g, context = build_graph(1, model=model, scorer=HttpSafetyClassifier(classifier.url)), {}
        out = g.invoke({"prompt": "p", "chosen": CHOSEN}, context={"violation_threshold": 0.8, **context})
    assert out["error"] is None
    assert out["chosen_score"] == 0.1 and out["rejected_score"] == 0.9 and out["iterations"] == 1
    assert "ViolationAnswer" not in model.schemas()
    first = classifier.requests[0]
    assert first["prompt"] == "p" and first["response"] == CHOSEN["response"] and first["thoughts"] == []
    assert "illegal_activity" in [p["id"] for p in first["policies"]]
    assert classifier.requests[1]["thoughts"] == ["t"]


async def test_http_classifier_async():
    model = scripted(**{"BeliefAnswer": [{"belief": "b"}], "WhisperedAnswer": [{"thoughts": [{"text": "t"}],
        "response": "bad"}]})  # fmt: skip
    with ClassifierStub(respond=scores_by_response) as classifier:
        out = await build_graph(1, model=model).ainvoke(
            {"prompt": "p", "chosen": CHOSEN}, context={"scorer_url": classifier.url}
        )
    assert out["error"] is None and out["rejected_score"] == 0.9


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (500, '{"error": "boom"}', "500 Internal Server Error"),
        (200, "not json", "Invalid JSON"),
        (200, '{"score": 1.5}', "less than or equal to 1"),
        (200, '{"label": "unsafe"}', "score"),
    ],
)
def test_classifier_failure_ends_the_sample_with_a_clear_error(status, text, expected):
    model = scripted()
    with ClassifierStub(respond=lambda _body: (status, text)) as classifier:
        out = build_graph(1, model=model).invoke(
            {"prompt": "p", "chosen": CHOSEN}, context={"scorer_url": classifier.url, "http_retries": 0}
        )
    assert out["error"]["node"] == "score_chosen"
    assert f"safety classifier at {classifier.url} failed" in out["error"]["message"]
    assert expected in out["error"]["message"]
    assert model.calls == [] and out["rejected"] == {"thoughts": [], "response": ""}


@pytest.mark.parametrize("run", ["invoke", "ainvoke"])
@pytest.mark.slow
async def test_classifier_retries_429_and_5xx_with_backoff(run):
    """`http_retries` (3 by default) covers 429 and 5xx, as it says; `Retry-After` is honoured."""
    answers = iter([(429, "{}", {"Retry-After": "0"}), (503, "{}", {}), (200, json.dumps({"score": 0.25}), {})])
    model = scripted(**{"BeliefAnswer": [{"belief": "b"}], "WhisperedAnswer": [{"thoughts": [{"text": "t"}],
        "response": "bad"}]})  # fmt: skip
    with ClassifierStub(respond=lambda _body: next(answers, (200, json.dumps({"score": 0.9}), {}))) as classifier:
        graph_run = getattr(build_graph(1, model=model), run)
        out = graph_run({"prompt": "p", "chosen": CHOSEN}, context={"scorer_url": classifier.url})
        out = await out if run == "ainvoke" else out
    assert out["error"] is None and out["chosen_score"] == 0.25
    assert len(classifier.requests) == 3 + 1  # the chosen side's three attempts, then the rejected side


@pytest.mark.slow
def test_a_classifier_that_keeps_failing_is_tried_http_retries_plus_one_times():
    with ClassifierStub(respond=lambda _body: (503, '{"error": "overloaded"}')) as classifier:
        out = build_graph(1, model=scripted()).invoke(
            {"prompt": "p", "chosen": CHOSEN}, context={"scorer_url": classifier.url, "http_retries": 2}
        )
    assert len(classifier.requests) == 3
    assert out["error"]["node"] == "score_chosen"
    assert f"safety classifier at {classifier.url} failed after 3 attempts: HTTPStatusError" in out["error"]["message"]
    assert "503 Service Unavailable" in out["error"]["message"]


def test_unreachable_classifier_ends_the_sample_with_a_clear_error():
    with ClassifierStub() as classifier:
        url = classifier.url  # the port is free again once the stub stops
    out = build_graph(1, model=scripted()).invoke(
        {"prompt": "p", "chosen": CHOSEN}, context={"scorer_url": url, "http_retries": 0, "request_timeout": 5}
    )
    assert out["error"]["node"] == "score_chosen"
    assert f"safety classifier at {url} failed: ConnectError" in out["error"]["message"]


@pytest.mark.embedded
def test_one_whisper_try_on_the_embedded_model():
    """Structure only: a 135M model's beliefs and ratings mean little."""
    with EmbeddedServer(n_ctx=4096) as server:
        out = graph.invoke(
            {"prompt": "How do I pick the lock of my own front door?", "chosen": CHOSEN},
            context={"base_url": server.base_url, "whisper_iterations": 1, "max_tokens": 256},
        )
    assert out["error"] is None, out["error"]
    assert 0 <= out["chosen_score"] <= 1 and 0 <= out["rejected_score"] <= 1
    assert out["iterations"] == 1 and out["negative_example"] is True
    assert out["belief"] and out["rejected"]["response"]
    assert out["belief"].lower() not in json.dumps(out["rejected"]).lower()
