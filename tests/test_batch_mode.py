"""Batch mode: the graphs' model calls through a stand-in of the OpenAI Batch API, in waves.

The stand-in (`tests/fakes.BatchStandIn`) answers every request with a random schema-valid answer,
fails some requests, lets a batch expire and another take minutes of fake time; the runs must give
the same records as online mode, in few waves, and never submit a request twice after a kill.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

import openai
import pytest

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.generate import DeliberationRecord, generate_job
from aidsafe.batch.inputs import read_samples
from aidsafe.batch.prices import load_prices
from aidsafe.cli.main import main
from aidsafe.nodes.servers import OFFLINE_BASE_URL
from aidsafe.state.evaluation import RUBRICS
from aidsafe.state.records import PreferenceRecord
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


LONGEST_PATH = 9
"""The deliberation's calls one after another: intents, seed, 3 rounds of 2 deliberators in turn, refiner."""


def extra_waves(submitted: list[list[str]]) -> int:
    """The most waves any one sample may add to the longest path: its requests sent again (failed,
    expired) and its nodes' later calls (re-asks), custom id `thread:interrupt:call`."""
    extra: Counter[str] = Counter()
    seen: set[str] = set()
    for cid in (cid for batch in submitted for cid in batch):
        thread, _, call = cid.split(":")
        extra[thread] += cid in seen or int(call) > 0
        seen.add(cid)
    return max(extra.values(), default=0)


@pytest.mark.slow
def test_200_prompts_in_batch_mode_give_the_online_records_in_few_waves(tmp_path):
    """Random schema-valid answers, a tenth of the requests failed once, the second batch expired
    (half answered), every batch taking five minutes of fake time: the records are online mode's."""
    count = 200
    with StubServer(respond=RandomSchemaAnswers()) as online:
        _, online_records = generate(online, tmp_path, count, "online")
    clock = FakeClock()
    answers = RandomSchemaAnswers()
    with BatchStandIn(respond=answers, clock=clock, duration=300, fail_rate=0.1, expire=frozenset({2})) as api:
        summary, records = generate(api, tmp_path, count, "batch", sleep=clock.sleep, mode="batch", poll_seconds=10)
    assert (summary.done, summary.failed) == (count, 0)
    for record in records:
        DeliberationRecord.model_validate(record)
        assert record["settings"]["calls"] == "batch"
    assert without_settings(records) == without_settings(online_records)
    assert summary.waves <= LONGEST_PATH + extra_waves(api.submitted)
    assert clock.now >= summary.waves * 300  # each wave waited for its batch


@pytest.mark.slow  # several waves of graph steps, or child processes: seconds
def test_batch_files_are_split_at_the_limits_and_a_failed_batch_is_sent_again(tmp_path):
    clock = FakeClock()
    with BatchStandIn(respond=RandomSchemaAnswers(), clock=clock, duration=60, fail=frozenset({1})) as api:
        summary, records = baseline(api, tmp_path, 5, sleep=clock.sleep, max_batch_requests=2)
    assert (summary.done, summary.failed) == (5, 0)
    assert [len(batch) for batch in api.submitted[:3]] == [2, 2, 1] and max(map(len, api.submitted)) == 2
    assert set(api.submitted[0]) <= {cid for batch in api.submitted[3:] for cid in batch}  # the failed batch's
    assert sorted(r["id"] for r in records) == [f"s{i}" for i in range(5)]


def test_a_request_that_keeps_failing_fails_its_sample_into_the_errors_file(tmp_path):
    clock = FakeClock()
    with BatchStandIn(respond=RandomSchemaAnswers(), clock=clock, fail_rate=0.5, seed=3) as api:
        summary, records = baseline(api, tmp_path, 6, sleep=clock.sleep, http_retries=0)
    failed = len(api.submitted[0]) - len(records)
    assert summary.failed == failed > 0 and summary.done == 6 - failed
    errors = read_jsonl(tmp_path / "batch.errors.jsonl")
    assert all("injected failure" in line["error"]["message"] for line in errors)


