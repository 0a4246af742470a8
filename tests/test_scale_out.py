"""Beyond one machine, with real components on 127.0.0.1: LangGraph's Postgres checkpointer on a
real Postgres, and several model endpoints, one killed mid-run (`--engine ray`: test_ray_engine.py).

Every kill test checks the same promises: every sample exactly once in the output, no finished
sample recomputed (calls counted at the server), checkpoints pruned. The server answers at once
(or after a few ms), so the tests measure nothing; `benchmarks/scale_out.py` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from aidsafe.cli.main import main
from tests.fakes import ROOT, StubServer, prompts, read_jsonl, write_jsonl
from tests.runs import (
    CALLS_PER_SAMPLE,
    STUB_PROCESS,
    assert_every_sample_once,
    assert_finished_not_recomputed,
    checkpoint_rows,
    command,
    kill_driver,
    wait_for_calls,
    wait_for_records,
)
from tests.services import wait_gone

# --------------------------------------------------------------------------------------------
# Postgres checkpoints on the local engine


@pytest.mark.slow
def test_local_engine_on_postgres_resumes_after_a_driver_kill(tmp_path, database):
    rows = prompts(40)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with StubServer(latency=0.05) as server:
        flags = ("--checkpoint", database, "--concurrency", "8", "--workers", "2")
        driver = subprocess.Popen(command(server, inputs, out, *flags), cwd=ROOT, stderr=subprocess.PIPE)
        wait_for_records(driver, out, at_least=5)
        # The first samples finish together; kill once the next ones are two calls in, not at their start.
        wait_for_calls(server, len(server.requests) + 16)
        wait_gone(kill_driver(driver), 60)  # the workers leave with their driver
        done_before = {r["id"] for r in read_jsonl(out)}
        calls_before = len(server.requests)
        assert 5 <= len(done_before) < len(rows)
        assert checkpoint_rows(database) > 0  # samples in flight at the kill

        assert main(command(server, inputs, out, *flags)[3:]) == 0
        rerun = server.requests[calls_before:]
    assert_every_sample_once(out, rows)
    assert_finished_not_recomputed(done_before, rows, rerun)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["skipped"] == len(done_before) and summary["resumed"] >= 1
    assert len(rerun) < CALLS_PER_SAMPLE * (len(rows) - len(done_before))  # the resumed ones continued
    lost = len(server.requests) - CALLS_PER_SAMPLE * len(rows)
    print(f"calls lost to a driver kill (local engine, 2 workers, Postgres, 8 in flight): {lost}")
    assert checkpoint_rows(database) == 0  # pruned
    assert not list(tmp_path.glob("out.checkpoints*"))  # and nothing written beside the output


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_second_driver_on_the_same_output_refuses_to_start(tmp_path, store, request, capsys):
    flags = ["--checkpoint", request.getfixturevalue("database")] if store == "postgres" else []
    rows = prompts(30)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with StubServer(latency=0.05) as server:
        first = subprocess.Popen(
            command(server, inputs, out, "--concurrency", "2", *flags), cwd=ROOT, stderr=subprocess.PIPE
        )
        try:
            wait_for_records(first, out, at_least=1)
            assert main(command(server, inputs, out, *flags)[3:]) == 2
            assert "another aidsafe run" in capsys.readouterr().err
            assert first.wait(timeout=300) == 0
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
    assert_every_sample_once(out, rows)


# --------------------------------------------------------------------------------------------
# Several endpoints


@pytest.mark.slow
def test_several_endpoints_one_killed_mid_run_lose_nothing_and_the_others_take_its_load(tmp_path, capsys):
    rows = prompts(60)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    doomed = subprocess.Popen([sys.executable, "-c", STUB_PROCESS, "0.02"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert doomed.stdout is not None
        doomed_url = f"http://127.0.0.1:{doomed.stdout.readline().strip()}/v1"
        with StubServer(latency=0.02) as first, StubServer(latency=0.02) as second:
            urls = tmp_path / "endpoints.txt"
            urls.write_text(f"# three servers of one model\n{first.base_url}\n{doomed_url}\n")
            driver_flags = ["--concurrency", "8", "--workers", "1", "--base-url", str(urls)]
            driver_flags += ["--base-url", second.base_url, "--model", "stub-model", "--no-progress"]

            def kill_when_records_come() -> None:
                while not out.exists() or out.read_text().count("\n") < 10:
                    time.sleep(0.01)
                doomed.kill()  # SIGKILL, mid-run

            killer = threading.Thread(target=kill_when_records_come, daemon=True)
            killer.start()
            assert main(["generate", str(inputs), "-o", str(out), *driver_flags]) == 0
            killer.join(timeout=5)
            survivors = {first.base_url: len(first.requests), second.base_url: len(second.requests)}
    finally:
        doomed.kill()
        doomed.wait()
    assert_every_sample_once(out, rows)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    endpoints = summary["endpoints"]
    assert set(endpoints) == {first.base_url, doomed_url, second.base_url}
    for url, answered in survivors.items():
        assert endpoints[url] == {"calls": answered, "errors": 0}  # counted where they were answered
    lost = endpoints[doomed_url]
    answered_by_doomed = lost["calls"] - lost["errors"]
    assert sum(survivors.values()) + answered_by_doomed == summary["llm_calls"] == CALLS_PER_SAMPLE * len(rows)
    assert answered_by_doomed < CALLS_PER_SAMPLE * len(rows) / 3 < min(survivors.values())  # they took its share
    print(f"requests re-sent after an endpoint kill (8 in flight): {lost['errors']}")
    printed = capsys.readouterr().out
    assert f"endpoint {doomed_url}: {lost['calls']} calls, {lost['errors']} errors" in printed


def test_a_base_url_that_is_neither_url_nor_file_is_a_usage_error(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    assert main(["generate", str(inputs), "--base-url", "127.0.0.1:8000"]) == 2
    assert "'127.0.0.1:8000' is not an http(s) URL such as http://127.0.0.1:8000/v1" in capsys.readouterr().err


def test_a_file_of_urls_is_checked_line_by_line(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:1/v1  # the first\n\nlocalhost:2\n")
    assert main(["generate", str(inputs), "--base-url", str(urls)]) == 2
    assert f"{urls}: 'localhost:2' is not an http(s) URL" in capsys.readouterr().err


def test_ray_address_needs_a_shared_checkpoint_store(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    assert main(["generate", str(inputs), "--engine", "ray", "--ray-address", "auto", "--base-url", "http://x/v1"]) == 2
    assert "--ray-address needs --checkpoint postgresql://" in capsys.readouterr().err
