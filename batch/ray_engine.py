"""`--engine ray`: the batch on Ray Core async actors, one per worker, on any node of a cluster.

Each actor runs the engine's `run_sample` on its own event loop with its own graph, checkpointer
and HTTP client, built from small picklable settings (the job and the store), never shipped as
live objects. The driver stays the only writer of the output: it hands each actor samples, keeps
`concurrency / workers` of them in flight per actor, records each outcome as it returns and then
has the actor prune the sample's thread. A sample's failure comes back as an error outcome, so
Ray never retries it; a killed actor is restarted by Ray (`max_restarts=-1`) and its unfinished
calls are resubmitted (`max_task_retries=-1`): each of those samples resumes from its checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from aidsafe.batch.engine import EngineRun, GraphJob, Outcome, open_graph, run_sample
from aidsafe.batch.inputs import Sample
from aidsafe.batch.ledger import Ledger
from aidsafe.batch.stores import CheckpointStore, RunFailure

WORKER_ENV = ("OPENAI_API_KEY", "AIDSAFE_JUDGE_API_KEY", "PGPASSWORD", "PGPASSFILE", "PGSSLMODE")
"""Environment the actors need, passed through Ray's `runtime_env` when set in the driver's."""


class SampleWorker:
    """A Ray actor (made remote in `run_on_ray`): runs samples of one job, checkpointing into
    shard `shard` of the store (the shared store, for Postgres)."""

    def __init__(self, job: GraphJob, store: CheckpointStore, shard: int, rpm: float | None) -> None:
        self.job, self.store, self.shard, self.rpm = job, store, shard, rpm
        self._stack = AsyncExitStack()
        self._graph: Any = None
        self._opening: asyncio.Lock | None = None

    async def _open(self) -> Any:
        """The graph, opened on the actor's own loop by its first call."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._graph is None:
                self._graph = await self._stack.enter_async_context(
                    open_graph(self.job, self.store, self.shard, self.rpm)
                )
        return self._graph

    async def ready(self) -> int:
        await self._open()
        return os.getpid()

    async def run(self, sample: Sample) -> Outcome:
        outcome = await run_sample(self.job, await self._open(), sample)
        return replace(outcome, shard=self.shard)

    async def prune(self, thread_id: str) -> None:
        graph = await self._open()
        await graph.checkpointer.adelete_thread(thread_id)

    async def close(self) -> None:
        await self._stack.aclose()
        self._graph = None


LOCAL_START_ATTEMPTS = 2
"""On a loaded machine a local Ray's raylet can die waiting for its agents (a fixed 15 s limit in
Ray, ray-project/ray#65983); a second start usually comes up."""


LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch for a node that never joins other machines. Unset on Linux, Ray rewrites
`_node_ip_address="127.0.0.1"` to the machine's address and its servers listen on every
interface; at 0 a local Ray takes 127.0.0.1 and listens on loopback only. Ray reads it on import."""


def _connect(address: str | None, workers: int) -> bool:
    """Join the cluster at `address`, or start a local Ray bound to loopback; True when this call
    connected (the run then disconnects at its end), False when the process already was (a caller's
    own `ray.init`). A local Ray serves only this run, so nothing of it listens beyond loopback
    (when Ray was imported before, e.g. by the caller, its own setting stays)."""
    if not address and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    import ray

    if ray.is_initialized():
        return False

    env = {name: os.environ[name] for name in WORKER_ENV if name in os.environ}
    runtime_env = {"env_vars": env} if env else None
    for attempt in range(1 if address else LOCAL_START_ATTEMPTS):
        try:
            if address:
                ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING)
                return True
            ray.init(
                num_cpus=max(workers, os.cpu_count() or 1),
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                runtime_env=runtime_env,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            return True
        except Exception as exc:  # ray.init raises a bare Exception when the node does not come up in time
            ray.shutdown()  # stops what a failed local start left running
            failure = exc
            if not address and attempt + 1 < LOCAL_START_ATTEMPTS:
                print(f"note: the local Ray did not start ({exc}); trying again", file=sys.stderr)
    raise RunFailure(f"cannot start or reach Ray{f' at {address}' if address else ''}: {failure}")


@contextmanager
def ray_session(address: str | None, workers: int) -> Iterator[None]:
    """Connected to Ray for the run (see `_connect`); a local Ray started for it is stopped after."""
    connected = _connect(address, workers)  # first: it may have to set Ray's settings before Ray is imported
    try:
        yield
    finally:
        if connected:
            import ray

            ray.shutdown()  # stops a local Ray started for the run; leaves a cluster, which stays up


class RayLedger:
    """The run's `Ledger` in a Ray actor, so that actors on every node share it; each call is a
    round trip to it. Picklable (an actor handle)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    @classmethod
    @contextmanager
    def started(cls, cap: float, spent: float) -> Iterator[RayLedger]:
        """A ledger actor for the run (no CPU of its own: it only counts), killed after it."""
        import ray

        actor: Any = ray.remote(Ledger).options(num_cpus=0).remote(cap, spent)
        try:
            yield cls(actor)
        finally:
            ray.kill(actor)

    def _call(self, method: str, *args: float) -> Any:
        import ray

        return ray.get(getattr(self.actor, method).remote(*args))

    def reserve(self, amount: float) -> bool | None:
        granted: bool | None = self._call("reserve", amount)
        return granted

    def settle(self, held: float, cost: float) -> None:
        self._call("settle", held, cost)

    def add(self, cost: float) -> None:
        self._call("add", cost)

    def stop(self) -> None:
        self._call("stop")

    def stopped(self) -> bool:
        return bool(self._call("stopped"))


async def run_on_ray(run: EngineRun) -> None:
    """Share the batch among `run.workers` Ray actors (inside a `ray_session`); actor `k` first
    continues `resume[k]`.

    Actors are spread over the cluster's nodes; concurrency and the rate limit are split evenly.
    """
    job, samples, store, rpm, workers, resume, write = (
        run.job,
        run.samples,
        run.store,
        run.rpm,
        run.workers,
        run.resume,
        run.write,
    )
    if job.context.get("policy_file"):  # read by each actor: the same path on every node
        job = replace(job, context={**job.context, "policy_file": str(Path(job.context["policy_file"]).resolve())})
    import ray

    per_worker = math.ceil(run.concurrency / workers)
    actor_class: Any = ray.remote(SampleWorker).options(
        num_cpus=1,
        max_restarts=-1,
        max_task_retries=-1,
        max_concurrency=per_worker + 2,  # its samples, a prune and a close
        scheduling_strategy="SPREAD",
    )
    actors = [actor_class.remote(job, store, shard, rpm / workers if rpm else None) for shard in range(workers)]
    try:
        await asyncio.gather(*(actor.ready.remote() for actor in actors))

        def next_sample(shard: int) -> Sample | None:
            return resume[shard].pop() if resume.get(shard) else next(samples, None)

        async def lane(shard: int) -> None:
            actor = actors[shard]
            while (sample := next_sample(shard)) is not None:
                outcome: Outcome = await actor.run.remote(sample)
                write(outcome)
                if outcome.prune:
                    await actor.prune.remote(outcome.thread_id)

        await asyncio.gather(*(lane(shard) for shard in range(workers) for _ in range(per_worker)))
        await asyncio.gather(*(actor.close.remote() for actor in actors))
    except ray.exceptions.RayError as exc:
        raise RunFailure(f"the Ray run failed: {exc}") from None
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
