"""Where a batch keeps its per-sample checkpoints, and the lease that gives a run one driver.

`SqliteStore` (the default) keeps SQLite files beside the output, one shard per worker: only the
worker that owns a shard writes it, so a half-done sample continues in that worker. `PostgresStore`
(`--checkpoint postgresql://...`) is LangGraph's Postgres saver on one shared database: any worker
on any machine can continue any sample, which Ray workers spread over machines need.

Both are small picklable settings (a path, a URL): worker processes and Ray actors get the store
and open their own connections.

The lease: the driver holds an exclusive lock on the output file for the run (a second driver on
the same output refuses to start). With Postgres it also holds an advisory lock named after the
output, and every worker holds a shared one while it lives: a killed driver's Ray actors keep
calling the model for seconds after it dies, so a re-run waits until they have gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import AfterValidator

SQLITE_BUSY_TIMEOUT = 60.0
"""Seconds a statement waits for another connection's write. A run never makes two processes write
one file at once (see `InlineSqliteSaver`); this covers two runs pointed at one output by mistake."""


def checkpoint_shard(checkpoints: Path, shard: int) -> Path:
    """Shard `shard` of the checkpoint file: `out.checkpoints.sqlite`, `out.checkpoints.1.sqlite`, ...

    Worker process `k` writes only shard `k` (one process runs shard 0). Processes sharing one
    SQLite file queued for its single write lock; at high concurrency that stalled every worker.
    """
    return checkpoints if shard == 0 else checkpoints.with_name(f"{checkpoints.stem}.{shard}{checkpoints.suffix}")


def existing_shards(checkpoints: Path) -> list[int]:
    """The shards with a file on disk, whatever the worker count of the run that wrote them."""
    name = re.compile(rf"{re.escape(checkpoints.stem)}(?:\.(\d+))?{re.escape(checkpoints.suffix)}")
    matches = (name.fullmatch(path.name) for path in checkpoints.parent.iterdir())
    return sorted(int(match.group(1) or 0) for match in matches if match)


class InlineSqliteSaver(SqliteSaver):
    """LangGraph's SQLite checkpointer, its async methods run inline on the event loop.

    A checkpoint statement in a WAL file without fsync takes tens of microseconds. aiosqlite, which
    `AsyncSqliteSaver` uses, hands each statement to its own thread and back: at high concurrency
    that hop (thread wake-ups, GIL hand-offs) cost more CPU than the statements and slowed every
    lane of the process. Blocking the loop this briefly is cheaper, and it never waits for a lock:
    during a run each shard has one writer, the worker process that owns it (the driver plans
    before the workers start and cleans up after they stop).
    """

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for checkpoint in self.list(config, filter=filter, before=before, limit=limit):
            yield checkpoint

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)


@contextmanager
def open_checkpointer(path: Path) -> Iterator[InlineSqliteSaver]:
    """The SQLite checkpointer; the connection is closed on exit.

    The saver puts the file in WAL mode; `synchronous=NORMAL` then skips the fsync on every commit.
    A killed process loses nothing; a power cut may lose the last checkpoints, whose nodes then
    run again (records are never lost or repeated: they are in the output file).
    """
    with closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT, check_same_thread=False)) as conn:
        saver = InlineSqliteSaver(conn)
        saver.setup()
        conn.execute("PRAGMA synchronous=NORMAL")
        yield saver


WORKERS_GONE_TIMEOUT = 60.0
"""Seconds a driver waits for the workers of a killed run on the same output to go (Ray takes a few
seconds to notice a dead driver and stop its actors)."""


class RunFailure(RuntimeError):
    """The run cannot start or go on: another driver holds the output, or the checkpoint store or
    the Ray cluster is unreachable. Finished records are kept; the same command resumes."""


class CheckpointStore(Protocol):
    sharded: bool
    """True when each worker owns a shard that only it writes (then it resumes that shard's samples)."""

    def namespace(self, output: Path) -> str:
        """Part of every thread id: outputs sharing one store never share a thread."""
        ...

    def saver(self, shard: int) -> contextlib.AbstractAsyncContextManager[BaseCheckpointSaver]:
        """A worker's checkpointer (it writes shard `shard`, or the shared store)."""
        ...

    def lease(self, output: Path) -> contextlib.AbstractAsyncContextManager[None]:
        """Held by the driver for the whole run; raises `RunFailure` when another run holds it."""
        ...

    async def unfinished(self, prefix: str) -> dict[str, int]:
        """Thread id -> shard of every checkpoint thread whose id starts with `prefix`."""
        ...

    async def delete(self, threads: Iterable[tuple[str, int]]) -> None:
        """Prune `(thread id, shard)` pairs; only while no worker runs."""
        ...

    async def finish(self) -> None:
        """After the run, with the workers stopped: remove what is left empty."""
        ...


@contextmanager
def _output_lock(output: Path) -> Iterator[None]:
    """An exclusive `flock` on the output file for the run, released when the driver dies."""
    if sys.platform == "win32":  # pragma: no cover - no flock there; one driver per output is up to the user
        yield
        return
    import fcntl

    handle: IO[bytes]
    with output.open("ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFailure(f"another aidsafe run is writing {output}; wait for it to end or stop it") from None
        yield


@dataclass(frozen=True)
class SqliteStore:
    """SQLite shards beside the output: `out.checkpoints.sqlite`, `out.checkpoints.1.sqlite`, ..."""

    path: Path
    sharded = True

    def namespace(self, output: Path) -> str:
        return ""  # the files belong to one output

    @asynccontextmanager
    async def saver(self, shard: int) -> AsyncIterator[InlineSqliteSaver]:
        with open_checkpointer(checkpoint_shard(self.path, shard)) as saver:
            yield saver

    @asynccontextmanager
    async def lease(self, output: Path) -> AsyncIterator[None]:
        with _output_lock(output):
            yield

    @contextmanager
    def _savers(self) -> Iterator[dict[int, InlineSqliteSaver]]:
        with contextlib.ExitStack() as stack:
            yield {
                shard: stack.enter_context(open_checkpointer(checkpoint_shard(self.path, shard)))
                for shard in existing_shards(self.path)
            }

    async def unfinished(self, prefix: str) -> dict[str, int]:
        with self._savers() as savers:
            return {
                thread_id: shard
                for shard, saver in savers.items()
                for checkpoint in saver.list(None)
                if (thread_id := checkpoint.config["configurable"]["thread_id"]).startswith(prefix)
            }

    async def delete(self, threads: Iterable[tuple[str, int]]) -> None:
        with self._savers() as savers:
            for thread_id, shard in threads:
                savers[shard].delete_thread(thread_id)

    async def finish(self) -> None:
        """Delete every shard file no thread is left in."""
        for shard in existing_shards(self.path):
            path = checkpoint_shard(self.path, shard)
            with open_checkpointer(path) as saver:
                empty = next(saver.list(None, limit=1), None) is None
            if empty:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


_SETUP_LOCK = int.from_bytes(hashlib.sha256(b"aidsafe:setup").digest()[:8], "big", signed=True)


def _lock_key(output: Path, kind: int) -> int:
    """A signed 64-bit advisory-lock key for this output: kind 0 the driver, 1 its workers."""
    digest = hashlib.sha256(f"aidsafe:{kind}:{output}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class PostgresStore:
    """LangGraph's `AsyncPostgresSaver` on a shared database; tables are set up once by the driver.

    Each worker has a small psycopg pool; the saver runs one statement at a time per process anyway
    (it holds an asyncio lock around each), so more connections would only idle.
    """

    url: str
    output: str = ""
    """The run's output (absolute path): names the workers' lease."""
    pool_size: int = 4
    sharded = False

    def namespace(self, output: Path) -> str:
        return str(output.resolve())

    async def _connect(self) -> Any:
        import psycopg

        try:
            return await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise RunFailure(f"cannot reach the checkpoint store {_redacted(self.url)}: {exc}".strip()) from None

    @asynccontextmanager
    async def _pool(self) -> AsyncIterator[Any]:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        pool = AsyncConnectionPool(self.url, min_size=1, max_size=self.pool_size, kwargs=kwargs, open=False)
        await pool.open(wait=True, timeout=30)
        try:
            yield pool
        finally:
            await pool.close()

    @asynccontextmanager
    async def saver(self, shard: int) -> AsyncIterator[BaseCheckpointSaver]:
        """The saver, with this worker's shared hold on the run's worker lease for its lifetime."""
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with await self._connect() as lease, self._pool() as pool:
            if self.output:
                await lease.execute("SELECT pg_advisory_lock_shared(%s)", (_lock_key(Path(self.output), 1),))
            yield AsyncPostgresSaver(pool)

    @asynccontextmanager
    async def lease(self, output: Path) -> AsyncIterator[None]:
        """The output's file lock and the driver's advisory lock for the run; then wait until no
        worker of an earlier run on this output is connected, and set up the tables."""
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        with _output_lock(output):
            async with await self._connect() as conn:
                held = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(output, 0),))).fetchone()
                if not held or not held[0]:
                    raise RunFailure(
                        f"another aidsafe run holds {output} in {_redacted(self.url)}; wait for it to end or stop it"
                    )
                workers = _lock_key(output, 1)
                await conn.execute(f"SET lock_timeout = '{int(WORKERS_GONE_TIMEOUT * 1000)}ms'")
                try:
                    await conn.execute("SELECT pg_advisory_lock(%s)", (workers,))
                except psycopg.errors.LockNotAvailable:
                    raise RunFailure(
                        f"workers of an earlier run on {output} are still connected to {_redacted(self.url)} "
                        f"after {WORKERS_GONE_TIMEOUT:.0f} s; stop them first"
                    ) from None
                await conn.execute("SELECT pg_advisory_unlock(%s)", (workers,))
                await conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))  # drivers of other outputs
                async with self._pool() as pool:
                    await AsyncPostgresSaver(pool).setup()
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
                yield

    async def unfinished(self, prefix: str) -> dict[str, int]:
        async with await self._connect() as conn:
            rows = await conn.execute(
                "SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id LIKE %s",
                (prefix.replace("%", r"\%").replace("_", r"\_") + "%",),
            )
            return {row[0]: 0 for row in await rows.fetchall()}

    async def delete(self, threads: Iterable[tuple[str, int]]) -> None:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        thread_ids = [thread_id for thread_id, _ in threads]
        if thread_ids:
            async with self._pool() as pool:
                await AsyncPostgresSaver(pool).aprune(thread_ids, strategy="delete")

    async def finish(self) -> None:
        pass  # the tables stay: the database is shared


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _postgres_url(value: str) -> str:
    if not value.startswith(POSTGRES_SCHEMES):
        raise ValueError(f"expected a postgresql://user@host:port/database URL, got {value!r}")
    return value


PostgresUrl = Annotated[str, AfterValidator(_postgres_url)]
"""A libpq connection URL (`postgresql://` or `postgres://`)."""


def checkpoint_store(checkpoint: str | None, default: Path, output: Path) -> CheckpointStore:
    """`None`: SQLite shards at `default`; a `postgresql://` URL: the shared Postgres store."""
    if checkpoint is None:
        return SqliteStore(default.resolve())  # absolute: workers may run in another folder
    return PostgresStore(checkpoint, output=str(output.resolve()))
