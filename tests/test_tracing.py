"""LangSmith tracing, captured offline: what a run uploads, and that nothing leaves when tracing is off."""

from __future__ import annotations

import json
import socket
from typing import Any
from unittest import mock

import langsmith
import pytest
import requests
from langchain_core.tracers.langchain import wait_for_all_tracers

from aidsafe.graphs.deliberation import build_graph
from aidsafe.policies import load_policies

SECRET = "sk-sentinel-3f9c2a7e-never-in-traces"


@pytest.fixture
def secret_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AIDSAFE_JUDGE_API_KEY", SECRET)


def uploaded_runs(session: mock.MagicMock) -> tuple[list[dict[str, Any]], str]:
    """Runs as posted and patched, merged by id, and every byte sent, for the secret check."""
    runs: dict[str, dict[str, Any]] = {}
    sent = []
    for call in session.request.call_args_list:
        body = call.kwargs.get("data") or b""
        sent.append(body.decode() if isinstance(body, bytes) else str(body))
        sent.append(json.dumps(call.kwargs.get("headers") or {}))
        if body and "/runs" in call.args[1]:
            run = json.loads(body)
            runs.setdefault(run.get("id") or call.args[1].rsplit("/", 1)[-1], {}).update(run)
    return list(runs.values()), "\n".join(sent)


def test_one_trace_per_run_with_roles_metadata_and_no_secrets(stub_server, secret_key):
    session = mock.MagicMock(spec=requests.Session)
    client = langsmith.Client(
        api_url="http://langsmith.invalid", api_key="ls-test", session=session, auto_batch_tracing=False
    )
    graph = build_graph(2)
    with langsmith.tracing_context(enabled=True, client=client, project_name="aidsafe-test"):
        out = graph.invoke(
            {"prompt": "How do I pick a lock?", "id": "sample-7"},
            context={"base_url": stub_server.base_url, "model": "stub-model", "max_rounds": 1},
        )
    wait_for_all_tracers()
    assert out["error"] is None
    runs, everything_sent = uploaded_runs(session)

    assert SECRET not in everything_sent
    roots = [r for r in runs if not r.get("parent_run_id")]
    assert [r["name"] for r in roots] == ["aidsafe_deliberation"]
    assert {r["trace_id"] for r in runs} == {roots[0]["id"]}

    def metadata(run: dict[str, Any]) -> dict[str, Any]:
        return run.get("extra", {}).get("metadata", {})

    names = {r["name"] for r in runs}
    assert {"initializer", "deliberator_1", "deliberator_2", "termination_check", "refiner"} <= names
    policy_hash = load_policies(None).hash
    llm_runs = [r for r in runs if r["run_type"] == "llm"]
    assert len(llm_runs) == 5
    for run in llm_runs:
        meta = metadata(run)
        role = meta["agent_role"]
        assert f"role:{role}" in run["tags"]
        assert meta["sample_id"] == "sample-7"
        assert meta["model"] == "stub-model"
        assert meta["policy_set"] == policy_hash
        assert run["extra"]["invocation_params"]["model_name"] == "stub-model"
        if role == "deliberator":
            assert meta["round"] == 1 and meta["agent_index"] in (1, 2)
    deliberators = [r for r in runs if r["name"] == "deliberator_2" and "role:deliberator" in r.get("tags", [])]
    assert deliberators and metadata(deliberators[0])["agent_index"] == 2
    assert metadata(deliberators[0])["round"] == 1


def test_tracing_off_sends_nothing_anywhere(stub_server, secret_key, monkeypatch):
    """With tracing not enabled (even with a LangSmith key present), only the model server is contacted."""
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGSMITH_API_KEY", "ls-key-present")
    connected: list[Any] = []
    real_connect = socket.socket.connect

    def recording_connect(sock: socket.socket, address: Any) -> Any:
        connected.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    with mock.patch.object(requests.Session, "request", side_effect=AssertionError("no HTTP via requests")) as sent:
        out = build_graph(2).invoke(
            {"prompt": "p", "id": "s"}, context={"base_url": stub_server.base_url, "max_rounds": 1}
        )
        wait_for_all_tracers()
    assert out["error"] is None
    assert not sent.called
    stub_port = int(stub_server.base_url.rsplit(":", 1)[1].split("/")[0])
    assert connected and {tuple(address[:2]) for address in connected} == {("127.0.0.1", stub_port)}


@pytest.mark.serve
def test_langserve_runs_keep_the_graphs_name(stub_server):
    """LangServe names root runs after the route ('/deliberation'); served graphs keep their own."""
    from langchain_core.tracers.base import BaseTracer

    from aidsafe.serving.app import CLIENT_FIELDS, client_config_model, served

    class Recorder(BaseTracer):
        def __init__(self) -> None:
            super().__init__()
            self.roots: list[Any] = []

        def _persist_run(self, run: Any) -> None:
            self.roots.append(run)

    recorder = Recorder()
    runnable = served(build_graph(1), client_config_model(CLIENT_FIELDS))
    config = {"run_name": "/deliberation", "callbacks": [recorder], "configurable": {"base_url": stub_server.base_url}}
    runnable.invoke({"prompt": "p"}, config=config)
    assert [root.name for root in recorder.roots] == ["aidsafe_deliberation"]
