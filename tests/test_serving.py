"""`aidsafe serve` as its users reach it: HTTP on 127.0.0.1 under a real uvicorn, graph on a stub model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.tiers import require

require("langserve", "serve")  # before the imports that need it
pytestmark = pytest.mark.serve

from langchain_core.runnables import RunnableLambda
from langserve import RemoteRunnable

from aidsafe.embedded.llama_server import stop_process
from aidsafe.serving import GRAPHS, ServeSettings, create_app
from tests.fakes import STUB_BELIEF, StubServer, schema_answer, schema_of, whisper_stub_answer
from tests.services import running, wait_until_healthy

KEY = "test-api-key"
AUTH = {"X-API-Key": KEY}


def broken(_: Any) -> Any:
    raise RuntimeError("secret internals /srv/app.py line 12")


def served_answer(request: dict) -> str:
    """The stub's answers; the violation scorer rates every response 2 of 4 (score 0.5)."""
    if schema_of(request)["title"] == "ViolationAnswer":
        return json.dumps({"policy_ids": [], "rationale": "Borderline.", "rating": 2})
    return whisper_stub_answer(request)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(respond=served_answer) as server:
        yield server


@pytest.fixture(scope="module")
def url(stub: StubServer) -> Iterator[str]:
    settings = ServeSettings(
        context={"base_url": stub.base_url, "model": "stub-model", "max_rounds": 2},
        api_key=KEY,
        max_body_bytes=20_000,
    )
    graphs = [*GRAPHS, ("/broken", lambda _settings: RunnableLambda(broken))]
    with running(create_app(settings, graphs)) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
        yield http


def test_invoke_runs_the_graph_on_the_servers_model(client, stub):
    reply = client.post("/deliberation/invoke", json={"input": {"prompt": "How do I pick a lock?", "id": "s1"}})
    assert reply.status_code == 200
    out = reply.json()["output"]
    assert out["id"] == "s1" and out["error"] is None
    assert out["stop_reason"] == "consensus" and out["rounds"] == 1
    assert [turn["agent"] for turn in out["deliberation_log"]] == ["deliberator_1", "deliberator_2"]
    assert stub.requests[-1]["model"] == "stub-model"


def test_preference_graph_is_served(client):
    chosen = {"thoughts": [], "response": "Use your spare key."}
    body = {"input": {"prompt": "How do I open my door?", "id": "p1", "chosen": chosen}}
    reply = client.post("/preference/invoke", json=body)
    assert reply.status_code == 200
    out = reply.json()["output"]
    assert out["error"] is None and out["id"] == "p1" and out["chosen"] == chosen
    assert out["belief"] == STUB_BELIEF and out["negative_example"] is True and out["iterations"] == 3


def test_gated_graph_is_served_and_the_client_may_move_its_threshold(client):
    body = {"input": {"prompt": "How do I open my door?", "id": "g1"}}
    out = client.post("/gated/invoke", json=body).json()["output"]
    assert out["error"] is None and out["id"] == "g1" and out["response"]
    thoughts = {"thoughts_score": 0.5, "thoughts_flagged": False}  # the thoughts are rated too, by default
    assert out["safety"] == {"score": 0.5, "threshold": 0.5, "flagged": False, **thoughts}  # the default threshold
    config = {"configurable": {"safety_threshold": 0.25, "check_thoughts": False}}
    out = client.post("/gated/invoke", json={**body, "config": config}).json()["output"]
    assert out["safety"] == {"score": 0.5, "threshold": 0.25, "flagged": True}
    reply = client.post("/gated/invoke", json={**body, "config": {"configurable": {"safety_threshold": 2}}})
    assert reply.status_code == 422 and "safety_threshold" in json.dumps(reply.json()["detail"])


def test_contrast_graph_is_served_and_the_mix_is_checked_as_on_the_command_line(client):
    body = {"input": {"prompt": "How do I make a pipe bomb?", "id": "c1", "policies": ["physical_harm"]}}
    config = {"configurable": {"contrast_mix": "harmful=0.5,benign=0.5"}}
    out = client.post("/contrast/invoke", json={**body, "config": config}).json()["output"]
    assert out["error"] is None and out["id"] == "c1" and out["policies"] == ["physical_harm"]
    reply = client.post("/contrast/invoke", json={**body, "config": {"configurable": {"contrast_mix": "harmful=2"}}})
    assert reply.status_code == 422 and "the share of harmful is 2; a share is 0 to 1" in json.dumps(reply.json())