def baseline(server: StubServer, tmp_path, count: int, sleep, http_retries: int = 3, **options):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(count))
    context = {"base_url": server.base_url, "model": "random", "http_retries": http_retries}
    batch = BatchOptions(output=tmp_path / "batch.jsonl", progress=False, mode="batch", poll_seconds=1, **options)
    summary = run_batch(generate_job(context, zero_shot=True), partial(read_samples, [inputs]), batch, sleep=sleep)
    return summary, read_jsonl(batch.output)


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


@pytest.mark.slow  # several waves of graph steps, or child processes: seconds
def test_offline_files_round_trip_through_vllm_run_batch(tmp_path, capsys):
    """`--mode offline` writes `requests-NNN.jsonl`, prints the `vllm run-batch` command, and goes on
    when the results file is there: a script playing vLLM answers each file with the printed command."""
    rows = prompts(4)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    played: list[str] = []

    async def play_vllm(seconds: float) -> None:
        printed = capsys.readouterr().err
        for line in printed.splitlines():
            if "run  vllm run-batch" in line:
                command = line.split("run  vllm run-batch ", 1)[1].split()
                played.append(Path(command[1]).name)
                subprocess.run([sys.executable, str(ROOT / "tests" / "fake_vllm_run_batch.py"), *command], cwd=ROOT,
                               check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip

    context = {"base_url": OFFLINE_BASE_URL, "model": "Qwen/Qwen3-8B"}
    options = BatchOptions(output=out, progress=False, mode="offline", poll_seconds=1)
    summary = run_batch(
        generate_job(context, zero_shot=True), partial(read_samples, [inputs]), options, sleep=play_vllm
    )
    assert (summary.done, summary.failed) == (4, 0) and played[0] == "requests-001.jsonl"
    assert summary.waves == len(played)
    with StubServer(respond=RandomSchemaAnswers()) as online:
        _, online_records = baseline_online(online, tmp_path, rows)
    assert without_settings(read_jsonl(out)) == without_settings(online_records)
    assert not (tmp_path / "out.batches").exists()  # answered files are removed


def baseline_online(server: StubServer, tmp_path, rows):
    context = {"base_url": server.base_url, "model": "Qwen/Qwen3-8B"}
    options = BatchOptions(output=tmp_path / "online.jsonl", progress=False)
    read = partial(read_samples, [tmp_path / "in.jsonl"])
    return run_batch(generate_job(context, zero_shot=True), read, options), read_jsonl(options.output)


def cli(command: str, server: StubServer, *args: str) -> int:
    flags = ["--base-url", server.base_url, "--model", "random", "--no-progress", "--concurrency", "64"]
    return main([command, *args, *flags])


BATCH = ("--mode", "batch", "--batch-poll-seconds", "0.01")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """200 generate records (online), the input of the prefer and evaluate runs."""
    folder = tmp_path_factory.mktemp("generated")
    inputs = write_jsonl(folder / "in.jsonl", prompts(200))
    with StubServer(respond=RandomSchemaAnswers()) as server:
        assert cli("generate", server, str(inputs), "-o", str(folder / "out.jsonl"), "--max-rounds", "1") == 0
    return folder / "out.jsonl"


@pytest.mark.slow
def test_prefer_in_batch_mode_gives_the_online_records(generated, tmp_path):
    """Half the input generate records, half prompts; some requests failed, the second batch expired."""
    fresh = [{"id": f"p{i}", "prompt": f"fresh prompt {i}"} for i in range(100)]
    inputs = write_jsonl(tmp_path / "in.jsonl", [*read_jsonl(generated)[:100], *fresh])
    flags = ("--max-rounds", "1", "--whisper-iterations", "2")
    with StubServer(respond=RandomSchemaAnswers(seed=1)) as server:
        assert cli("prefer", server, str(inputs), "-o", str(tmp_path / "online.jsonl"), *flags) == 0
    with BatchStandIn(respond=RandomSchemaAnswers(seed=1), fail_rate=0.1, expire=frozenset({2})) as api:
        assert cli("prefer", api, str(inputs), "-o", str(tmp_path / "batch.jsonl"), *flags, *BATCH) == 0
    records = read_jsonl(tmp_path / "batch.jsonl")
    assert len(records) == 200 and all(PreferenceRecord.model_validate(r) for r in records)
    assert without_settings(records) == without_settings(read_jsonl(tmp_path / "online.jsonl"))


@pytest.mark.slow
def test_evaluate_in_batch_mode_gives_the_online_grades(generated, tmp_path):
    baseline = write_jsonl(tmp_path / "baseline.jsonl", read_jsonl(generated)[:50])
    args = (str(generated), "--baseline", str(baseline))
    with StubServer(respond=RandomSchemaAnswers(seed=2)) as server:
        assert cli("evaluate", server, *args, "--out", str(tmp_path / "online")) == 0
    with BatchStandIn(respond=RandomSchemaAnswers(seed=2), fail_rate=0.1, expire=frozenset({2})) as api:
        assert cli("evaluate", api, *args, "--out", str(tmp_path / "batch"), *BATCH) == 0
    samples = read_jsonl(tmp_path / "batch" / "samples.jsonl")
    assert len(samples) == 200 and all(set(sample["run"]["grades"]) == set(RUBRICS) for sample in samples)
    assert without_settings(samples) == without_settings(read_jsonl(tmp_path / "online" / "samples.jsonl"))


@pytest.mark.slow  # several waves of graph steps, or child processes: seconds
def test_the_cap_is_checked_before_a_wave_at_batch_prices(tmp_path):
    """Each baseline call reserves its prompt bytes and `max_tokens` at the batch price (half of the
    online price here) before its wave: a cap under one reservation sends nothing and stops the run;
    one of three and a half reservations sends three in the first wave, the rest once those have
    settled (their answers cost far less than reserved); every record is priced at batch prices."""
    clock = FakeClock()
    prices = load_prices(None, input_price=1.0, output_price=1.0)
    with BatchStandIn(respond=RandomSchemaAnswers(), clock=clock) as api:
        inputs = write_jsonl(tmp_path / "in.jsonl", prompts(6))
        context = {"base_url": api.base_url, "model": "random", "max_tokens": 100}
        job, read = generate_job(context, zero_shot=True), partial(read_samples, [inputs])
        options = BatchOptions(output=tmp_path / "out.jsonl", progress=False, mode="batch", prices=prices)
        summary = run_batch(job, read, BatchOptions(**{**vars(options), "max_cost": 1e-6}), sleep=clock.sleep)
        assert summary.stopped_at_cost and summary.unfinished == 6 and not api.submitted
        run_batch(job, read, BatchOptions(**{**vars(options), "max_cost": 1000.0, "output": tmp_path / "probe.jsonl"}))
        per_sample = json_bytes_reservation(api)
        api.submitted.clear()
        summary = run_batch(
            job, read, BatchOptions(**{**vars(options), "max_cost": per_sample * 3.5}), sleep=clock.sleep
        )
    assert len(api.submitted[0]) == 3 and summary.done + summary.failed == 6 and not summary.stopped_at_cost
    assert summary.output_cost_usd <= per_sample * 3.5
    for record in read_jsonl(tmp_path / "out.jsonl"):
        usage = record["usage"]
        assert record["cost_usd"] == pytest.approx((usage["input_tokens"] + usage["output_tokens"]) * 0.5e-6)


def json_bytes_reservation(api: BatchStandIn) -> float:
    """The most a first baseline call may cost at batch prices ($0.50 per million tokens either way):
    its prompt's bytes (messages and schema, 16 per message) and `max_tokens`, from the request sent."""
    body = api.requests[0]
    schema = body["response_format"]["json_schema"]["schema"]
    prompt = sum(len(m["content"].encode()) for m in body["messages"]) + len(json.dumps(schema).encode())
    return (prompt + 16 * len(body["messages"]) + 100) * 0.5e-6


def test_a_batch_started_but_not_noted_is_found_not_started_again(tmp_path):
    """The run dies after `batches.create` made the batch but before it kept the id (the stand-in
    loses the answer): the re-run finds the batch by its input file and starts no other."""
    clock = FakeClock()
    with BatchStandIn(respond=RandomSchemaAnswers(), clock=clock, lose_created=1) as api:
        with pytest.raises(openai.BadRequestError):
            baseline(api, tmp_path, 3, sleep=clock.sleep)
        summary, records = baseline(api, tmp_path, 3, sleep=clock.sleep)
    assert len(records) == 3 and summary.done + summary.failed == 3
    submitted = [cid for batch in api.submitted for cid in batch]
    assert len(submitted) == len(set(submitted)) and len(api.submitted[0]) == 3
