"""The batch engine: one self-contained async function per sample, a driver that alone writes files.

`run_sample` takes a sample and returns its outcome (a record or an error), resuming from the
sample's own LangGraph checkpoint thread when an earlier run was interrupted. Because it needs
nothing but the job and a checkpointer, the same function runs in this process or in worker
processes (`workers > 1`), each with its own SQLite checkpoint file (a shard), that send outcomes
back to the driver. The driver writes each record as it arrives (one line, flushed); only then is
its thread pruned, by the process that owns the shard. So a run killed at any moment leaves a
valid file, and a re-run neither loses nor repeats a sample.

A job (`GraphJob`) is what a subcommand plugs in: a graph builder, the run context, how a sample
becomes graph input, and how a finished state becomes a record. `generate` and `prefer` differ
only there.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, get_args

from aiolimiter import AsyncLimiter
from langchain_core.language_models import BaseChatModel
from langchain_core.rate_limiters import BaseRateLimiter
from langgraph.types import Durability
from pydantic import BaseModel, ValidationError

from aidsafe.batch.endpoints import BalancedClient, EndpointTally, endpoint_groups, endpoint_tally
from aidsafe.batch.inputs import Sample
from aidsafe.batch.ledger import Budget, Purse
from aidsafe.batch.settings import RunSettings
from aidsafe.embedded.llama_server import EmbeddedServerDied
from aidsafe.nodes.context import Context
from aidsafe.nodes.llm import SPENDING, CostCapReached, ask_servers, openai_compatible_model
from aidsafe.state.deliberation import Usage, no_usage
from aidsafe.state.records import ErrorRecord

if TYPE_CHECKING:
    from aidsafe.batch.stores import CheckpointStore

T = TypeVar("T")

CHECKPOINT_DURABILITY: Durability = "sync"
"""When LangGraph writes a sample's checkpoint, for every engine and store: `"sync"`, before the next
node starts, so no model call starts while the answer before it is unsaved and a kill pays again
only the calls in flight. LangGraph's default, `"async"`, writes while the next node runs: on Postgres
the writes of one process queue behind one another (the saver runs one statement at a time) and a
kill lost the answers still queued. What each costs and saves: `benchmarks/durability.py` (figures
in docs/scale-out.md, "What a crash costs"), whose A/B sets `AIDSAFE_CHECKPOINT_DURABILITY` (read
by every worker and actor) to compare another."""


def checkpoint_durability() -> Durability:
    """`CHECKPOINT_DURABILITY`, or the benchmark's `AIDSAFE_CHECKPOINT_DURABILITY` when set."""
    chosen = os.environ.get("AIDSAFE_CHECKPOINT_DURABILITY", CHECKPOINT_DURABILITY)
    if chosen not in get_args(Durability):
        raise ValueError(f"AIDSAFE_CHECKPOINT_DURABILITY must be one of {get_args(Durability)}, not {chosen!r}")
    return cast(Durability, chosen)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run a batch's event loop on uvloop where it exists (not on Windows), with a lighter GC.

    Client work per model call decides throughput at high concurrency. uvloop makes the loop's
    own share of it (callbacks, sockets, aiosqlite's thread wake-ups) several times cheaper.
    Python's cyclic GC spent a visible share of a worker's time (benchmarks/client_profile.py), most of it
    re-scanning the libraries' objects that live as long as the process: they are frozen out of
    collection, and young objects (nearly all freed by reference counting anyway) are collected
    every 20,000 net allocations, not 700. No full collection comes first: it cost a third of a
    second per run in a process that has imported everything, and what garbage it would have freed
    is frozen only until the run ends.
    """
    run: Callable[[Coroutine[Any, Any, T]], T]
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000)
    try:
        return run(main)
    finally:  # the caller may be a notebook that lives on
        gc.unfreeze()
        gc.set_threshold(*threshold)


class RecordStatistics(Protocol):
    """Figures a job keeps over the records of a run for its summary (`metrics.deliberation`'s
    `DeliberationStats` for the graphs that deliberate): the driver only counts and prints them."""

    samples: int

    def add(self, record: dict[str, Any]) -> None: ...

    def as_dict(self) -> dict[str, Any]: ...

    def text(self) -> str: ...


@dataclass(frozen=True)
class GraphJob:
    """What a subcommand runs over a batch. Picklable, so worker processes can rebuild the graph.

    `build(checkpointer=..., model=...)` compiles the graph; `to_record(sample, final_state, job)`
    is the record-building callback. A final state with a non-empty `error` is a failed sample.
    `settings` holds every setting that changes the result; its fingerprint is part of each thread
    id, so a changed setting never resumes from a checkpoint made with another.
    """

    name: str
    build: Callable[..., Any]
    context: dict[str, Any]
    to_input: Callable[[Sample], dict[str, Any]]
    to_record: Callable[[Sample, dict[str, Any], GraphJob], BaseModel]
    record_type: type[BaseModel]
    """What `to_record` returns: a line of an existing output is trusted only when it validates."""
    settings: RunSettings
    model: BaseChatModel | None = None
    """A chat model that replaces the HTTP client for every role (tests, custom providers)."""
    run_config: dict[str, Any] = field(default_factory=dict)
    """Merged into every sample's run config, e.g. `max_concurrency` for the calls of one sample."""
    namespace: str = ""
    """Set by the driver for a checkpoint store that several outputs share (`CheckpointStore.namespace`)."""
    budget: Budget | None = None
    """Set by the driver under `--max-cost`: every model call is paid for from it before it is sent."""
    statistics: Callable[[], RecordStatistics] | None = None
    """Makes the figures kept over the run's records (the summary's `deliberation`), if any."""

    @cached_property
    def run_context(self) -> Context:
        """`context` validated once, with the policy set the run started with: every node of every
        sample reads this one `Context` (a dict would be validated again at each node, and its
        policy file read again, edits and all)."""
        ctx = Context(**self.context)
        ctx.policies = self.settings.policies
        return ctx

    def thread_id(self, sample: Sample) -> str:
        parts = [self.name, self.settings.fingerprint, sample.id, sample.checkpoint_key()]
        key = json.dumps([*parts, self.namespace] if self.namespace else parts, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


@dataclass
class Outcome:
    """What one sample produced: a record, or an error line for the errors file."""

    sample_id: str
    thread_id: str
    record: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    usage: Usage = field(default_factory=no_usage)
    resumed: bool = False
    prune: bool = True
    """False when the graph raised mid-way: keep the checkpoint so a re-run continues from it."""
    shard: int = 0
    """The checkpoint shard (worker) that holds the sample's thread."""
    endpoints: EndpointTally = field(default_factory=dict)
    """Model calls and errors per endpoint URL made for this sample by this run."""
    stopped: bool = False
    """The spending cap refused one of its calls: neither record nor error; its checkpoint is kept."""
    paid: float = 0.0
    """Under a cap: what this run's calls for the sample cost (the ledger counted it already)."""


class SampleFailure(Exception):
    """Raised by a job's `to_record` when a finished state is not a usable record; `detail` joins
    the sample's errors-file line (e.g. the grades that did come back)."""

    def __init__(self, node: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.node, self.message, self.detail = node, message, detail or {}


def _failed(
    sample: Sample, job: GraphJob, node: str, message: str, detail: dict[str, Any] | None = None, **more: Any
) -> Outcome:
    error = ErrorRecord(id=sample.id, error={"node": node, "message": message}, prompt=sample.prompt)
    return Outcome(sample.id, job.thread_id(sample), error={**error.model_dump(mode="json"), **(detail or {})}, **more)


async def run_sample(job: GraphJob, graph: Any, sample: Sample) -> Outcome:
    """Run (or resume) one sample on its own checkpoint thread; never raises for a sample's failure.

    A thread is finished only when `not snap.next and not snap.tasks`: `next` alone is empty when a
    node's write was saved but the following checkpoint was not. A dead embedded server is not the
    sample's failure: it ends the batch, the sample's checkpoint kept for the re-run.
    """
    with endpoint_tally() as tally:
        outcome = await _run_sample(job, graph, sample)
    outcome.endpoints = tally
    return outcome


async def _run_sample(job: GraphJob, graph: Any, sample: Sample) -> Outcome:
    purse = job.budget.purse() if job.budget else None
    outcome = await _run_graph(job, graph, sample, purse)
    outcome.paid = purse.paid if purse else 0.0
    return outcome


async def _run_graph(job: GraphJob, graph: Any, sample: Sample, purse: Purse | None) -> Outcome:
    configurable = {"thread_id": job.thread_id(sample), **({SPENDING: purse} if purse else {})}
    config = {**job.run_config, "configurable": configurable}
    resumed = False
    try:
        snap = await graph.aget_state(config)
        resumed = bool(snap.values)
        if resumed and not snap.next and not snap.tasks:
            state = dict(snap.values)
        else:
            state = await graph.ainvoke(
                None if resumed else job.to_input(sample),
                config,
                context=job.run_context,
                durability=checkpoint_durability(),
            )
    except EmbeddedServerDied:
        raise
    except CostCapReached:
        assert purse is not None
        return Outcome(sample.id, job.thread_id(sample), usage=purse.usage, resumed=resumed, prune=False, stopped=True)
    except Exception as exc:  # one sample's crash must not end the batch
        return crashed(job, sample, exc, resumed)
    return finished_outcome(job, sample, state, resumed)


def crashed(job: GraphJob, sample: Sample, exc: Exception, resumed: bool) -> Outcome:
    """The outcome of a graph that raised: a failure whose checkpoint is kept for a re-run."""
    return _failed(sample, job, "batch", f"{type(exc).__name__}: {exc}", resumed=resumed, prune=False)


def finished_outcome(job: GraphJob, sample: Sample, state: dict[str, Any], resumed: bool) -> Outcome:
    """A finished graph's final state as the sample's record, or as its errors-file line."""
    usage = state.get("usage") or no_usage()
    if state.get("error"):
        return _failed(sample, job, state["error"]["node"], state["error"]["message"], usage=usage, resumed=resumed)
    try:
        record = job.to_record(sample, state, job).model_dump(mode="json")
    except ValidationError as exc:
        return _failed(sample, job, "record", f"incomplete final state: {exc}", usage=usage, resumed=resumed)
    except SampleFailure as exc:
        return _failed(sample, job, exc.node, exc.message, exc.detail, usage=usage, resumed=resumed)
    return Outcome(sample.id, job.thread_id(sample), record=record, usage=usage, resumed=resumed)


class RequestsPerMinute(BaseRateLimiter):
    """LangChain's rate-limiter hook backed by aiolimiter: at most `rpm` model requests per minute."""

    def __init__(self, rpm: float) -> None:
        self._limiter = AsyncLimiter(rpm, 60)

    def acquire(self, *, blocking: bool = True) -> bool:
        raise NotImplementedError("the batch engine calls models asynchronously only")

    async def aacquire(self, *, blocking: bool = True) -> bool:
        if not blocking and not self._limiter.has_capacity():
            return False
        await self._limiter.acquire()
        return True


@asynccontextmanager
async def open_graph(job: GraphJob, store: CheckpointStore, shard: int, rpm: float | None) -> AsyncIterator[Any]:
    """The job's graph with its checkpointer (shard `shard` of `store`), an aiohttp-based OpenAI
    client and the rate limit, once the kind of each model server is known (`nodes/servers.py`).

    aiohttp costs less client CPU per call than httpx, which decides throughput at high concurrency.
    """
    async with AsyncExitStack() as stack:
        saver = await stack.enter_async_context(store.saver(shard))
        model: Any = job.model
        if model is None:
            ctx = job.run_context
            await asyncio.to_thread(ask_servers, ctx)  # once per process, before any call waits for it
            groups = endpoint_groups([ctx.base_url, ctx.judge_base_url])
            client = BalancedClient(groups, timeout=ctx.request_timeout)
            stack.push_async_callback(client.aclose)
            limiter = RequestsPerMinute(rpm) if rpm else None
            model = partial(openai_compatible_model, http_async_client=client, rate_limiter=limiter)
        yield job.build(checkpointer=saver, model=model)


async def _pool(
    run_one: Callable[[Sample], Awaitable[Outcome]],
    next_sample: Callable[[], Awaitable[Sample | None]],
    concurrency: int,
) -> AsyncIterator[Outcome]:
    """Run up to `concurrency` samples at once; yield outcomes as they finish."""
    results: asyncio.Queue[Outcome | None] = asyncio.Queue()

    async def lane() -> None:
        while (sample := await next_sample()) is not None:
            await results.put(await run_one(sample))

    def finished(future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # marks it retrieved: lanes cancelled by Ctrl-C are not logged at exit
        results.put_nowait(None)

    lanes = [asyncio.create_task(lane()) for _ in range(concurrency)]
    everything = asyncio.gather(*lanes)
    everything.add_done_callback(finished)
    try:
        while (outcome := await results.get()) is not None:
            yield outcome
        await everything
    finally:
        for task in lanes:
            task.cancel()


WriteOutcome = Callable[[Outcome], None]
"""The driver's writer: puts an outcome's line in the output or the errors file, flushed."""


@dataclass
class EngineRun:
    """What the driver hands an engine (this process, worker processes, Ray actors, waves): the
    job, the samples still to run, where their checkpoints go, how wide to run, and its writer."""

    job: GraphJob
    samples: Iterator[Sample]
    store: CheckpointStore
    concurrency: int
    write: WriteOutcome
    rpm: float | None = None
    workers: int = 1
    resume: dict[int, list[Sample]] = field(default_factory=dict)
    """Worker `k` first continues `resume[k]`, the samples its checkpoint shard holds."""


async def run_inline(run: EngineRun) -> None:
    """Run the batch in this process: `write` each outcome, then prune its thread."""

    async def next_sample() -> Sample | None:
        return next(run.samples, None)

    async with open_graph(run.job, run.store, 0, run.rpm) as graph:
        async for outcome in _pool(partial(run_sample, run.job, graph), next_sample, run.concurrency):
            run.write(outcome)
            if outcome.prune:
                await graph.checkpointer.adelete_thread(outcome.thread_id)


class _WorkerDone:
    """Sent by a worker process after its last outcome."""


def _exit_with_parent() -> None:
    """A killed driver (kill -9) cannot stop its workers: each leaves by itself when the driver is
    gone, so no orphan keeps calling the model and writing checkpoints beside the next run."""
    parent = multiprocessing.parent_process()

    def watch() -> None:
        if parent is not None:
            parent.join()
            os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_main(
    job: GraphJob,
    shard: int,
    store: CheckpointStore,
    concurrency: int,
    rpm: float | None,
    resume: list[Sample],
    tasks: Any,
    results: Any,
    written: Any,
) -> None:
    """Worker process `shard`: continue the samples its shard holds (`resume`), then run samples
    from `tasks`; send each outcome to the driver.

    The driver answers on `written` with the thread id of each recorded outcome to prune. The
    worker prunes it: it is the shard's only writer, so no statement waits for a lock. Before it
    leaves, it waits for the last of these answers.
    """
    _exit_with_parent()

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def next_sample() -> Sample | None:
            if resume:
                return resume.pop()
            sample: Sample | None = await loop.run_in_executor(None, tasks.get)
            return sample

        async with open_graph(job, store, shard, rpm) as graph:
            unpruned = 0

            async def prune(wait: bool) -> None:
                nonlocal unpruned
                while unpruned:
                    try:
                        thread_id = await loop.run_in_executor(None, written.get) if wait else written.get_nowait()
                    except queue.Empty:
                        return
                    await graph.checkpointer.adelete_thread(thread_id)
                    unpruned -= 1

            async for outcome in _pool(partial(run_sample, job, graph), next_sample, concurrency):
                results.put(replace(outcome, shard=shard))
                unpruned += outcome.prune
                await prune(wait=False)
            await prune(wait=True)

    run_async(main())
    results.put(_WorkerDone())  # not after a crash: the driver then sees the exit code instead


async def run_in_processes(run: EngineRun) -> None:
    """Share the batch among `run.workers` processes; the calling process stays the only file writer.

    One process is CPU-bound at high concurrency (client work per model call); processes use
    every core. Concurrency and the rate limit are split evenly among the workers. Worker `k`
    checkpoints into shard `k` and first continues `resume[k]`, the samples that shard holds.
    """
    job, samples, store, rpm, workers, write = run.job, run.samples, run.store, run.rpm, run.workers, run.write
    mp = multiprocessing.get_context("spawn")
    per_worker = math.ceil(run.concurrency / workers)
    tasks: Any = mp.Queue(maxsize=max(2 * run.concurrency, 16))  # bounded: input keeps streaming
    results: Any = mp.Queue()
    written: list[Any] = [mp.Queue() for _ in range(workers)]
    processes = [
        mp.Process(
            target=_worker_main,
            args=(
                job,
                shard,
                store,
                per_worker,
                rpm / workers if rpm else None,
                run.resume.get(shard, []),
                tasks,
                results,
                written[shard],
            ),
            daemon=True,
        )
        for shard in range(workers)
    ]
    for process in processes:
        process.start()
    stop_feeding = threading.Event()

    def feed() -> None:
        for item in itertools.chain(samples, itertools.repeat(None, per_worker * workers)):
            while not stop_feeding.is_set():
                with contextlib.suppress(queue.Full):
                    tasks.put(item, timeout=0.5)
                    break

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()

    def next_result() -> Any:
        while True:
            try:
                return results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"worker process {dead[0].pid} died with exit code {dead[0].exitcode}") from None

    loop = asyncio.get_running_loop()
    try:
        finished = 0
        while finished < workers:
            item = await loop.run_in_executor(None, next_result)
            if isinstance(item, _WorkerDone):
                finished += 1
            else:
                write(item)
                if item.prune:
                    written[item.shard].put(item.thread_id)
    finally:
        stop_feeding.set()
        for process in processes:
            if process.is_alive():
                process.terminate()  # by PID; their samples are checkpointed
            process.join(timeout=10)
