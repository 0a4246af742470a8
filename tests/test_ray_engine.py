"""`--engine ray` on a real Ray on 127.0.0.1: a run over 500 samples on a Ray the run starts, then,
on one cluster shared by the module, `prefer` and `evaluate` with Postgres checkpoints and SIGKILL
of a Ray worker and of the driver. Every process a test started (or a killed driver left) is
stopped by PID.

The promises are those of `test_scale_out.py`: every sample exactly once, no finished sample
recomputed (calls counted at the server), checkpoints pruned.

Ray >= 2.60 turns token authentication on for a cluster that `ray.init()` starts, and a driver
joining it must present the same token: the module's cluster and its drivers share one token
through `RAY_AUTH_MODE`/`RAY_AUTH_TOKEN`, so no test reads or writes `~/.ray/auth_token`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aidsafe.batch.ray_engine import LOOPBACK_ONLY
from aidsafe.cli.main import main
from aidsafe.state.records import PreferenceRecord
from tests.fakes import ROOT, StubServer, generate_record, prompts, read_jsonl, whisper_stub_answer, write_jsonl
from tests.runs import (
    CALLS_PER_SAMPLE,
    assert_every_sample_once,
    assert_finished_not_recomputed,
    checkpoint_rows,
    command,
    kill_driver,
    wait_for_records,
)
from tests.services import RayHead, descendants, listening_addresses, ray_cluster, stop_pids
from tests.test_cost import assert_hard_cap, in_process
from tests.test_policies import assert_an_edit_mid_run_changes_nothing


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "token")
        env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        env.setenv(LOOPBACK_ONLY, "0")  # the cluster and every driver of it on 127.0.0.1 (read when Ray is imported)
        with ray_cluster(num_cpus=2) as head:
            assert_loopback_only([head.pid, *descendants(head.pid)])
            yield head


def assert_loopback_only(pids: list[int]) -> None:
    listening = listening_addresses(pids)
    assert listening and all(address.is_loopback for address, _ in listening), listening


def sample_workers(head: int) -> list[int]:
    """PIDs of the Ray actors running samples, among the processes of the cluster started by `head`."""
    return [pid for pid in descendants(head) if _command_line(pid).startswith(b"ray::SampleWorker")]


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_ray_prefer_on_a_cluster_with_postgres(tmp_path, ray_head, database):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(4))
    out = tmp_path / "prefs.jsonl"
    with StubServer(respond=whisper_stub_answer) as server:
        flags = ["--engine", "ray", "--ray-address", ray_head.address, "--checkpoint", database, "--workers", "2"]
        args = ["prefer", str(inputs), "-o", str(out), "--base-url", server.base_url, "--model", "m", "--no-progress"]
        assert main([*args, "--max-rounds", "1", *flags]) == 0
    assert sorted(PreferenceRecord.model_validate(r).id for r in read_jsonl(out)) == ["s0", "s1", "s2", "s3"]
    assert checkpoint_rows(database) == 0


def test_ray_evaluate_on_a_cluster_with_postgres(tmp_path, ray_head, database, stub_server):
    run = write_jsonl(tmp_path / "run.jsonl", [generate_record(i) for i in "abc"])
    baseline = write_jsonl(tmp_path / "baseline.jsonl", [generate_record(i, response="Sure.") for i in "abc"])
    out = tmp_path / "report"
    flags = ["--engine", "ray", "--ray-address", ray_head.address, "--checkpoint", database, "--workers", "2"]
    code = main(
        ["evaluate", str(run), "--baseline", str(baseline), "--out", str(out), "--base-url", stub_server.base_url,
         "--model", "stub-judge", "--concurrency", "3", "--no-progress", *flags]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == {"run": 3, "baseline": 3, "paired": 3} and summary["failures"] == []
    assert summary["pairwise"]["n"] == 3
    assert len(stub_server.requests) == 3 * (2 * 6 + 1) == summary["usage"]["llm_calls"]
    batch = json.loads((out / "samples.summary.json").read_text())
    assert (batch["engine"], batch["done"]) == ("ray", 3)
    assert sorted(s["id"] for s in read_jsonl(out / "samples.jsonl")) == ["a", "b", "c"]
    assert checkpoint_rows(database) == 0


def ray_flags(head: RayHead, database: str) -> tuple[str, ...]:
    return ("--engine", "ray", "--ray-address", head.address, "--checkpoint", database)


@pytest.mark.parametrize(
    ("subcommand", "flags", "samples"),
    [("generate", ["--concurrency", "16"], 20), ("prefer", ["--concurrency", "8", "--max-rounds", "1"], 8)],
)
def test_max_cost_is_a_hard_cap_over_ray_actors(tmp_path, ray_head, database, subcommand, flags, samples):
    """One ledger (a Ray actor) for the run's two actors: the cap holds, and the re-run pays nothing twice."""
    run = in_process(subcommand, *flags, *ray_flags(ray_head, database), "--workers", "2")
    assert_hard_cap(tmp_path, run, prompts(samples))
    assert checkpoint_rows(database) == 0


