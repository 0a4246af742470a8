"""Batch mode: the graphs' model calls through a stand-in of the OpenAI Batch API, in waves.

The stand-in (`tests/fakes.BatchStandIn`) answers every request with a random schema-valid answer,
fails some requests, lets a batch expire and another take minutes of fake time; the runs must give
the same records as online mode, in few waves, and never submit a request twice after a kill.
"""

from __future__ import annotations

import subprocess
import time
from functools import partial

import pytest

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.generate import DeliberationRecord, generate_job
from aidsafe.batch.inputs import read_samples
from tests.fakes import ROOT, BatchStandIn, FakeClock, RandomSchemaAnswers, StubServer, prompts, read_jsonl, write_jsonl
from tests.runs import assert_every_sample_once, command, kill_driver


def generate(server: StubServer, tmp_path, count: int, name: str, sleep=None, **options):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(count))
    context = {"base_url": server.base_url, "model": "random"}
    batch = BatchOptions(output=tmp_path / f"{name}.jsonl", progress=False, concurrency=16, **options)
    kwargs = {"sleep": sleep} if sleep else {}
    summary = run_batch(generate_job(context), partial(read_samples, [inputs]), batch, **kwargs)
    return summary, read_jsonl(batch.output)


def without_settings(records):
    return sorted(({k: v for k, v in r.items() if k != "settings"} for r in records), key=lambda r: r["id"])


def test_batch_mode_gives_online_records_in_few_waves(tmp_path):
    count = 20
    with StubServer(respond=RandomSchemaAnswers()) as online:
        _, online_records = generate(online, tmp_path, count, "online")
    clock = FakeClock()
    with BatchStandIn(
        respond=RandomSchemaAnswers(), clock=clock, duration=300, fail_rate=0.1, expire=frozenset({2})
    ) as api:
        summary, records = generate(api, tmp_path, count, "batch", sleep=clock.sleep, mode="batch", poll_seconds=10)
    print(summary.text())
    assert summary.done == count and summary.failed == 0
    for record in records:
        DeliberationRecord.model_validate(record)
        assert record["settings"]["calls"] == "batch"
    assert without_settings(records) == without_settings(online_records)
    submitted = [cid for batch in api.submitted for cid in batch]
    print(len(submitted), len(set(submitted)), summary.waves, clock.now)


@pytest.mark.slow
def test_a_run_killed_while_its_batch_is_pending_picks_the_batch_up(tmp_path):
    """kill -9 while a wave's batch is pending, run again: the same batch is polled, not submitted
    again (counted at the stand-in), and every sample is in the output once."""
    rows = prompts(12)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    with BatchStandIn(respond=RandomSchemaAnswers(), duration=1.5) as api:
        flags = ("--mode", "batch", "--batch-poll-seconds", "0.05")
        process = subprocess.Popen(command(api, inputs, out, *flags), cwd=ROOT, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while len(api.submitted) < 2:  # the second wave's batch is in flight
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()[-3000:]
            time.sleep(0.01)
        kill_driver(process)
        assert api.batches["batch-2"]["status"] in ("validating", "in_progress")
        rerun = subprocess.run(command(api, inputs, out, *flags), cwd=ROOT, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "picking up 1 batches submitted by an earlier run" in rerun.stderr
    submitted = [cid for batch in api.submitted for cid in batch]
    assert len(submitted) == len(set(submitted))  # no request paid twice
    assert_every_sample_once(out, rows)
    assert not list(tmp_path.glob("out.checkpoints*")) and not (tmp_path / "out.batches").exists()
