"""The driver of a batch: skips what is done, runs the rest, and is the only writer of every file.

Files beside the output `out.jsonl`: `out.errors.jsonl` (what failed in the latest run: bad input
lines and failed samples; rewritten by each run), `out.summary.json` (the run's figures) and
`out.checkpoints.sqlite` (per-sample LangGraph checkpoints; removed once nothing is left in it),
plus `out.checkpoints.K.sqlite` for worker process K when `workers > 1`, unless the checkpoints go
to Postgres (`BatchOptions.checkpoint`).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import pydantic
from annotated_types import Interval
from pydantic import AfterValidator, ValidationError
from tqdm import tqdm

from aidsafe.batch.endpoints import add_tallies
from aidsafe.batch.engine import (
    EngineRun,
    GraphJob,
    Outcome,
    RecordStatistics,
    run_async,
    run_in_processes,
    run_inline,
)
from aidsafe.batch.estimate import Estimate, dry_run_size, spread_evenly
from aidsafe.batch.files import UnsafeOutput, check_outputs
from aidsafe.batch.inputs import InputProblem, Sample, first_problem
from aidsafe.batch.ledger import Budget, Ledger, SharedLedger, budget_wait, served
from aidsafe.batch.prices import Dollars, PriceError, PriceTable
from aidsafe.batch.stores import CheckpointStore, PostgresUrl, checkpoint_shard, checkpoint_store, existing_shards
from aidsafe.batch.waves import MAX_POLL_SECONDS, Mode, Sleep, WaveSettings, run_waves
from aidsafe.nodes.context import AtLeastOne, AtLeastZero, Seconds
from aidsafe.state.records import ErrorRecord


def _ray_address(value: str) -> str:
    if value == "auto" or re.fullmatch(r"(ray://)?[^\s:/]+:\d+", value):
        return value
    raise ValueError(f"expected auto, host:port or ray://host:port, got {value!r}")


RayAddress = Annotated[str, AfterValidator(_ray_address)]
"""A running Ray cluster, as `ray.init(address=...)` takes it."""


MODE_ALONE = "--mode {mode} runs in this process with SQLite checkpoints: without --engine ray or --checkpoint"


@pydantic.dataclasses.dataclass(kw_only=True)
class BatchOptions:
    """How a batch runs; each field's annotation is its valid range (the CLI's flags check it)."""

    output: Path
    concurrency: AtLeastOne = 1
    rpm: Annotated[float, Interval(gt=0)] | None = None
    workers: AtLeastOne = 1
    progress: bool = True
    reads: tuple[Path, ...] = ()
    """Every path the run reads (inputs, policy file): refused as any of the run's own files."""
    prices: PriceTable | None = None
    """Model prices: each record gets its `cost_usd`, the summary and the progress bar the total."""
    max_cost: Dollars | None = None
    """USD cap on the output's cost (its earlier records included): every model call is paid for
    before it is sent, and none is sent past the cap (`batch/ledger.py`)."""
    engine: Literal["local", "ray"] = "local"
    """`local`: this process, or worker processes; `ray`: Ray actors (see `batch/ray_engine.py`)."""
    ray_address: RayAddress | None = None
    """With `engine="ray"`: `auto`, `host:port` or `ray://host:port` of a running cluster; `None`
    starts a local Ray for the run."""
    checkpoint: PostgresUrl | None = None
    """A `postgresql://` URL for LangGraph's Postgres checkpointer; `None`: SQLite files beside the output."""
    mode: Mode = "online"
    """`online`: one HTTP request per model call; `batch`: the provider's Batch API, in waves, at batch
    prices; `offline`: request files in `out.batches/` for `vllm run-batch` (`batch/waves.py`)."""
    poll_seconds: Seconds = 30.0
    """Batch and offline modes: the first pause between two polls of a wave's batches (it doubles,
    up to ten minutes)."""
    max_batch_requests: AtLeastOne = 50_000
    """Batch and offline modes: requests per file at most (OpenAI's limit)."""
    max_batch_bytes: AtLeastOne = 200_000_000
    """Batch and offline modes: bytes per request file at most (OpenAI's limit: 200 MB)."""
    dry_run: AtLeastZero | None = None
    """Run this many samples of the input for real (0: 20 or 2% of it, whichever is larger), online,
    into a temporary folder, and estimate the whole input's calls, tokens, dollars and time
    (`batch/estimate.py`); nothing is written beside the output."""

    @property
    def errors(self) -> Path:
        return self.output.with_suffix(".errors.jsonl")

    @property
    def summary(self) -> Path:
        return self.output.with_suffix(".summary.json")

    @property
    def checkpoints(self) -> Path:
        return self.output.with_suffix(".checkpoints.sqlite")

    @property
    def batches(self) -> Path:
        """The folder of batch and offline modes' request files (and offline, the results files)."""
        return self.output.with_suffix(".batches")

    def waves(self) -> WaveSettings:
        assert self.mode != "online"
        return WaveSettings(
            self.mode,
            self.batches,
            self.max_batch_requests,
            self.max_batch_bytes,
            self.poll_seconds,
            max(self.poll_seconds, MAX_POLL_SECONDS),
        )

    def writes(self) -> list[Path]:
        """Every file the run may create or replace (the checkpoint shards of any worker count)."""
        shards = {checkpoint_shard(self.checkpoints, k) for k in range(self.workers)}
        if self.checkpoints.parent.is_dir():
            shards |= {checkpoint_shard(self.checkpoints, k) for k in existing_shards(self.checkpoints)}
        wal = [Path(f"{shard}{suffix}") for shard in sorted(shards) for suffix in ("-wal", "-shm")]
        return [self.output, self.errors, self.summary, *sorted(shards), *wal]


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
    cost_usd: float | None = None
    """What this run's model calls cost (failed and unfinished samples included), when the run had prices."""
    output_cost_usd: float | None = None
    """The cost of every record in the output, earlier runs' included, plus this run's failed and
    unfinished samples."""
    max_cost: float | None = None
    stopped_at_cost: bool = False
    """The run stopped at `max_cost`; `unfinished` and `not_started` samples are left for a re-run
    with a higher cap."""
    unfinished: int = 0
    """Samples the cap stopped before one of their calls: checkpointed, a re-run continues them."""
    not_started: int = 0
    deliberation: dict[str, Any] | None = None
    """Deliberation statistics of this run's records (`GraphJob.statistics`), for the graphs that deliberate."""
    mode: str = "online"
    waves: int = 0
    """Batch and offline modes: waves of batches (the last wave's number, earlier runs' included)."""
    batches: int = 0
    """Batches (request files) this run submitted."""
    batch_requests: int = 0
    failed_batch_requests: int = 0
    """Requests that came back without an answer: sent again in the next wave, or their sample failed."""
    dry_run: dict[str, Any] | None = None
    """A dry run's estimate for the whole input (`batch/estimate.py`)."""
    dry_run_text: str = ""
    statistics_text: str = field(default="", metadata={"in_file": False})
    """`deliberation` in words, for the printed summary (not in `summary.json`)."""

    def as_file(self) -> dict[str, Any]:
        """What `out.summary.json` holds."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("in_file", True)}

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.input_errors == 0

    def text(self) -> str:
        if self.dry_run_text:
            return self.dry_run_text
        lines = [
            f"done {self.done}, failed {self.failed}, resumed {self.resumed}, skipped {self.skipped} "
            f"(already in output), input errors {self.input_errors}",
            f"LLM calls {self.llm_calls}, tokens {self.input_tokens} in / {self.output_tokens} out, "
            f"wall time {self.wall_seconds:.1f} s ({self.samples_per_second:.2f} samples/s)",
        ]
        if self.mode != "online":
            lines.append(
                f"{self.mode} mode: {self.waves} waves, {self.batches} batches of {self.batch_requests} requests "
                f"({self.failed_batch_requests} came back without an answer)"
            )
        if self.statistics_text:
            lines.append(self.statistics_text)
        if self.cost_usd is not None:
            lines.append(f"cost ${self.cost_usd:.4f} this run, ${self.output_cost_usd:.4f} for the whole output")
        if self.stopped_at_cost:
            lines.append(
                f"stopped at --max-cost ${self.max_cost:g}: {self.unfinished} samples left unfinished "
                f"(checkpointed), {self.not_started} not started; run again with a higher cap to continue"
            )
        lines += [
            f"endpoint {url}: {seen['calls']} calls, {seen['errors']} errors"
            for url, seen in self.endpoints.items()
            if len(self.endpoints) > 1
        ]
        lines.append(f"output: {self.output}" + (f"\nerrors: {self.errors}" if not self.ok else ""))
        return "\n".join(lines)


@dataclass
class Finished:
    """What the output holds already: its ids, and the cost of the records that have one."""

    ids: set[str] = field(default_factory=set)
    cost_usd: float = 0.0
    priced: int = 0


def finished_records(output: Path, record_type: type[pydantic.BaseModel], kind: str) -> Finished:
    """Ids and costs already in the output: each line must be a record `record_type` validates, or
    the run stops (`UnsafeOutput`) naming the line, with nothing written. A last line cut off by a
    kill mid-write (it starts as this command's lines do and has no line end) is removed, with a
    note, so appending goes on from a valid file."""
    finished = Finished()
    if not output.exists():
        return finished
    cut: int | None = None
    with output.open("rb") as handle:
        complete = 0
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n") and line.startswith(RECORD_START):
                cut = complete
                break
            complete += len(line)
            if not line.strip():
                continue
            try:
                record = record_type.model_validate_json(line)
            except ValidationError as exc:
                raise UnsafeOutput(
                    f"{output}:{number}: not a {kind} record ({first_problem(exc)}); "
                    "the output file holds other data: choose another output name (-o)"
                ) from None
            finished.ids.add(record.id)  # type: ignore[attr-defined]
            cost = getattr(record, "cost_usd", None)
            if cost is not None:
                finished.cost_usd += cost
                finished.priced += 1
    if cut is not None:
        with output.open("rb+") as handle:
            handle.truncate(cut)
        print(
            f"note: {output}: removed a last line cut off by an interrupted write; its sample runs again",
            file=sys.stderr,
        )
    return finished


RECORD_START = b'{"id": '
"""How every line the driver writes begins (`id` is every record's first field)."""


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


async def _run(
    job: GraphJob,
    read: ReadSamples,
    options: BatchOptions,
    sleep: Sleep = asyncio.sleep,
    observe: Callable[[Outcome], None] | None = None,
) -> Summary:
    started = time.monotonic()
    workers = 1 if options.mode != "online" else min(options.workers, options.concurrency)
    summary = Summary(
        output=str(options.output),
        errors=str(options.errors),
        concurrency=options.concurrency,
        workers=workers,
        engine=options.engine,
        mode=options.mode,
    )
    if options.mode != "online":
        if options.engine != "local" or options.checkpoint is not None:
            raise ValueError(MODE_ALONE.format(mode=options.mode))
        settings = job.settings.model_copy(update={"job": {**job.settings.job, "calls": options.mode}})
        job = replace(job, settings=settings)
    check_outputs(options.reads, options.writes())
    options.output.parent.mkdir(parents=True, exist_ok=True)
    store = checkpoint_store(options.checkpoint, options.checkpoints, options.output)
    async with store.lease(options.output):
        job = replace(job, namespace=store.namespace(options.output))
        await _run_leased(job, read, options, store, workers, summary, sleep, observe)
    summary.wall_seconds = time.monotonic() - started
    summary.samples_per_second = (summary.done + summary.failed) / summary.wall_seconds
    options.summary.write_text(json.dumps(summary.as_file(), indent=2) + "\n", encoding="utf-8")
    return summary


class _Recorder:
    """The run's one writer: puts each outcome's line in the output or the errors file, prices it,
    and keeps the summary, the progress bar and the job's statistics up to date."""

    def __init__(
        self,
        output: IO[str],
        errors: IO[str],
        summary: Summary,
        bar: tqdm,
        prices: PriceTable | None,
        ledger: SharedLedger | None,
        statistics: RecordStatistics | None,
        observe: Callable[[Outcome], None] | None,
    ) -> None:
        self.output, self.errors, self.summary, self.bar = output, errors, summary, bar
        self.prices, self.ledger, self.statistics, self.observe = prices, ledger, statistics, observe

    def write(self, outcome: Outcome) -> None:
        summary = self.summary
        if self.observe is not None:
            self.observe(outcome)
        if self.prices is not None:
            self._pay(outcome, self.prices)
        if outcome.stopped:
            summary.unfinished += 1
        elif outcome.record is not None:
            _write_line(self.output, outcome.record)
            summary.done += 1
            if self.statistics is not None:
                self.statistics.add(outcome.record)
        else:
            assert outcome.error is not None
            _write_line(self.errors, outcome.error)
            summary.failed += 1
            self.say(f"failed {outcome.sample_id}: {outcome.error['error']['message']}")
        summary.resumed += outcome.resumed
        summary.llm_calls += outcome.usage["llm_calls"]
        summary.input_tokens += outcome.usage["input_tokens"]
        summary.output_tokens += outcome.usage["output_tokens"]
        add_tallies(summary.endpoints, outcome.endpoints)
        self.note({})
        self.bar.update()

    def note(self, shown: dict[str, object]) -> None:
        """The progress bar's figures: failures, cost so far, and what the engine adds (`shown`)."""
        figures: dict[str, object] = {"failed": self.summary.failed}
        if self.summary.cost_usd is not None:
            figures["cost"] = f"${self.summary.cost_usd:.4f}"
        self.bar.set_postfix({**figures, **shown}, refresh=False)

    def say(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def _pay(self, outcome: Outcome, prices: PriceTable) -> None:
        """Price the outcome: its record's `cost_usd`, the totals, the ledger."""
        summary, ledger = self.summary, self.ledger
        assert summary.cost_usd is not None
        try:
            cost = prices.cost(outcome.usage)
        except PriceError as exc:
            if ledger is not None and not ledger.stopped():
                ledger.stop()
                self.say(f"stopping: --max-cost cannot be kept ({exc})")
            return
        if outcome.record is not None:
            outcome.record["cost_usd"] = round(cost, 8)
        summary.cost_usd += cost
        summary.output_cost_usd = (summary.output_cost_usd or 0.0) + cost
        if ledger is not None and cost > outcome.paid:
            ledger.add(cost - outcome.paid)  # what earlier runs paid for a sample this one finished


def _to_run(read: ReadSamples, skip: set[str], ledger: SharedLedger | None) -> Iterator[Sample]:
    """The input's samples not in `skip` (done, or routed to a worker), until the cap stops the run."""
    for sample in read():
        if isinstance(sample, Sample) and sample.id not in skip:
            if ledger is not None and ledger.stopped():
                return
            yield sample


async def _run_leased(
    job: GraphJob,
    read: ReadSamples,
    options: BatchOptions,
    store: CheckpointStore,
    workers: int,
    summary: Summary,
    sleep: Sleep,
    observe: Callable[[Outcome], None] | None,
) -> None:
    finished = finished_records(options.output, job.record_type, job.name)  # under the lease: it may cut a line
    if options.mode == "batch" and options.prices is not None:  # every call at the provider's batch price
        options = replace(options, prices=options.prices.for_batch())
    if options.prices is not None:
        summary.cost_usd, summary.output_cost_usd, summary.max_cost = 0.0, finished.cost_usd, options.max_cost
    with options.errors.open("w", encoding="utf-8") as errors, ExitStack() as stack:
        unfinished = await store.unfinished(f"{job.name}-")
        plan = _plan(job, read, finished.ids, unfinished, store.sharded, workers, summary, errors)
        await store.delete(plan.stale)  # before the run: during it only workers touch the store
        if options.engine == "ray":
            from aidsafe.batch.ray_engine import RayLedger, ray_session, run_on_ray

            stack.enter_context(ray_session(options.ray_address, workers))
        ledger: SharedLedger | None = None
        shared: SharedLedger
        if options.max_cost is not None and options.mode != "online":
            assert options.prices is not None
            ledger = Ledger(options.max_cost, finished.cost_usd)  # the waves pay for each wave before it goes
        elif options.max_cost is not None:
            assert options.prices is not None
            if options.engine == "ray":
                ledger = shared = stack.enter_context(RayLedger.started(options.max_cost, finished.cost_usd))
            else:
                ledger = shared = Ledger(options.max_cost, finished.cost_usd)
                if workers > 1:
                    shared = stack.enter_context(served(ledger))
            job = replace(job, budget=Budget(shared, options.prices, budget_wait(job.context)))
        statistics = job.statistics() if job.statistics is not None else None
        bar = tqdm(total=plan.pending, unit="sample", disable=not options.progress or not plan.pending, file=sys.stderr)
        with options.output.open("a", encoding="utf-8") as output, bar:
            recorder = _Recorder(output, errors, summary, bar, options.prices, ledger, statistics, observe)
            samples = _to_run(read, finished.ids | plan.routed, ledger)
            run = EngineRun(job, samples, store, options.concurrency, recorder.write, options.rpm, workers, plan.resume)
            if options.mode != "online":
                assert ledger is None or isinstance(ledger, Ledger)
                report = await run_waves(
                    run,
                    options.waves(),
                    ledger=ledger,
                    prices=options.prices,
                    note=recorder.note,
                    say=recorder.say,
                    sleep=sleep,
                )
                summary.waves, summary.batches = report.waves, report.batches
                summary.batch_requests, summary.failed_batch_requests = report.requests, report.failed_requests
            elif options.engine == "ray":
                await run_on_ray(run)
            elif workers > 1:
                await run_in_processes(run)
            else:
                await run_inline(run)
        summary.stopped_at_cost = ledger is not None and ledger.stopped()
    await store.finish()
    if statistics is not None and statistics.samples:
        summary.deliberation, summary.statistics_text = statistics.as_dict(), statistics.text()
    if summary.stopped_at_cost:
        summary.not_started = plan.pending - summary.done - summary.failed - summary.unfinished


def run_batch(job: GraphJob, read: ReadSamples, options: BatchOptions, *, sleep: Sleep = asyncio.sleep) -> Summary:
    """Run a batch to the end; Ctrl-C stops it with every finished record written and the rest
    checkpointed, so the same command resumes. `sleep`: how batch mode waits between polls (tests
    pass a fake clock's)."""
    if options.dry_run is not None:
        return run_async(_dry_run(job, read, options))
    return run_async(_run(job, read, options, sleep))


async def _dry_run(job: GraphJob, read: ReadSamples, options: BatchOptions) -> Summary:
    """Run a sample of the input online into a temporary folder; the summary holds the estimate."""
    assert options.dry_run is not None
    total = sum(1 for item in read() if isinstance(item, Sample))
    chosen = spread_evenly(total, dry_run_size(options.dry_run, total))

    def sample() -> Iterator[Sample | InputProblem]:
        index = 0
        for item in read():
            if isinstance(item, Sample):
                if index in chosen:
                    yield item
                index += 1

    estimate = Estimate(total, options.concurrency)

    def observe(outcome: Outcome) -> None:
        estimate.add(outcome.usage, options.prices, failed=outcome.record is None)

    with tempfile.TemporaryDirectory(prefix="aidsafe-dry-run-") as folder:
        trial = replace(options, output=Path(folder) / options.output.name, dry_run=None, mode="online", max_cost=None)
        summary = await _run(job, sample, trial, observe=observe)
    estimate.wall_seconds = summary.wall_seconds
    summary.output = summary.errors = ""
    summary.dry_run, summary.dry_run_text = estimate.as_dict(), estimate.text()
    return summary
