"""`aidsafe generate` end to end against the OpenAI-compatible stub on 127.0.0.1: records, resume
after a kill, failed samples, summary, and one run on the real embedded model."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.generate import generate_job
from aidsafe.batch.inputs import read_samples
from aidsafe.cli.main import main
from aidsafe.graphs.deliberation import build_graph
from aidsafe.state.records import ErrorRecord, GenerateRecord
from tests.fakes import ROOT, StubServer, generate, prompts, read_jsonl, schema_answer, schema_of, scripted, write_jsonl


def test_generate_writes_one_complete_record_per_prompt(tmp_path, stub_server, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", [*prompts(3), {"prompt": "no id here", "category": "benign"}])
    out = tmp_path / "out.jsonl"
    assert generate(stub_server, str(inputs), "-o", str(out), "--max-rounds", "2", "--rpm", "6000") == 0
    records = [GenerateRecord.model_validate(r) for r in read_jsonl(out)]
    assert len(records) == 4 and {r.id for r in records} >= {"s0", "s1", "s2"}
    hashed = next(r for r in records if r.prompt == "no id here")
    assert len(hashed.id) == 16 and hashed.metadata == {"category": "benign"}
    record = next(r for r in records if r.id == "s0")
    assert record.model == "stub-model" and record.stop_reason == "consensus" and len(record.policy_set) == 12
    assert record.usage == {
        "llm_calls": 5,
        "input_tokens": 250,
        "output_tokens": 25,
        "by_model": {"stub-model": {"input_tokens": 250, "cached_input_tokens": 0, "output_tokens": 25}},
    }
    assert set(read_jsonl(out)[0]) == {
        "id", "prompt", "intents", "thoughts", "response", "deliberation_log", "removed_thoughts",
        "rounds", "stop_reason", "model", "policy_set", "repairs", "refusals", "usage", "metadata", "settings",
    }  # fmt: skip
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["done"] == 4 and summary["failed"] == 0 and summary["llm_calls"] == 20
    assert summary["input_tokens"] == 1000 and summary["output_tokens"] == 100
    assert not (tmp_path / "out.checkpoints.sqlite").exists()  # nothing left to resume
    printed = capsys.readouterr().out
    assert "done 4, failed 0" in printed and str(out) in printed


@pytest.mark.slow
def test_high_concurrency_spreads_over_worker_processes_unless_told(tmp_path, stub_server):
    """One worker per 32 samples in flight, at most one per core; `--workers` overrides it."""
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(6))
    for run, (flags, workers) in enumerate([([], min(os.cpu_count() or 1, 2)), (["--workers", "1"], 1)]):
        out = tmp_path / f"out{run}.jsonl"
        assert generate(stub_server, str(inputs), "-o", str(out), "--concurrency", "64", *flags) == 0
        summary = json.loads(out.with_suffix(".summary.json").read_text())
        assert (summary["workers"], summary["concurrency"], summary["done"]) == (workers, 64, 6)
        assert not list(tmp_path.glob(f"out{run}.checkpoints*"))


def test_baseline_flag_writes_the_same_record_shape_from_one_call(tmp_path, stub_server):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(2))
    out = tmp_path / "base.jsonl"
    assert generate(stub_server, str(inputs), "-o", str(out), "--baseline") == 0
    records = [GenerateRecord.model_validate(r) for r in read_jsonl(out)]
    assert [r.stop_reason for r in records] == ["baseline", "baseline"]
    assert all(r.usage["llm_calls"] == 1 and r.thoughts and r.deliberation_log == [] for r in records)
    assert len(stub_server.requests) == 2
    assert {schema_of(r)["title"] for r in stub_server.requests} == {"SeedAnswer"}


def test_rerun_skips_finished_ids_and_the_same_id_is_never_written_twice(tmp_path, stub_server):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    out = tmp_path / "out.jsonl"
    assert generate(stub_server, str(inputs), "-o", str(out), "--limit", "2") == 0
    calls_first = len(stub_server.requests)
    assert generate(stub_server, str(inputs), "-o", str(out)) == 0
    assert sorted(r["id"] for r in read_jsonl(out)) == ["s0", "s1", "s2"]
    assert len(stub_server.requests) - calls_first == 5  # only s2 ran
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["done"], summary["skipped"]) == (1, 2)


def fails_on(marker: str):
    def respond(request: dict) -> str:
        return "not json at all" if marker in json.dumps(request) else schema_answer(request)

    return respond


def test_failed_sample_goes_to_errors_file_and_is_retried_by_a_rerun(tmp_path):
    inputs = write_jsonl(tmp_path / "in.jsonl", [*prompts(2), {"id": "bad", "prompt": "FAILME please"}])
    out = tmp_path / "out.jsonl"
    with StubServer(respond=fails_on("FAILME")) as server:
        assert generate(server, str(inputs), "-o", str(out), "--parse-retries", "0") == 1
    assert sorted(r["id"] for r in read_jsonl(out)) == ["s0", "s1"]
    (error,) = [ErrorRecord.model_validate(e) for e in read_jsonl(tmp_path / "out.errors.jsonl")]
    assert error.id == "bad" and error.prompt == "FAILME please"
    assert error.error["node"] == "initializer" and "IntentAnswer" in error.error["message"]
    with StubServer() as server:
        assert generate(server, str(inputs), "-o", str(out)) == 0
        assert len(server.requests) == 5
    assert sorted(r["id"] for r in read_jsonl(out)) == ["bad", "s0", "s1"]
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []  # the errors file describes the latest run


def child_pids(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_until_gone(pids: list[int]) -> None:
    """Until each process has exited (a zombie counts as gone): it can no longer call the server."""
    deadline = time.monotonic() + 60
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        while time.monotonic() < deadline and stat.exists():
            with contextlib.suppress(OSError):
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.02)


def run_until_killed(command: list[str], out: Path, at_least: int) -> None:
    """kill -9 the driver once `at_least` records are out, and return when its worker processes
    have left too: calls they still had in flight must not count as the re-run's."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and out.read_text().count("\n") >= at_least:
                break
            time.sleep(0.02)
        assert process.poll() is None, f"finished before the kill: {process.stderr.read().decode()[-2000:]}"
        workers = child_pids(process.pid)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        wait_until_gone(workers)


