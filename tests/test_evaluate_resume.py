"""`aidsafe evaluate` on the batch engine: kill -9 mid-run, re-run, and every grade is paid exactly once.

Grades are counted at the test server by what it answered. The first server answers a fixed number
of judge calls and then holds every further request unanswered (a model that stopped answering:
nothing more is paid), the run is killed with SIGKILL, and the re-run goes to a second server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from aidsafe.cli.main import main
from aidsafe.state.evaluation import RUBRICS
from tests.fakes import StubServer, generate_record, schema_answer, write_jsonl

RECORDS = 10
CALLS_PER_SAMPLE = 2 * len(RUBRICS) + 1  # six rubrics for each file, one pairwise verdict


class Grades:
    """Counts every answered judge call by what it asked (rubric, file shown, record)."""

    def __init__(self, answer_first: int | None = None) -> None:
        self.answered: Counter[str] = Counter()
        self.answer_first = answer_first
        self.held = threading.Event()
        self.closed = False
        self._lock = threading.Lock()

    def respond(self, request: dict) -> str:
        key = json.dumps(request["messages"][1:], sort_keys=True)
        with self._lock:
            open_ = self.answer_first is None or sum(self.answered.values()) < self.answer_first
            if open_:
                self.answered[key] += 1
        if not open_:
            self.held.set()
            while not self.closed:  # hold the request: the client is killed while it waits
                time.sleep(0.05)
            return "{}"
        return schema_answer(request)


@pytest.mark.slow
def test_kill_9_then_rerun_grades_every_record_once(tmp_path):
    ids = [f"r{i}" for i in range(RECORDS)]
    run = write_jsonl(tmp_path / "run.jsonl", [generate_record(i) for i in ids])
    baseline = write_jsonl(tmp_path / "baseline.jsonl", [generate_record(i, response="Sure.") for i in ids])
    out = tmp_path / "eval"
    flags = ["--baseline", str(baseline), "-o", str(out), "--model", "judge", "--concurrency", "3", "--no-progress"]

    first = Grades(answer_first=5 * CALLS_PER_SAMPLE + 4)
    with StubServer(respond=first.respond) as server:
        command = [sys.executable, "-m", "aidsafe.cli.main", "evaluate", str(run), *flags]
        process = subprocess.Popen([*command, "--base-url", server.base_url], stderr=subprocess.PIPE)
        try:
            assert first.held.wait(timeout=240), "the first run never reached the held requests"
            time.sleep(1.5)  # the last answers' checkpoints are committed
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            first.closed = True
            if process.poll() is None:
                process.kill()
    graded_before = (out / "samples.jsonl").read_text().splitlines() if (out / "samples.jsonl").exists() else []
    assert 1 <= len(graded_before) < RECORDS
    assert list(out.glob("samples.checkpoints*"))  # half-graded samples are checkpointed

    second = Grades()
    with StubServer(respond=second.respond) as server:
        assert main(["evaluate", str(run), *flags, "--base-url", server.base_url]) == 0

    paid = first.answered + second.answered
    assert len(paid) == RECORDS * CALLS_PER_SAMPLE  # every grade of every record came back ...
    assert set(paid.values()) == {1}  # ... and none was paid twice
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["id"] for s in samples) == ids
    summary = json.loads((out / "samples.summary.json").read_text())
    assert summary["skipped"] == len(graded_before) and summary["resumed"] >= 1
    assert summary["done"] == RECORDS - len(graded_before) and summary["failed"] == 0
    report = json.loads((out / "summary.json").read_text())
    assert report["samples"] == {"run": RECORDS, "baseline": RECORDS, "paired": RECORDS}
    assert report["pairwise"]["n"] == RECORDS and report["failures"] == []
    assert not list(out.glob("samples.checkpoints*"))
    assert Path(out / "report.md").is_file()
