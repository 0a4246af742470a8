"""Stopping `aidsafe` with SIGTERM (kill, timeout, a job scheduler) also stops the embedded server."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.services import alive, start_generate


@pytest.mark.embedded
def test_sigterm_stops_the_run_and_the_embedded_server(tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"question {i}"}) + "\n" for i in range(20)))
    run, server_pids = start_generate(inputs, tmp_path / "out.jsonl")
    try:
        time.sleep(2)  # let it load and take the first request
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130
    assert "run the same command to resume" in stderr
    time.sleep(0.5)
    assert not any(alive(pid) for pid in server_pids)
