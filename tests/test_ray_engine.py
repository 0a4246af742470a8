"""`--engine ray` on a real local Ray that the run starts on 127.0.0.1: a run over 500 samples.
Every process Ray leaves behind is stopped by PID."""

from __future__ import annotations

import json
import os

from aidsafe.cli.main import main
from tests.fakes import StubServer, prompts, write_jsonl
from tests.services import descendants, stop_pids
from tests.test_scale_out import (
    CALLS_PER_SAMPLE,
    assert_every_sample_once,
    command,
)


def test_ray_run_over_500_samples_on_a_local_ray_started_for_the_run(tmp_path, capsys):
    rows = prompts(500)
    inputs = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    before = set(descendants(os.getpid()))
    try:
        with StubServer() as server:
            flags = ["--engine", "ray", "--workers", "2", "--concurrency", "32"]
            assert main(command(server, inputs, out, *flags)[3:]) == 0
            assert len(server.requests) == CALLS_PER_SAMPLE * len(rows)
    finally:  # what ray.shutdown() left behind, by PID
        stop_pids([pid for pid in descendants(os.getpid()) if pid not in before])
    assert_every_sample_once(out, rows)
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["engine"], summary["workers"], summary["done"]) == ("ray", 2, 500)
    assert not list(tmp_path.glob("out.checkpoints*"))  # pruned, then removed
    assert "done 500, failed 0" in capsys.readouterr().out
