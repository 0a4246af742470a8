"""Stopping `aidsafe` with SIGTERM (kill, timeout, a job scheduler) also stops the embedded server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def start_generate(inputs: Path, output: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """`aidsafe generate` on the embedded model in a child process, once its server process exists:
    the run and the server's pids."""
    command = [sys.executable, "-c", "import sys; from aidsafe.cli.main import console_main; sys.exit(console_main())"]
    run = subprocess.Popen(
        [*command, "generate", str(inputs), "-o", str(output), "--no-progress"],
        cwd=output.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    deadline = time.monotonic() + 60
    server_pids: list[int] = []
    while not server_pids and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
        server_pids = children(run.pid)
    if not server_pids:
        run.kill()
        raise AssertionError(f"the embedded server never started: {run.communicate()}")
    return run, server_pids


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