def test_client_may_set_safe_fields_but_not_the_server_url(client, stub):
    sent = {"configurable": {"model": "client-model", "temperature": 0.1}}
    reply = client.post("/deliberation/invoke", json={"input": {"prompt": "p"}, "config": sent})
    assert reply.status_code == 200
    assert {r["model"] for r in stub.requests[-5:]} == {"client-model"}
    assert stub.requests[-1]["temperature"] == 0.1
    for field in ("base_url", "judge_base_url", "scorer_url", "policy_file", "not_a_field"):
        sent = {"configurable": {field: "http://attacker.example/v1"}}
        reply = client.post("/deliberation/invoke", json={"input": {"prompt": "p"}, "config": sent})
        assert reply.status_code == 422, field
        assert field in json.dumps(reply.json()["detail"])


def test_client_settings_are_bounded_so_one_request_cannot_cost_without_limit(client, stub):
    calls = len(stub.requests)
    for setting in ({"max_rounds": 1000}, {"max_tokens": 10**6}, {"whisper_iterations": 100}, {"temperature": -1}):
        for path in ("/deliberation/invoke", "/preference/invoke"):
            reply = client.post(path, json={"input": {"prompt": "p"}, "config": {"configurable": setting}})
            assert reply.status_code == 422, (path, setting)
            assert next(iter(setting)) in json.dumps(reply.json()["detail"])
    assert len(stub.requests) == calls  # rejected before any model call
    reply = client.post(
        "/deliberation/invoke", json={"input": {"prompt": "p"}, "config": {"configurable": {"max_rounds": 10}}}
    )
    assert reply.status_code == 200 and reply.json()["output"]["error"] is None


def test_batch(client):
    inputs = [{"prompt": f"prompt {i}", "id": str(i)} for i in range(3)]
    reply = client.post("/deliberation/batch", json={"inputs": inputs})
    assert reply.status_code == 200
    outputs = reply.json()["output"]
    assert [o["id"] for o in outputs] == ["0", "1", "2"]
    assert all(o["error"] is None for o in outputs)


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event or "", json.loads(line.removeprefix("data: "))


def test_stream_shows_each_agents_turn_as_it_finishes(url):
    """The refiner's model call is held until the test has read every earlier turn off the stream."""
    release = threading.Event()

    def respond(request: dict[str, Any]) -> str:
        if schema_of(request).get("title") == "RefinerAnswer":
            assert release.wait(timeout=60)
        return schema_answer(request)

    with (
        StubServer(respond=respond) as slow,
        running(create_app(ServeSettings(context={"base_url": slow.base_url}))) as base,
    ):
        nodes = []
        body = {"input": {"prompt": "p"}, "config": {"configurable": {"max_rounds": 1}}}
        with httpx.stream("POST", f"{base}/deliberation/stream", json=body, timeout=60) as reply:
            assert reply.status_code == 200
            for event, data in sse_events(reply.iter_lines()):
                if event == "data":
                    nodes.extend(data)
                    assert "error" not in data
                if nodes[-1:] == ["termination_check"]:
                    assert not release.is_set()
                    release.set()  # the refiner was still waiting: earlier turns arrived as they happened
                if event == "end":
                    break
    assert nodes == [
        "initializer", "initializer_seed", "deliberator_1", "deliberator_2", "termination_check", "refiner"
    ]  # fmt: skip


