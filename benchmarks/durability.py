"""Checkpoint durability `async` (LangGraph's default) against `sync` (aidsafe's): what each costs in
throughput and what a kill -9 of the driver costs in model calls paid again (a script: it prints figures).

    python benchmarks/durability.py                     # local, --workers 2, ray; SQLite and Postgres; 2 rounds
    python benchmarks/durability.py --engines local --stores sqlite --rounds 1

Every run is `aidsafe generate` in a subprocess against the throughput benchmark's latency server
(200 ms per call, requests counted at the server), with `AIDSAFE_CHECKPOINT_DURABILITY` set for the
driver and every worker and actor it starts. Postgres is a throwaway server on 127.0.0.1 started
as the tests start theirs (`fsync=off`: the figures are the client's, not the disk's). For each
engine and store, async and sync alternate within each round, so the load of a shared machine falls
on both alike; the spread between rounds of one setting is the noise.

- `of ideal`: samples/s between the 10% and the 90% record over the ideal
  `concurrency / (calls per sample x latency)`, at `--concurrency` (default 64).
- `paid again`: a run of `--kill-samples` samples at concurrency 16 is killed (SIGKILL, the driver
  only, as a crash or the OOM killer would) once the server has seen `--kill-at` requests, when
  the first samples are written and the later ones are mid-way; its workers or actors are left to
  leave by themselves. Then the same command runs to the end. Paid again = requests of the killed
  run + requests of the re-run - requests of one clean run of the same input. The samples in
  flight at the kill are 16, so the bound aidsafe promises is 16.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.throughput import LatencyServer, _steady_rate, record_marks, write_prompts  # noqa: E402
from tests.services import alive, descendants, postgres_server, stop_pids  # noqa: E402

CALLS_PER_SAMPLE = 5
KILL_CONCURRENCY = 16
ENGINES = {
    "local": ["--workers", "1"],
    "workers2": ["--workers", "2"],
    "ray": ["--engine", "ray", "--workers", "2"],
}
MODES = ("async", "sync")


@dataclass
class Figures:
    engine: str
    store: str
    mode: str
    of_ideal: float | None
    paid_again: int
    resumed: int


class Runner:
    """Runs `aidsafe generate` with one engine, store and durability; counts requests at `server`."""

    def __init__(self, server: LatencyServer, workdir: Path, checkpoint: str | None) -> None:
        self.server, self.workdir, self.checkpoint = server, workdir, checkpoint
        self.runs = 0

    def command(self, engine: str, inputs: Path, output: Path, concurrency: int) -> list[str]:
        flags = [*ENGINES[engine], "--concurrency", str(concurrency)]
        if self.checkpoint:
            flags += ["--checkpoint", self.checkpoint]
        return [
            sys.executable, "-m", "aidsafe.cli.main", "generate", str(inputs), "-o", str(output), "--no-progress",
            "--base-url", self.server.base_url, "--model", "bench", *flags,
        ]  # fmt: skip

    def output(self) -> Path:
        self.runs += 1
        return self.workdir / f"run{self.runs}.jsonl"

    @contextlib.contextmanager
    def process(self, command: list[str], mode: str) -> Iterator[subprocess.Popen[bytes]]:
        """The run, its every process stopped by PID at the end (what a local Ray leaves behind)."""
        env = {**os.environ, "AIDSAFE_CHECKPOINT_DURABILITY": mode}
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen: set[int] = {process.pid}
        try:
            yield process
        finally:
            seen.update(descendants(process.pid))
            stop_pids([pid for pid in seen if pid != process.pid and alive(pid)])
            if process.poll() is None:
                process.kill()
            process.wait()

    def finish(self, command: list[str], mode: str) -> None:
        with self.process(command, mode) as process:
            if process.wait() != 0:
                assert process.stderr is not None
                raise RuntimeError(f"{command} failed: {process.stderr.read().decode()[-2000:]}")

    def throughput(self, engine: str, mode: str, inputs: Path, concurrency: int, latency: float) -> float | None:
        output = self.output()
        with self.process(self.command(engine, inputs, output, concurrency), mode) as process:
            marks = record_marks(process, output, every=0.1)
            if process.returncode != 0:
                raise RuntimeError(f"{engine} {mode} failed with exit code {process.returncode}")
        steady = _steady_rate(marks)
        return steady / (concurrency / (CALLS_PER_SAMPLE * latency)) if steady else None

    def clean_calls(self, engine: str, inputs: Path) -> int:
        before = self.server.counter.value
        self.finish(self.command(engine, inputs, self.output(), KILL_CONCURRENCY), "sync")
        return int(self.server.counter.value - before)

    def quiet(self, seconds: float = 3.0, timeout: float = 90.0) -> None:
        """Until no request came for `seconds`: a dead driver's workers or actors have stopped calling."""
        deadline = time.monotonic() + timeout
        last, since = self.server.counter.value, time.monotonic()
        while time.monotonic() - since < seconds and time.monotonic() < deadline:
            time.sleep(0.1)
            if self.server.counter.value != last:
                last, since = self.server.counter.value, time.monotonic()

    def paid_again(self, engine: str, mode: str, inputs: Path, kill_at: int, clean: int) -> tuple[int, int]:
        """Calls paid again after a kill -9 of the driver at `kill_at` requests; samples resumed."""
        output = self.output()
        command = self.command(engine, inputs, output, KILL_CONCURRENCY)
        before = self.server.counter.value
        with self.process(command, mode) as process:
            while self.server.counter.value - before < kill_at:
                if process.poll() is not None:
                    raise RuntimeError(f"{engine} {mode} ended before the kill (exit code {process.returncode})")
                time.sleep(0.002)
            tree = descendants(process.pid)
            process.kill()  # SIGKILL, the driver only
            process.wait()
            self.quiet()  # its workers or actors leave by themselves; what they call until then counts
            stop_pids([pid for pid in tree if alive(pid)])  # what a local Ray leaves behind
        self.finish(command, mode)
        ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
        expected = [json.loads(line)["id"] for line in inputs.read_text().splitlines()]
        if sorted(ids) != sorted(expected):
            raise RuntimeError(f"{engine} {mode}: the output does not hold every sample exactly once")
        resumed = json.loads(output.with_suffix(".summary.json").read_text())["resumed"]
        return int(self.server.counter.value - before - clean), int(resumed)


