"""A dead model server is named once: the embedded llama.cpp server crashing at start-up or mid-run
stops `aidsafe generate` (and `aidsafe evaluate`) at once with the signal, the log and the fix, and a re-run resumes; a
refused connection to a remote server is reported as that, with its URL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from aidsafe.cli.main import main
from aidsafe.embedded.llama_server import PORTABLE_CMAKE_ARGS
from tests.fakes import generate_record, prompts, read_jsonl, write_jsonl
from tests.runs import CALLS_PER_SAMPLE
from tests.services import alive, start_generate

ROOT = Path(__file__).resolve().parents[1]
FAKE_LLAMA = ROOT / "tests" / "fake_llama"


@pytest.fixture
def fake_llama(monkeypatch, tmp_path):
    """`python -m llama_cpp.server` in the embedded server's process is the fake, which notes each
    chat completion in `tmp_path/requests.log`; returns a setter for the chat completion it
    crashes on (1: aidsafe's start-up check)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_LLAMA), str(ROOT)]))
    monkeypatch.setenv("FAKE_LLAMA_REQUESTS", str(tmp_path / "requests.log"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def crash_on(request: int, signal_name: str = "SIGSEGV") -> None:
        monkeypatch.setenv("FAKE_LLAMA_CRASH_ON", str(request))
        monkeypatch.setenv("FAKE_LLAMA_CRASH_WITH", signal_name)

    return crash_on


def generate(*args: str) -> int:
    return main(["generate", *args, "--no-progress", "--max-rounds", "1"])


def seconds_since_crash(requests: Path) -> float:
    """From the fake server's crash to now (the run's end), by the time it noted."""
    crash = next(line for line in requests.read_text().splitlines() if line.startswith("crash at "))
    return time.time() - float(crash.removeprefix("crash at "))


def assert_crash_named(stderr: str, during: str, signal_name: str = "SIGSEGV") -> None:
    """The CPU story: this build does not run on this CPU, and the command that installs one that does."""
    assert f"crashed with {signal_name} during {during}" in stderr
    assert "This llama.cpp build does not run on this CPU" in stderr
    assert f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --no-cache-dir --force-reinstall' in stderr
    assert_log_named(stderr)


def assert_named_without_reinstall(stderr: str, *words: str) -> None:
    """Another death than the CPU story: named by `words`, with the log and the last request, and no
    reinstall, which would not help."""
    for word in words:
        assert word in stderr
    assert "does not run on this CPU" not in stderr and "pip install" not in stderr
    assert "last request: " in stderr and "answer schema " in stderr.split("last request: ")[1].splitlines()[0]
    assert_log_named(stderr)


def assert_log_named(stderr: str) -> None:
    log = Path(stderr.split("server log: ")[1].split()[0])
    assert log.name.startswith("aidsafe-llama-") and log.exists()
    assert "Request timed out" not in stderr


def test_a_server_that_crashes_on_its_first_completion_is_named_at_start(tmp_path, fake_llama, capsys):
    fake_llama(1)
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(5))
    assert generate(str(inputs), "-o", str(tmp_path / "out.jsonl")) == 1
    assert seconds_since_crash(tmp_path / "requests.log") < 30, "the run should end at once, not after timeouts"
    stderr = capsys.readouterr().err
    assert_crash_named(stderr, "its start-up check")
    assert stderr.count("crashed with SIGSEGV") == 1
    assert not (tmp_path / "out.jsonl").exists() or not read_jsonl(tmp_path / "out.jsonl")


def test_the_embedded_server_gets_json_object_with_its_schema(tmp_path, fake_llama):
    """llama-cpp-python's server answers HTTP 500 to `json_schema`: the embedded one is known to be
    it without being asked, and gets llama.cpp's form."""
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(2))
    assert generate(str(inputs), "-o", str(tmp_path / "out.jsonl")) == 0
    sent = (tmp_path / "requests.log").read_text().splitlines()
    assert sent == ["chat completion text"] + ["chat completion json_object"] * 2 * CALLS_PER_SAMPLE


def test_an_illegal_instruction_on_the_first_request_is_this_build_on_this_cpu(tmp_path, fake_llama, capsys):
    fake_llama(2, "SIGILL")  # the start-up check passed; the run's first request has other kernels
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(2))
    assert generate(str(inputs), "-o", str(tmp_path / "out.jsonl")) == 1
    assert_crash_named(capsys.readouterr().err, "the run", "SIGILL")


@pytest.mark.parametrize("kernel_says", [True, False], ids=["kernel-log-names-it", "kernel-log-silent"])
def test_an_out_of_memory_kill_is_named_without_a_reinstall(tmp_path, fake_llama, capsys, monkeypatch, kernel_says):
    if kernel_says:  # a dmesg that has the kernel's line on the fake server's pid
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        line = "[ 99.0] Out of memory: Killed process \\1 (python3) total-vm:2048kB, anon-rss:1024kB"
        (bin_dir / "dmesg").write_text(
            f"#!/bin/sh\nsed -n 's/^killed pid \\(.*\\)/{line}/p' \"$FAKE_LLAMA_REQUESTS\"\n"
        )
        (bin_dir / "dmesg").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    fake_llama(1 + CALLS_PER_SAMPLE + 2, "SIGKILL")
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    assert generate(str(inputs), "-o", str(tmp_path / "out.jsonl")) == 1
    stderr = capsys.readouterr().err
    cause = "the kernel's out-of-memory killer ended it (kernel log: [ 99.0] Out of memory: Killed process"
    assert_named_without_reinstall(
        stderr,
        "was killed by SIGKILL during the run",
        cause if kernel_says else "most likely the kernel's out-of-memory killer",
    )
    assert "--workers, --concurrency" in stderr


