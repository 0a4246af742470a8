"""The driver of a batch: skips what is done, runs the rest, and is the only writer of every file.

Files beside the output `out.jsonl`: `out.errors.jsonl` (what failed in the latest run: bad input
lines and failed samples; rewritten by each run), `out.summary.json` (the run's figures) and
`out.checkpoints.sqlite` (per-sample LangGraph checkpoints; removed once nothing is left in it),
plus `out.checkpoints.K.sqlite` for worker process K when `workers > 1`, unless the checkpoints go
to Postgres (`BatchOptions.checkpoint`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

from tqdm import tqdm

from aidsafe.batch.endpoints import add_tallies
from aidsafe.batch.engine import GraphJob, Outcome, run_async, run_in_processes, run_inline
from aidsafe.batch.inputs import InputProblem, Sample
from aidsafe.batch.stores import CheckpointStore, checkpoint_store
from aidsafe.state.records import ErrorRecord


@dataclass
class BatchOptions:
    output: Path
    concurrency: int = 1
    rpm: float | None = None
    workers: int = 1
    progress: bool = True
    engine: Literal["local", "ray"] = "local"
    """`local`: this process, or worker processes; `ray`: Ray actors (see `batch/ray_engine.py`)."""
    ray_address: str | None = None
    """With `engine="ray"`: `auto`, `host:port` or `ray://host:port` of a running cluster; `None`
    starts a local Ray for the run."""
    checkpoint: str | None = None
    """A `postgresql://` URL for LangGraph's Postgres checkpointer; `None`: SQLite files beside the output."""

    @property
    def errors(self) -> Path:
        return self.output.with_suffix(".errors.jsonl")

    @property
    def summary(self) -> Path:
        return self.output.with_suffix(".summary.json")

    @property
    def checkpoints(self) -> Path:
        return self.output.with_suffix(".checkpoints.sqlite")


@dataclass
class Summary:
    output: str
    errors: str
    concurrency: int = 1
    workers: int = 1
    """Worker processes or Ray actors (1 and engine `local`: the batch ran in the main process)."""
    engine: str = "local"
    endpoints: dict[str, dict[str, int]] = field(default_factory=dict)
    """Model calls and errors per endpoint URL."""
    done: int = 0
    """Records written by this run."""
    failed: int = 0
    """Samples that ended in an error (in the errors file; a re-run retries them)."""
    resumed: int = 0
    """Samples of this run that continued from a checkpoint of an interrupted run."""
    skipped: int = 0
    """Samples already in the output file from an earlier run."""
    input_errors: int = 0
    """Input lines or files that could not become samples."""
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    wall_seconds: float = 0.0
    samples_per_second: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.input_errors == 0

    def text(self) -> str:
        return (
            f"done {self.done}, failed {self.failed}, resumed {self.resumed}, skipped {self.skipped} "
            f"(already in output), input errors {self.input_errors}\n"
            f"LLM calls {self.llm_calls}, tokens {self.input_tokens} in / {self.output_tokens} out, "
            f"wall time {self.wall_seconds:.1f} s ({self.samples_per_second:.2f} samples/s)\n"
            + "".join(
                f"endpoint {url}: {seen['calls']} calls, {seen['errors']} errors\n"
                for url, seen in self.endpoints.items()
                if len(self.endpoints) > 1
            )
            + f"output: {self.output}"
            + (f"\nerrors: {self.errors}" if not self.ok else "")
        )


def finished_ids(output: Path) -> set[str]:
    """Ids already in the output, read line by line. A last line cut off by a kill mid-write is
    removed first, so appending goes on from a valid file."""
    ids: set[str] = set()
    if not output.exists():
        return ids
    with output.open("rb+") as handle:
        complete = 0
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                handle.truncate(complete)
                break
            complete += len(line)
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                print(f"warning: {output}:{number} is not a record; ignored", file=sys.stderr)
    return ids


def _write_line(handle: IO[str], data: dict[str, Any]) -> None:
    """One write and a flush per record: a kill leaves whole lines, at most the last one cut."""
    handle.write(json.dumps(data, ensure_ascii=False) + "\n")
    handle.flush()


ReadSamples = Callable[[], Iterator[Sample | InputProblem]]
"""Reads the input from the start each time: the driver counts first (for the ETA), then runs."""


@dataclass
class _Plan:
    pending: int = 0
    """Samples to run (for the ETA)."""
    resume: dict[int, list[Sample]] = field(default_factory=dict)
    """Samples a worker's shard holds from an interrupted run: that worker continues them first."""
    stale: list[tuple[str, int]] = field(default_factory=list)
    """Threads to prune before the run: `(thread id, shard)`."""

    @property
    def routed(self) -> set[str]:
        """Ids handed to a worker by `resume`, kept out of the shared stream."""
        return {sample.id for samples in self.resume.values() for sample in samples}