def checkpointed_ids(checkpoints: Path) -> set[str]:
    """Ids of the samples whose checkpoint thread in this shard file has state, as the graph reads it."""
    if not checkpoints.exists():
        return set()
    with contextlib.closing(sqlite3.connect(checkpoints)) as db:
        saver = SqliteSaver(db)
        graph = build_graph(checkpointer=saver)
        threads = {c.config["configurable"]["thread_id"] for c in saver.list(None)}
        states = [graph.get_state({"configurable": {"thread_id": thread}}).values for thread in threads]
    return {state["id"] for state in states if state}


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "rerun_workers"), [(1, 1), (2, 2), (2, 1)])
def test_resume_after_kill_loses_nothing_duplicates_nothing_recomputes_nothing(
    tmp_path, capsys, workers, rerun_workers
):
    rows = prompts(40)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with StubServer(latency=0.05) as server:
        command = [
            sys.executable, "-m", "aidsafe.cli.main", "generate", str(inputs), "-o", str(out), "--no-progress",
            "--base-url", server.base_url, "--model", "stub-model", "--concurrency", "4", "--workers", str(workers),
        ]  # fmt: skip
        run_until_killed(command, out, at_least=5)
        done_before = {r["id"] for r in read_jsonl(out)}
        calls_before = len(server.requests)
        assert 5 <= len(done_before) < len(rows)
        shards = [tmp_path / "out.checkpoints.sqlite", tmp_path / "out.checkpoints.1.sqlite"][:workers]
        in_flight = [len(checkpointed_ids(shard) - done_before) for shard in shards]
        assert sum(in_flight) >= 1  # each worker process checkpoints into its own shard
        orphaned = sum(in_flight[rerun_workers:])  # shards no worker of the re-run owns

        rerun = ["--concurrency", "4", "--workers", str(rerun_workers)]
        assert generate(server, str(inputs), "-o", str(out), *rerun) == 0
        rerun_requests = server.requests[calls_before:]

    ids = [r["id"] for r in read_jsonl(out)]
    assert sorted(ids) == sorted(r["id"] for r in rows)  # nothing lost, nothing written twice
    for record in read_jsonl(out):
        GenerateRecord.model_validate(record)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["skipped"] == len(done_before) and summary["done"] == len(rows) - len(done_before)
    # samples in flight at the kill continued from their checkpoints, or started over when their
    # shard's worker is gone
    assert summary["resumed"] == sum(in_flight) - orphaned
    if orphaned:
        assert f"note: {orphaned} half-finished samples were checkpointed by a run with more workers" in (
            capsys.readouterr().err
        )
    prompts_by_id = {r["id"]: r["prompt"] for r in rows}
    rerun_text = json.dumps(rerun_requests)
    assert not [i for i in done_before if prompts_by_id[i] in rerun_text]  # finished samples not recomputed
    assert len(rerun_requests) <= 5 * (len(rows) - len(done_before)) <= summary["llm_calls"]
    assert not list(tmp_path.glob("out.checkpoints*"))  # every shard removed once empty


