"""Throughput and memory of `aidsafe generate` (a script, not a test: it prints figures).

    python benchmarks/throughput.py                      # concurrency 1, 8, 64 at 200 ms, ~156 s each
    python benchmarks/throughput.py --workers 3          # the same with three worker processes
    python benchmarks/throughput.py --capped             # under a --max-cost never reached: the ledger's cost
    python benchmarks/throughput.py --rss 10000          # peak RSS over a 10,000-prompt input
    python benchmarks/throughput.py --embedded 5         # samples/min on the embedded model

The model server is an aiohttp app on 127.0.0.1 in its own process that answers every chat
completion with schema-valid JSON after a fixed latency, so the client is what is measured.
Measured with a raw aiohttp client, 640 calls at concurrency 64 and 200 ms (ideal 2.0 s): this
server 2.1 s; the tests' `http.server` stub (threads, listen backlog 5) 9.7 s, with little CPU:
connections wait in its accept queue, so it is unfit for throughput figures.
Ideal throughput is `concurrency / (calls per sample x latency)`. `samples/s` is the whole run as
the summary reports it, worker start-up included; `steady/s` counts the records written between
the 10% and the 90% mark, which is what a long batch sees. Every figure is noisy on a shared
2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes import schema_answer  # noqa: E402


def _serve(port: int, latency: float, counter: Any) -> None:
    from aiohttp import web

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        with counter.get_lock():
            counter.value += 1
        await asyncio.sleep(latency)
        return web.json_response(
            {
                "id": "bench",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "bench"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": schema_answer(body)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)


class LatencyServer:
    def __init__(self, latency: float) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.counter: Any = multiprocessing.get_context("spawn").Value("i", 0)
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.port, latency, self.counter), daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LatencyServer:
        self.process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("latency server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()  # by PID
        self.process.join()

    def cpu_seconds(self) -> float:
        """User + system CPU of the server so far: it shares the cores with the client it serves."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


BATCH_SECONDS = 156.25
"""The default ideal duration per level: a 10,000-prompt batch at concurrency 64 and 200 ms, the
size of a real run (and of the memory target). Worker start-up (~1.2 s) is in every whole-run
figure; a short run overstates its share."""


def write_prompts(path: Path, count: int) -> None:
    with path.open("w") as handle:
        for index in range(count):
            handle.write(
                json.dumps({"id": f"p{index}", "prompt": f"Benchmark prompt number {index}: how do I ...?"}) + "\n"
            )


@dataclass
class Run:
    summary: dict[str, Any]
    cpu_seconds: float
    """User + system CPU of `aidsafe generate` and its workers, start-up included."""
    peak_rss_mb: float
    """Of the largest single process (driver or worker)."""
    steady_rate: float | None
    """Samples/s between the 10% and the 90% record: without start-up and the last stragglers."""


def _steady_rate(marks: list[tuple[float, int]]) -> float | None:
    total = marks[-1][1] if marks else 0
    first = next((m for m in marks if m[1] >= 0.1 * total), None)
    last = next((m for m in marks if m[1] >= 0.9 * total), None)
    if not total or first is None or last is None or last[0] <= first[0]:
        return None
    return (last[1] - first[1]) / (last[0] - first[0])


def record_marks(process: subprocess.Popen[bytes], output: Path, every: float = 0.05) -> list[tuple[float, int]]:
    """(time, records written so far) every `every` s until `process` exits, for `_steady_rate`."""
    marks: list[tuple[float, int]] = []
    with contextlib.ExitStack() as stack:
        handle: IO[bytes] | None = None
        lines = 0
        while process.poll() is None:
            time.sleep(every)
            if handle is None and output.exists():
                handle = stack.enter_context(output.open("rb"))
            if handle is not None:  # only the bytes written since the last look: it shares the cores
                lines += handle.read().count(b"\n")
                marks.append((time.monotonic(), lines))
    return marks