def _plan(
    job: GraphJob,
    read: ReadSamples,
    done_ids: set[str],
    unfinished: dict[str, int],
    sharded: bool,
    workers: int,
    summary: Summary,
    errors: IO[str],
) -> _Plan:
    """One pass over the input: report bad lines, count what is left, route checkpointed samples.

    `unfinished` maps the thread of every checkpointed sample to its shard. A thread whose sample is
    already in the output (killed between the write and the prune) is pruned. With `sharded`
    checkpoints, a thread in a shard no worker of this run owns (an earlier run had more workers)
    is dropped, and its sample starts over; a shared store needs no routing.
    """
    plan, restarted = _Plan(), 0
    for item in read():
        if isinstance(item, InputProblem):
            summary.input_errors += 1
            print(f"input error: {item}", file=sys.stderr)
            problem = ErrorRecord(id=item.id, error={"node": "input", "message": str(item)}, prompt=item.prompt)
            _write_line(errors, problem.model_dump(mode="json"))
            continue
        thread_id = job.thread_id(item)
        shard = unfinished.get(thread_id)
        if item.id in done_ids:
            summary.skipped += 1
            if shard is not None:
                plan.stale.append((thread_id, shard))
            continue
        plan.pending += 1
        if shard is None or not sharded:
            continue
        if shard >= workers:
            plan.stale.append((thread_id, shard))
            restarted += 1
        elif workers > 1:
            plan.resume.setdefault(shard, []).append(item)
    if restarted:
        print(
            f"note: {restarted} half-finished samples were checkpointed by a run with more workers; "
            "they start over (re-run with the same --workers to continue them instead)",
            file=sys.stderr,
        )
    return plan


async def _run(job: GraphJob, read: ReadSamples, options: BatchOptions) -> Summary:
    started = time.monotonic()
    workers = min(options.workers, options.concurrency)
    summary = Summary(
        output=str(options.output),
        errors=str(options.errors),
        concurrency=options.concurrency,
        workers=workers,
        engine=options.engine,
    )
    options.output.parent.mkdir(parents=True, exist_ok=True)
    store = checkpoint_store(options.checkpoint, options.checkpoints, options.output)
    async with store.lease(options.output):
        job = replace(job, namespace=store.namespace(options.output))
        await _run_leased(job, read, options, store, workers, summary)
    summary.wall_seconds = time.monotonic() - started
    summary.samples_per_second = (summary.done + summary.failed) / summary.wall_seconds
    options.summary.write_text(json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8")
    return summary


async def _run_leased(
    job: GraphJob, read: ReadSamples, options: BatchOptions, store: CheckpointStore, workers: int, summary: Summary
) -> None:
    done_ids = finished_ids(options.output)
    with options.errors.open("w", encoding="utf-8") as errors:
        unfinished = await store.unfinished(f"{job.name}-")
        plan = _plan(job, read, done_ids, unfinished, store.sharded, workers, summary, errors)
        await store.delete(plan.stale)  # before the run: during it only workers touch the store
        routed = plan.routed

        def todo() -> Iterator[Sample]:
            return (s for s in read() if isinstance(s, Sample) and s.id not in done_ids and s.id not in routed)

        bar = tqdm(total=plan.pending, unit="sample", disable=not options.progress or not plan.pending, file=sys.stderr)
        with options.output.open("a", encoding="utf-8") as output, bar:

            def write(outcome: Outcome) -> None:
                if outcome.record is not None:
                    _write_line(output, outcome.record)
                    summary.done += 1
                else:
                    assert outcome.error is not None
                    _write_line(errors, outcome.error)
                    summary.failed += 1
                    bar.write(f"failed {outcome.sample_id}: {outcome.error['error']['message']}", file=sys.stderr)
                summary.resumed += outcome.resumed
                summary.llm_calls += outcome.usage["llm_calls"]
                summary.input_tokens += outcome.usage["input_tokens"]
                summary.output_tokens += outcome.usage["output_tokens"]
                add_tallies(summary.endpoints, outcome.endpoints)
                bar.set_postfix(failed=summary.failed, refresh=False)
                bar.update()

            if options.engine == "ray":
                from aidsafe.batch.ray_engine import run_on_ray

                await run_on_ray(
                    job,
                    todo(),
                    store,
                    options.concurrency,
                    options.rpm,
                    workers,
                    plan.resume,
                    write,
                    options.ray_address,
                )
            elif workers > 1:
                await run_in_processes(
                    job, todo(), store, options.concurrency, options.rpm, workers, plan.resume, write
                )
            else:
                await run_inline(job, todo(), store, options.concurrency, options.rpm, write)
    await store.finish()


def run_batch(job: GraphJob, read: ReadSamples, options: BatchOptions) -> Summary:
    """Run a batch to the end; Ctrl-C stops it with every finished record written and the rest
    checkpointed, so the same command resumes."""
    return run_async(_run(job, read, options))