def test_a_sample_that_crashed_mid_graph_continues_from_its_last_finished_node(tmp_path):
    """The model raises inside the refiner: the checkpoint is kept, and the re-run calls only the refiner."""
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    options = BatchOptions(output=tmp_path / "out.jsonl", progress=False)
    read = partial(read_samples, [inputs])
    context = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted"}

    crashing = scripted(refinement=RuntimeError("connection dropped"))
    crashing.script["RefinerAnswer"] = [RuntimeError("connection dropped")]
    summary = run_batch(generate_job(context, model=crashing), read, options)
    assert (summary.done, summary.failed) == (0, 1)
    assert read_jsonl(options.errors)[0]["error"]["node"] == "batch"

    healthy = scripted()
    summary = run_batch(generate_job(context, model=healthy), read, options)
    assert (summary.done, summary.resumed) == (1, 1)
    assert healthy.schemas() == ["RefinerAnswer"]
    assert read_jsonl(options.output)[0]["usage"]["llm_calls"] == 5


def test_interrupted_write_leaves_a_valid_file_that_resumes(tmp_path, stub_server):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(2))
    out = tmp_path / "out.jsonl"
    assert generate(stub_server, str(inputs), "-o", str(out), "--limit", "1") == 0
    with out.open("a") as handle:
        handle.write('{"id": "s1", "prompt": "cut off by a kill')  # a line cut mid-write
    assert generate(stub_server, str(inputs), "-o", str(out)) == 0
    assert [r["id"] for r in read_jsonl(out)] == ["s0", "s1"]


def test_invalid_policy_file_is_a_clear_error(tmp_path, stub_server, capsys):
    policies = tmp_path / "p.yaml"
    policies.write_text("name: x\npolicies: []\n")
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    assert generate(stub_server, str(inputs), "-o", str(tmp_path / "o.jsonl"), "--policies", str(policies)) == 2
    assert str(policies) in capsys.readouterr().err


@pytest.mark.embedded
@pytest.mark.timeout(1200)  # ~1 min on 2 free cores; much more when other jobs share them
def test_generate_on_the_embedded_model(tmp_path, capsys):
    """Structure only: a 135M model writes poor content."""
    out = tmp_path / "out.jsonl"
    code = main(
        ["generate", str(ROOT / "examples" / "prompts.jsonl"), "-o", str(out), "--limit", "2", "--max-rounds", "1"]
    )
    records = [GenerateRecord.model_validate(r) for r in read_jsonl(out)]
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert len(records) + len(errors) == 2 and records, errors
    assert code == (0 if not errors else 1)
    assert all(r.model == "SmolLM2-135M-Instruct" and r.thoughts and r.response for r in records)
    assert all(r.usage["llm_calls"] >= 5 for r in records)
    assert "output: " in capsys.readouterr().out