def generate(inputs: Path, output: Path, *extra: str) -> Run:
    """Run `aidsafe generate` in a subprocess, as a user would, counting output lines as they come."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        sys.executable,
        "-m",
        "aidsafe.cli.main",
        "generate",
        str(inputs),
        "-o",
        str(output),
        "--no-progress",
        *extra,
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    marks = record_marks(process, output)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    summary = json.loads(output.with_suffix(".summary.json").read_text())
    return Run(summary, cpu, after.ru_maxrss / 1024, _steady_rate(marks))


def run_flags(args: argparse.Namespace) -> list[str]:
    """`--workers` and, with `--capped`, prices and a cap."""
    flags = ["--workers", str(args.workers)] if args.workers else []
    return flags + (["--input-price", "1", "--output-price", "1", "--max-cost", "1000000"] if args.capped else [])


def throughput(args: argparse.Namespace, workdir: Path) -> None:
    calls_per_sample = 5  # the stub's answers reach consensus in round 1: 2 initializer + 2 deliberators + refiner
    workers = args.workers or "aidsafe's default"
    print(f"latency {args.latency * 1000:.0f} ms per call, {calls_per_sample} calls per sample, workers: {workers}")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    header = f"{'concurrency':>11} {'workers':>7} {'samples':>8} {'ideal/s':>8} {'samples/s':>10} {'of ideal':>9}"
    print(f"{header} {'steady/s':>9} {'of ideal':>9} {'CPU ms/call':>12} {'server ms/call':>15}")
    with LatencyServer(args.latency) as server:
        for concurrency in args.concurrency:
            samples = max(10, int(concurrency * args.seconds / (calls_per_sample * args.latency)))
            inputs, output = workdir / f"c{concurrency}.jsonl", workdir / f"c{concurrency}.out.jsonl"
            write_prompts(inputs, samples)
            server_cpu = server.cpu_seconds()
            run = generate(
                inputs,
                output,
                "--base-url", server.base_url, "--model", "bench",
                "--concurrency", str(concurrency), *run_flags(args),
            )  # fmt: skip
            ideal = concurrency / (calls_per_sample * args.latency)
            rate = run.summary["samples_per_second"]
            calls = max(1, run.summary["llm_calls"])
            cpu_per_call = 1000 * run.cpu_seconds / calls
            server_per_call = 1000 * (server.cpu_seconds() - server_cpu) / calls
            steady = run.steady_rate or float("nan")
            print(
                f"{concurrency:>11} {run.summary['workers']:>7} {run.summary['done']:>8} {ideal:>8.2f} {rate:>10.2f} "
                f"{rate / ideal:>9.2f} {steady:>9.2f} {steady / ideal:>9.2f} {cpu_per_call:>12.1f} "
                f"{server_per_call:>15.1f}"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def rss(args: argparse.Namespace, workdir: Path) -> None:
    inputs, output = workdir / "rss.jsonl", workdir / "rss.out.jsonl"
    write_prompts(inputs, args.rss)
    with LatencyServer(0.0) as server:
        run = generate(
            inputs, output, "--base-url", server.base_url, "--model", "bench",
            "--concurrency", "64", *run_flags(args),
        )  # fmt: skip
    print(
        f"{args.rss} prompts: done {run.summary['done']}, failed {run.summary['failed']}, "
        f"{run.summary['wall_seconds']:.0f} s, peak RSS {run.peak_rss_mb:.0f} MB (largest single process)"
    )


def embedded(args: argparse.Namespace, workdir: Path) -> None:
    output = workdir / "embedded.out.jsonl"
    summary = generate(ROOT / "examples" / "prompts.jsonl", output, "--limit", str(args.embedded)).summary
    per_sample = summary["llm_calls"] / max(1, summary["done"] + summary["failed"])
    print(
        f"embedded SmolLM2-135M, {os.cpu_count()} cores: done {summary['done']}, failed {summary['failed']}, "
        f"{60 * summary['samples_per_second']:.2f} samples/min, {per_sample:.1f} LLM calls and "
        f"{(summary['input_tokens'] + summary['output_tokens']) / max(1, summary['done']):.0f} tokens per sample"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2, help="Seconds per model call (default 0.2).")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument(
        "--seconds",
        type=float,
        default=BATCH_SECONDS,
        help="Ideal duration of each level, which sets its sample count (default: 10,000 prompts at concurrency 64).",
    )
    parser.add_argument("--workers", type=int, default=None, help="Default: what aidsafe picks for the concurrency.")
    parser.add_argument(
        "--capped",
        action="store_true",
        help="Price the calls under a --max-cost the run never reaches: every call reserves and settles.",
    )
    parser.add_argument("--rss", type=int, default=0, help="Prompts for the peak-RSS run (0: skip).")
    parser.add_argument("--embedded", type=int, default=0, help="Prompts for the embedded-model run (0: skip).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aidsafe-bench-") as tmp:
        workdir = Path(tmp)
        if args.embedded:
            embedded(args, workdir)
        elif args.rss:
            rss(args, workdir)
        else:
            throughput(args, workdir)


if __name__ == "__main__":
    main()
