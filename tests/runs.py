"""`aidsafe generate` in a child process, killed and run again: what every kill test shares.

Every kill test checks the same promises: every sample exactly once in the output, no finished
sample recomputed (calls counted at the server), checkpoints pruned.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aidsafe.state.records import GenerateRecord
from tests.fakes import StubServer, read_jsonl
from tests.services import descendants

CALLS_PER_SAMPLE = 5
"""The stub's answers agree at once: intents, seed, two deliberators, refiner."""


def checkpoint_rows(url: str) -> int:
    import psycopg  # the [ray] extra: only the Postgres tests need it

    with psycopg.connect(url) as conn:
        return sum(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("checkpoints", "checkpoint_writes")
        )  # type: ignore[index]


def command(server: StubServer, inputs: Path, out: Path, *flags: str) -> list[str]:
    return [
        sys.executable, "-m", "aidsafe.cli.main", "generate", str(inputs), "-o", str(out), "--no-progress",
        "--base-url", server.base_url, "--model", "stub-model", *flags,
    ]  # fmt: skip


def wait_for_records(process: subprocess.Popen, out: Path, at_least: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_text().count("\n") >= at_least:
            return
        time.sleep(0.02)
    stderr = process.stderr.read().decode()[-3000:] if process.stderr else ""
    raise AssertionError(f"{at_least} records did not come (exit code {process.poll()}): {stderr}")


def wait_for_calls(server: StubServer, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(server.requests) < at_least:
        assert time.monotonic() < deadline, f"the server saw {len(server.requests)} of {at_least} calls"
        time.sleep(0.01)


def kill_driver(process: subprocess.Popen) -> list[int]:
    """SIGKILL the driver; return the processes it had started (still running, for now)."""
    tree = descendants(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return tree


def assert_every_sample_once(out: Path, rows: list[dict]) -> None:
    records = read_jsonl(out)
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)  # nothing lost, nothing twice
    for record in records:
        GenerateRecord.model_validate(record)


def assert_finished_not_recomputed(done_before: set[str], rows: list[dict], later_requests: list[dict]) -> None:
    prompt_of = {r["id"]: r["prompt"] for r in rows}
    text = json.dumps(later_requests)
    assert not [i for i in done_before if prompt_of[i] in text]


def _serve_stub(latency: str) -> None:
    with StubServer(latency=float(latency)) as server:
        print(server.port, flush=True)
        time.sleep(3600)


STUB_PROCESS = "import sys; from tests.runs import _serve_stub; _serve_stub(sys.argv[1])"