def bench_store(store: str, args: argparse.Namespace, workdir: Path, server: LatencyServer) -> list[Figures]:
    figures: list[Figures] = []
    with contextlib.ExitStack() as stack:
        checkpoint = stack.enter_context(postgres_server()) if store == "postgres" else None
        runner = Runner(server, workdir, checkpoint)
        big, small = workdir / "throughput.jsonl", workdir / "kill.jsonl"
        write_prompts(big, int(args.concurrency * args.seconds / (CALLS_PER_SAMPLE * args.latency)))
        write_prompts(small, args.kill_samples)
        for engine in args.engines:
            clean = runner.clean_calls(engine, small)
            for number in range(1, args.rounds + 1):
                for mode in MODES if number % 2 else MODES[::-1]:
                    of_ideal = runner.throughput(engine, mode, big, args.concurrency, args.latency)
                    paid, resumed = runner.paid_again(engine, mode, small, args.kill_at, clean)
                    figures.append(Figures(engine, store, mode, of_ideal, paid, resumed))
                    shown = f"{of_ideal:.2f}" if of_ideal else "n/a"
                    print(
                        f"{number:>5} {engine:>9} {store:>8} {mode:>6} {shown:>9} {paid:>11} {resumed:>8}", flush=True
                    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--rounds", type=int, default=2, help="async/sync pairs per engine and store (default 2).")
    parser.add_argument("--latency", type=float, default=0.2, help="Seconds per model call (default 0.2).")
    parser.add_argument("--concurrency", type=int, default=64, help="Of the throughput runs (default 64).")
    parser.add_argument("--seconds", type=float, default=20.0, help="Ideal duration of a throughput run (default 20).")
    parser.add_argument("--kill-samples", type=int, default=64, help="Samples of a kill run (default 64).")
    parser.add_argument(
        "--kill-at", type=int, default=120, help="Requests seen at the server before the kill (default 120)."
    )
    args = parser.parse_args()
    print(
        f"throughput: concurrency {args.concurrency}, {args.latency * 1000:.0f} ms per call; kill: "
        f"{args.kill_samples} samples, {KILL_CONCURRENCY} in flight, SIGKILL at {args.kill_at} requests; "
        f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"{'round':>5} {'engine':>9} {'store':>8} {'mode':>6} {'of ideal':>9} {'paid again':>11} {'resumed':>8}")
    figures: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="aidsafe-durability-") as tmp, LatencyServer(args.latency) as server:
        for store in args.stores:
            (Path(tmp) / store).mkdir()
            figures += bench_store(store, args, Path(tmp) / store, server)
    print("mean per engine and store (min-max over rounds):")
    for engine in args.engines:
        for store in args.stores:
            line = []
            for mode in MODES:
                mine = [f for f in figures if (f.engine, f.store, f.mode) == (engine, store, mode)]
                rates = [f.of_ideal for f in mine if f.of_ideal]
                paid = [f.paid_again for f in mine]
                rate = f"{statistics.mean(rates):.2f} ({min(rates):.2f}-{max(rates):.2f})" if rates else "n/a"
                again = f"{statistics.mean(paid):.1f} ({min(paid)}-{max(paid)})"
                line.append(f"{mode}: of ideal {rate}, paid again {again}")
            print(f"{engine:>9} {store:>8}  " + "; ".join(line))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