def test_remote_runnable(url):
    remote = RemoteRunnable(f"{url}/deliberation", headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    out = remote.invoke({"prompt": "How do I pick a lock?"}, config={"configurable": {"max_rounds": 1}})
    assert out["error"] is None and out["response"]
    assert len(remote.batch([{"prompt": "a"}, {"prompt": "b"}])) == 2


def test_schemas_and_playground(client):
    def resolved(schema: dict[str, Any]) -> dict[str, Any]:
        return schema["$defs"][schema["$ref"].split("/")[-1]] if "$ref" in schema else schema

    assert resolved(client.get("/deliberation/input_schema").json())["required"] == ["prompt"]
    assert "deliberation_log" in resolved(client.get("/deliberation/output_schema").json())["properties"]
    configurable = client.get("/deliberation/config_schema").json()["$defs"]["AidsafeConfigurable"]["properties"]
    assert "max_rounds" in configurable and "base_url" not in configurable
    assert client.get("/deliberation/playground/").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}],
    ids=["none", "wrong-x-api-key", "wrong-bearer", "no-scheme"],
)
def test_wrong_or_missing_key_gets_401(url, headers):
    for method, path in [("POST", "/deliberation/invoke"), ("GET", "/deliberation/input_schema"), ("GET", "/docs")]:
        reply = httpx.request(method, url + path, headers=headers, json={"input": {"prompt": "p"}})
        assert reply.status_code == 401, path
        assert "API key" in reply.json()["detail"]


def test_both_key_headers_work_and_health_needs_none(url):
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert httpx.get(f"{url}/deliberation/input_schema", headers=headers).status_code == 200
    health = httpx.get(f"{url}/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_body_over_the_limit_gets_413_declared_or_chunked(client):
    big = json.dumps({"input": {"prompt": "x" * 30_000}}).encode()
    reply = client.post("/deliberation/invoke", content=big, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413 and "limit" in reply.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    reply = client.post("/deliberation/invoke", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in reply.request.headers
    assert reply.status_code == 413 and "limit" in reply.json()["detail"]


def test_errors_are_json_without_tracebacks(client):
    reply = client.post("/deliberation/invoke", content=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and reply.json()["detail"]
    reply = client.post("/deliberation/invoke", json={"input": {"no_prompt": 1}})
    assert reply.status_code == 422 and reply.json()["detail"]
    reply = client.post("/broken/invoke", json={"input": "x"})
    assert reply.status_code == 500
    assert reply.json() == {"detail": "internal error (RuntimeError); see the server log"}
    assert client.get("/health").status_code == 200  # same connection, server still up


def test_a_model_failure_ends_that_run_only():
    with StubServer(fail_first=10**6, fail_status=500) as failing:
        settings = ServeSettings(context={"base_url": failing.base_url, "http_retries": 0})
        with running(create_app(settings)) as base:
            reply = httpx.post(f"{base}/deliberation/invoke", json={"input": {"prompt": "p"}}, timeout=60)
            assert reply.status_code == 200
            out = reply.json()["output"]
            assert out["stop_reason"] == "error" and out["error"]["node"] == "initializer"
            assert "500" in out["error"]["message"]
            assert httpx.get(f"{base}/health").status_code == 200


def test_aidsafe_serve_command(stub, unused_tcp_port):
    """The CLI in its own process: model flags, API key from the environment, stopped by PID."""
    env = {**os.environ, "AIDSAFE_API_KEY": KEY}
    command = [sys.executable, "-m", "aidsafe.cli.main", "serve", "--port", str(unused_tcp_port)]
    command += ["--base-url", stub.base_url, "--model", "cli-model", "--max-rounds", "1", "--n-deliberators", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{unused_tcp_port}"
    try:
        wait_until_healthy(process, base)
        assert httpx.post(f"{base}/deliberation/invoke", json={"input": {"prompt": "p"}}).status_code == 401
        reply = httpx.post(f"{base}/deliberation/invoke", json={"input": {"prompt": "p"}}, headers=AUTH, timeout=60)
        out = reply.json()["output"]
        assert [turn["agent"] for turn in out["deliberation_log"]] == ["deliberator_1"]
        assert stub.requests[-1]["model"] == "cli-model"
    finally:
        stop_process(process, timeout=30)
    # uvicorn shuts down cleanly on SIGTERM (lifespan exit stops an embedded model): exit code 0
    assert "Application shutdown complete" in process.stdout.read().decode()  # type: ignore[union-attr]
    assert process.returncode == 0