def test_a_policy_file_edited_mid_run_changes_nothing_on_ray_actors(tmp_path, ray_head, database):
    """The set the driver read at the start is the one every actor deliberates over (it travels in
    the job, not as a path each actor reads again)."""
    assert_an_edit_mid_run_changes_nothing(tmp_path, *ray_flags(ray_head, database), "--workers", "2")


def test_a_killed_ray_worker_is_restarted_and_its_samples_resume(tmp_path, ray_head, database):
    rows = prompts(60)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with StubServer(latency=0.05) as server:
        flags = (*ray_flags(ray_head, database), "--workers", "2", "--concurrency", "16")
        driver = subprocess.Popen(command(server, inputs, out, *flags), cwd=ROOT, stderr=subprocess.PIPE)
        try:
            wait_for_records(driver, out, at_least=10)
            victim = sample_workers(ray_head.pid)[0]
            done_before = {r["id"] for r in read_jsonl(out)}
            calls_before = len(server.requests)
            os.kill(victim, signal.SIGKILL)
            assert driver.wait(timeout=300) == 0, driver.stderr.read().decode()[-3000:] if driver.stderr else ""
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        later = server.requests[calls_before:]
    assert_every_sample_once(out, rows)
    assert_finished_not_recomputed(done_before, rows, later)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    extra = len(server.requests) - CALLS_PER_SAMPLE * len(rows)
    assert 0 <= extra < 16  # at most the calls in flight on the killed actor were made twice
    print(f"calls lost to a Ray worker kill at 16 in flight: {extra}; samples resumed: {summary['resumed']}")
    assert checkpoint_rows(database) == 0


def test_a_killed_ray_driver_leaves_a_run_that_the_next_one_finishes(tmp_path, ray_head, database):
    """Ray stops a dead driver's actors seconds after it dies; until then they hold the run's shared
    lock, so the re-run waits for them instead of racing them for the same samples. What they
    finish after the kill is checkpointed, so the re-run takes it from there without a call."""
    rows = prompts(60)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    flags = (*ray_flags(ray_head, database), "--workers", "2", "--concurrency", "16")
    with StubServer(latency=0.05) as server:
        driver = subprocess.Popen(command(server, inputs, out, *flags), cwd=ROOT, stderr=subprocess.PIPE)
        try:
            wait_for_records(driver, out, at_least=10)
            done_before = {r["id"] for r in read_jsonl(out)}  # every call of these was made before now
            calls_before = len(server.requests)
            kill_driver(driver)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        written = {r["id"] for r in read_jsonl(out)}
        assert 10 <= len(written) < len(rows)

        assert main(command(server, inputs, out, *flags)[3:]) == 0  # waits for the dead run's actors
        later = server.requests[calls_before:]
    assert_every_sample_once(out, rows)
    assert_finished_not_recomputed(done_before, rows, later)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["skipped"] == len(written)
    extra = len(server.requests) - CALLS_PER_SAMPLE * len(rows)
    assert 0 <= extra <= 16  # at most the calls in flight when Ray stopped the dead run's actors
    print(f"calls lost to a Ray driver kill at 16 in flight: {extra}; samples resumed: {summary['resumed']}")
    assert checkpoint_rows(database) == 0


@pytest.mark.ray
@pytest.mark.slow
def test_ray_run_over_500_samples_on_a_local_ray_started_for_the_run(tmp_path, monkeypatch):
    """`aidsafe generate --engine ray` as a user runs it, in a process of its own: the Ray it starts
    serves only this run, so nothing of it listens beyond loopback."""
    monkeypatch.delenv(LOOPBACK_ONLY, raising=False)  # the run sets it itself
    rows = prompts(500)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with StubServer() as server:
        flags = ["--engine", "ray", "--workers", "2", "--concurrency", "32"]
        driver = subprocess.Popen(command(server, inputs, out, *flags), cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            wait_for_records(driver, out, at_least=1)  # the actors run
            assert_loopback_only([driver.pid, *descendants(driver.pid)])
            printed, _ = driver.communicate(timeout=600)
        finally:  # what ray.shutdown() left behind, by PID
            stop_pids([driver.pid, *descendants(driver.pid)])
        assert driver.returncode == 0
        assert len(server.requests) == CALLS_PER_SAMPLE * len(rows)
    assert_every_sample_once(out, rows)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["engine"], summary["workers"], summary["done"]) == ("ray", 2, 500)
    assert not list(tmp_path.glob("out.checkpoints*"))  # pruned, then removed
    assert "done 500, failed 0" in printed
