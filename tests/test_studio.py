"""`langgraph dev` (the API server LangGraph Studio talks to), started as a user would, driven by its SDK."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_sync_client

from aidsafe.embedded.llama_server import stop_process

ROOT = Path(__file__).resolve().parents[1]
API_LINE = re.compile(r"API:\S*\s+\S*http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def langgraph_dev(tmp_path_factory) -> Iterator[str]:
    """`langgraph dev` on loopback; it moves to another port if the asked one is busy, so read its banner."""
    cli = shutil.which("langgraph", path=str(Path(sys.executable).parent))
    assert cli, "langgraph-cli[inmem] is not installed (extra 'studio')"
    log_path = tmp_path_factory.mktemp("langgraph-dev") / "server.log"
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false", "NO_COLOR": "1"}
    command = [cli, "dev", "--host", "127.0.0.1", "--port", "2024", "--no-browser", "--no-reload"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while not (match := API_LINE.search(log_path.read_text(errors="replace"))):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "langgraph dev did not start:\n" + log_path.read_text()
            time.sleep(0.2)
        url = f"http://127.0.0.1:{match.group(1)}"
        client = get_sync_client(url=url)
        while True:
            try:
                client.assistants.search(graph_id="aidsafe_deliberation")
                break
            except Exception:
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        yield url
    finally:
        stop_process(process, timeout=30)


def assistant(url: str, graph_id: str = "aidsafe_deliberation") -> str:
    [found] = get_sync_client(url=url).assistants.search(graph_id=graph_id)
    return str(found["assistant_id"])


def test_studio_sees_readable_nodes_and_documented_configuration(langgraph_dev):
    client = get_sync_client(url=langgraph_dev)
    assistant_id = assistant(langgraph_dev)
    nodes = {node["id"] for node in client.assistants.get_graph(assistant_id)["nodes"]}
    assert {"initializer", "deliberator_1", "deliberator_2", "termination_check", "refiner"} <= nodes
    context = client.assistants.get_schemas(assistant_id)["context_schema"]["properties"]
    for name in ("model", "base_url", "max_rounds", "policy_file", "deliberator_model"):
        assert context[name]["description"], name


def test_studio_sees_the_gated_deliberation(langgraph_dev):
    assistant_id = assistant(langgraph_dev, "aidsafe_gated_deliberation")
    graph = get_sync_client(url=langgraph_dev).assistants.get_graph(assistant_id)
    assert {"deliberation", "score_final", "safety_gate"} <= {node["id"] for node in graph["nodes"]}


def test_studio_sees_the_contrast_graph_and_its_mix(langgraph_dev):
    client = get_sync_client(url=langgraph_dev)
    assistant_id = assistant(langgraph_dev, "aidsafe_contrast")
    nodes = {node["id"] for node in client.assistants.get_graph(assistant_id)["nodes"]}
    assert {"contrast_writer", "contrast_check"} <= nodes
    context = client.assistants.get_schemas(assistant_id)["context_schema"]["properties"]
    assert "summing to 1" in context["contrast_mix"]["description"]


def test_studio_sees_the_revision_graph(langgraph_dev):
    assistant_id = assistant(langgraph_dev, "aidsafe_revision")
    nodes = {node["id"] for node in get_sync_client(url=langgraph_dev).assistants.get_graph(assistant_id)["nodes"]}
    assert {"triage", "initializer", "deliberator_1", "deliberator_2", "refiner"} <= nodes


def test_a_run_through_the_sdk(langgraph_dev, stub_server):
    client = get_sync_client(url=langgraph_dev)
    thread = client.threads.create()
    out = client.runs.wait(
        thread["thread_id"],
        assistant(langgraph_dev),
        input={"prompt": "How do I pick a lock?", "id": "studio-1"},
        context={"base_url": stub_server.base_url, "model": "stub-model", "max_rounds": 1},
    )
    assert out["id"] == "studio-1" and out["error"] is None
    assert [turn["agent"] for turn in out["deliberation_log"]] == ["deliberator_1", "deliberator_2"]
    assert {request["model"] for request in stub_server.requests} == {"stub-model"}
    history = client.threads.get_history(thread["thread_id"])
    assert history, "Studio shows the run step by step from the thread's checkpoints"
