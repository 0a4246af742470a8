"""What a kill -9 of the driver costs: at most one model call paid again per sample in flight.

`aidsafe generate --concurrency 16` in a child process, as users run it, on SQLite and on Postgres,
killed while every sample in flight is mid-way through its graph, then run again to the end.
Calls are counted at the server: those of the killed run and of the re-run, less those of one
clean run of the same input. With checkpoints written before the next call starts (`sync`
durability) and one model call per node, only the calls in flight at the kill are paid again.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from aidsafe.cli.main import main
from tests.fakes import ROOT, StubServer, prompts, read_jsonl, write_jsonl
from tests.runs import (
    CALLS_PER_SAMPLE,
    assert_every_sample_once,
    assert_finished_not_recomputed,
    checkpoint_rows,
    command,
    kill_driver,
    wait_for_calls,
)
from tests.services import wait_gone

IN_FLIGHT = 16


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_driver_kill_pays_again_at_most_one_call_per_sample_in_flight(tmp_path, store, request):
    database = request.getfixturevalue("database") if store == "postgres" else None
    flags = ("--concurrency", str(IN_FLIGHT), *(("--checkpoint", database) if database else ()))
    rows = prompts(3 * IN_FLIGHT)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with StubServer(latency=0.05) as server:
        assert main(command(server, inputs, tmp_path / "clean.jsonl", *flags)[3:]) == 0
        clean = len(server.requests)
        assert clean == CALLS_PER_SAMPLE * len(rows)

        driver = subprocess.Popen(command(server, inputs, out, *flags), cwd=ROOT, stderr=subprocess.PIPE)
        # The first 16 samples take their 5 calls; the next 16 are then in their initializer, whose
        # two calls (intents, seed) are the ones a kill used to pay twice: kill once half of them
        # have sent their second.
        wait_for_calls(server, clean + CALLS_PER_SAMPLE * IN_FLIGHT + IN_FLIGHT + IN_FLIGHT // 2, timeout=300)
        assert driver.poll() is None
        wait_gone(kill_driver(driver), 60)  # its worker processes, if any, leave with it
        killed = len(server.requests) - clean
        done_before = {r["id"] for r in read_jsonl(out)}
        assert len(done_before) < len(rows)

        assert main(command(server, inputs, out, *flags)[3:]) == 0
        rerun = server.requests[clean + killed :]
    assert_every_sample_once(out, rows)
    assert_finished_not_recomputed(done_before, rows, rerun)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["skipped"] == len(done_before) and summary["resumed"] >= 1
    paid_again = killed + len(rerun) - clean
    print(f"calls paid again after a driver kill ({store}, {IN_FLIGHT} in flight): {paid_again}")
    assert 0 <= paid_again <= IN_FLIGHT
    if database:
        assert checkpoint_rows(database) == 0  # pruned
    assert not list(tmp_path.glob("out.checkpoints*"))