def test_an_abort_is_a_llama_cpp_assertion_not_a_reinstall(tmp_path, fake_llama, capsys):
    fake_llama(1 + CALLS_PER_SAMPLE + 2, "SIGABRT")
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    assert generate(str(inputs), "-o", str(tmp_path / "out.jsonl")) == 1
    stderr = capsys.readouterr().err
    assert_named_without_reinstall(stderr, "aborted (SIGABRT) during the run", "internal checks (an assertion")
    assert "--max-prompt-chars" in stderr


def test_a_crash_mid_run_stops_the_run_and_a_rerun_resumes(tmp_path, fake_llama, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(5))
    out = tmp_path / "out.jsonl"
    fake_llama(1 + 2 * CALLS_PER_SAMPLE + 3)  # the check, two whole samples, three calls of the third
    assert generate(str(inputs), "-o", str(out)) == 1
    assert seconds_since_crash(tmp_path / "requests.log") < 30, "the run should stop at once"
    stderr = capsys.readouterr().err
    answers = 1 + 2 * CALLS_PER_SAMPLE + 2  # the check, two samples, two calls of the third (one more in flight)
    assert_named_without_reinstall(stderr, f"crashed with SIGSEGV during the run, after {answers} answers")
    assert stderr.count("crashed with SIGSEGV") == 1 and "failed s" not in stderr
    assert [r["id"] for r in read_jsonl(out)] == ["s0", "s1"]
    assert read_jsonl(tmp_path / "out.errors.jsonl") == []  # no sample is blamed for the server

    fake_llama(0)
    requests = tmp_path / "requests.log"
    requests.unlink()
    assert generate(str(inputs), "-o", str(out)) == 0
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["done"], summary["resumed"], summary["skipped"], summary["failed"]) == (3, 1, 2, 0)
    assert sorted(r["id"] for r in read_jsonl(out)) == [f"s{i}" for i in range(5)]
    # the interrupted sample continued where it stopped: 2 of its 3 calls had been answered and saved
    assert len(requests.read_text().splitlines()) == 1 + 3 * CALLS_PER_SAMPLE - 2


def test_the_server_leaves_when_the_process_that_started_it_is_killed(fake_llama):
    """A parent killed by SIGKILL (or a test runner's timeout) cannot stop its server: it goes by itself."""
    start = (
        "import time; from aidsafe.embedded import EmbeddedServer; "
        "print(EmbeddedServer().start().process.pid, flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", start], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        server = int(parent.stdout.readline())
        assert alive(server)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(server)


def test_a_refused_connection_is_named_with_its_url(tmp_path, capsys):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    base_url = f"http://127.0.0.1:{port}/v1"
    args = ["-o", str(tmp_path / "out.jsonl"), "--no-progress", "--base-url", base_url, "--model", "m"]
    assert main(["generate", str(inputs), *args, "--http-retries", "0"]) == 1
    [error] = read_jsonl(tmp_path / "out.errors.jsonl")
    assert error["error"]["message"] == (
        f"model server failed after retries: connection refused by {base_url}/chat/completions"
    )
    assert "timed out" not in capsys.readouterr().err


@pytest.mark.embedded
@pytest.mark.timeout(600)
def test_killing_the_real_embedded_server_mid_run_ends_the_run(tmp_path):
    """The real llama.cpp server, sent the signal a crash gives it while it answers."""
    inputs = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    run, server_pids = start_generate(inputs, tmp_path / "out.jsonl")
    try:
        [log] = Path(tempfile.gettempdir()).glob(f"aidsafe-llama-{run.pid}-*.log")
        deadline = time.monotonic() + 400
        while log.read_text().count("POST /v1/chat/completions") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # the start-up check and the run's first call answered
        assert run.poll() is None, run.communicate()
        os.kill(server_pids[0], signal.SIGSEGV)
        killed = time.monotonic()
        _, stderr = run.communicate(timeout=120)
        seconds = time.monotonic() - killed
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, stderr
    assert seconds < 30, stderr
    assert_named_without_reinstall(stderr, "crashed with SIGSEGV during the run, after ")  # it had answered
    assert "Traceback" not in stderr
    assert not any(alive(pid) for pid in server_pids)


def test_a_crash_mid_grading_stops_evaluate_and_a_rerun_resumes(tmp_path, fake_llama, capsys):
    from aidsafe.state.evaluation import RUBRICS

    run = write_jsonl(tmp_path / "run.jsonl", [generate_record(f"s{i}") for i in range(3)])
    out = tmp_path / "eval"
    evaluate = ["evaluate", str(run), "-o", str(out), "--no-progress"]
    fake_llama(1 + len(RUBRICS) + 2)  # the check, one whole sample, two grades of the second
    assert main(evaluate) == 1
    assert seconds_since_crash(tmp_path / "requests.log") < 30, "the grading should stop at once"
    stderr = capsys.readouterr().err
    assert_named_without_reinstall(stderr, "crashed with SIGSEGV during the run, after ")
    assert stderr.count("crashed with SIGSEGV") == 1
    assert [r["id"] for r in read_jsonl(out / "samples.jsonl")] == ["s0"]
    assert read_jsonl(out / "samples.errors.jsonl") == []  # no sample is blamed for the server
    assert not (out / "report.md").exists()  # a report of a third of the samples would mislead

    fake_llama(0)
    requests = tmp_path / "requests.log"
    requests.unlink()
    assert main(evaluate) == 0
    assert sorted(r["id"] for r in read_jsonl(out / "samples.jsonl")) == ["s0", "s1", "s2"]
    assert (out / "report.md").exists()
    # the check, then the interrupted sample's grades but the one answered before the crash, then s2
    assert len(requests.read_text().splitlines()) == 1 + 2 * len(RUBRICS) - 1
