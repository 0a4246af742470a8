"""`--engine local --workers 2` against `--engine ray` with 2 actors, in one run (a script: it prints figures).

    python benchmarks/scale_out.py                   # concurrency 64, 200 ms per call, 2 rounds of A/B
    python benchmarks/scale_out.py --rounds 3 --seconds 60
    python benchmarks/scale_out.py --checkpoint postgresql://postgres@127.0.0.1:5432/postgres

Both engines run `aidsafe generate` in a subprocess against the throughput benchmark's latency
server (an aiohttp app in its own process), interleaved (local, ray, local, ray, ...) so that the
load of a shared machine falls on both alike; the spread between rounds of one engine is the noise.

- `of ideal` is samples/s between the 10% and the 90% record (after start-up) over the ideal
  `concurrency / (calls per sample x latency)`; `whole run` is the summary's rate, start-up included.
- `start-up s` is the time to the first record minus one sample's ideal time (5 calls x latency).
- `peak RSS` is the largest sum, sampled every 0.2 s, of the RSS of the driver and every process
  it started (worker processes; for Ray its GCS, raylet, agents and actors).

Ray is started by each run (`--engine ray` without `--ray-address`), as a user on one machine
would; processes a run leaves behind are stopped by PID before the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.throughput import LatencyServer, _steady_rate, write_prompts  # noqa: E402
from tests.services import alive, descendants, stop_pids  # noqa: E402

CALLS_PER_SAMPLE = 5


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(status.split("VmRSS:", 1)[1].split()[0])
    return total / 1024


@dataclass
class Run:
    engine: str
    whole: float
    steady: float | None
    startup: float
    peak_rss_mb: float


def run_once(engine: str, inputs: Path, output: Path, server: LatencyServer, args: argparse.Namespace) -> Run:
    flags = ["--engine", engine, "--workers", "2", "--concurrency", str(args.concurrency)]
    if args.checkpoint:
        flags += ["--checkpoint", args.checkpoint]
    command = [
        sys.executable, "-m", "aidsafe.cli.main", "generate", str(inputs), "-o", str(output), "--no-progress",
        "--base-url", server.base_url, "--model", "bench", *flags,
    ]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    marks: list[tuple[float, int]] = []
    seen: set[int] = set()
    peak = 0.0
    with contextlib.ExitStack() as stack:
        handle: IO[bytes] | None = None
        lines = 0
        while process.poll() is None:
            time.sleep(0.2)
            tree = [process.pid, *descendants(process.pid)]
            seen.update(tree)
            peak = max(peak, _rss_mb(tree))
            if handle is None and output.exists():
                handle = stack.enter_context(output.open("rb"))
            if handle is not None:
                lines += handle.read().count(b"\n")
                marks.append((time.monotonic(), lines))
    stop_pids([pid for pid in seen if alive(pid)])  # what outlived the run (Ray's agents), by PID
    if process.returncode != 0:
        raise RuntimeError(f"{engine} run failed with exit code {process.returncode}")
    summary = json.loads(output.with_suffix(".summary.json").read_text())
    first = next((t for t, n in marks if n > 0), started)
    ideal = args.concurrency / (CALLS_PER_SAMPLE * args.latency)
    steady = _steady_rate(marks)
    return Run(
        engine,
        summary["samples_per_second"] / ideal,
        steady / ideal if steady else None,
        first - started - CALLS_PER_SAMPLE * args.latency,
        peak,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2, help="Seconds per model call (default 0.2).")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0, help="Ideal duration of each run (default 60).")
    parser.add_argument("--rounds", type=int, default=2, help="A/B pairs, interleaved (default 2).")
    parser.add_argument("--checkpoint", default=None, help="A postgresql:// URL for both engines (default: SQLite).")
    args = parser.parse_args()
    samples = int(args.concurrency * args.seconds / (CALLS_PER_SAMPLE * args.latency))
    print(
        f"{samples} samples per run, concurrency {args.concurrency}, {args.latency * 1000:.0f} ms per call, "
        f"2 workers, checkpoints: {'Postgres' if args.checkpoint else 'SQLite'}; "
        f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"{'round':>5} {'engine':>6} {'of ideal':>9} {'whole run':>10} {'start-up s':>11} {'peak RSS MB':>12}")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="aidsafe-scale-") as tmp, LatencyServer(args.latency) as server:
        inputs = Path(tmp) / "in.jsonl"
        write_prompts(inputs, samples)
        for number in range(1, args.rounds + 1):
            for engine in ("local", "ray"):
                run = run_once(engine, inputs, Path(tmp) / f"{engine}{number}.jsonl", server, args)
                runs.append(run)
                steady = f"{run.steady:.2f}" if run.steady else "n/a"
                print(
                    f"{number:>5} {engine:>6} {steady:>9} {run.whole:>10.2f} {run.startup:>11.1f} "
                    f"{run.peak_rss_mb:>12.0f}",
                    flush=True,
                )
    for engine in ("local", "ray"):
        mine = [r for r in runs if r.engine == engine]
        steady = [r.steady for r in mine if r.steady]
        spread = f" (min {min(steady):.2f}, max {max(steady):.2f})" if steady else ""
        print(
            f"{engine}: of ideal {statistics.mean(steady) if steady else float('nan'):.2f}{spread}, "
            f"start-up {statistics.mean(r.startup for r in mine):.1f} s, "
            f"peak RSS {statistics.mean(r.peak_rss_mb for r in mine):.0f} MB"
        )
    local = [r.steady for r in runs if r.engine == "local" and r.steady]
    ray = [r.steady for r in runs if r.engine == "ray" and r.steady]
    if local and ray:
        print(f"ray / local after start-up: {statistics.mean(ray) / statistics.mean(local):.2f} (target >= 0.90)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
