"""Batch mode: every sample's model calls go through a provider's Batch API, or through request
files that `vllm run-batch` answers offline, in waves.

Under `--mode batch` (or `offline`) an agent node does not send its model call: it stops at
LangGraph's `interrupt` with the request's JSON body (`nodes/llm.waiting_call`), and its sample's
checkpoint keeps everything until the answer comes. The loop here:

1. runs every sample until it waits (or ends): its pending calls are the thread's interrupts;
2. writes the calls of all waiting samples into request files in the OpenAI Batch API's format
   (`{"custom_id", "method", "url", "body"}` a line; `custom_id` = thread id, interrupt id and the
   node's call number), one model and server per file, split at `max_batch_requests` lines and
   `max_batch_bytes` bytes (the provider's limits: 50,000 and 200 MB at OpenAI);
3. submits them (Files + Batches endpoints; offline: waits for `results-NNN.jsonl` beside each
   `requests-NNN.jsonl`) and keeps the batch ids in the checkpoint file **before** waiting, so a run
   killed while a batch is pending picks the same batch up when run again instead of paying twice;
4. polls with backoff until every batch of the wave has ended, matches the answers by `custom_id`
   (they come in any order) and resumes each sample with its answers (`Command(resume={interrupt
   id: answer})`); the sample runs on to its next calls, which go into the next wave.

The answer contract is online mode's: a body that does not parse is repaired or salvaged in the
node, and a re-ask is the node's next call, in the next wave. A request that failed (its line has
an error, or its batch failed, expired or was cancelled before answering it) is sent again in the
next wave, up to `http_retries` times; then its sample fails into the errors file with the reason.
Records are the same as online mode's; only their `settings` say `calls: batch`.

Under `--max-cost` the cap is checked before a wave is submitted: each sample's calls reserve their
most possible cost at batch prices (`batch/ledger.py`); samples whose calls do not fit wait,
checkpointed, for a re-run with a higher cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

import openai
from langchain_openai import ChatOpenAI
from langgraph.types import Command, Interrupt

from aidsafe.batch.engine import (
    EngineRun,
    GraphJob,
    Outcome,
    WriteOutcome,
    checkpoint_durability,
    crashed,
    finished_outcome,
    open_graph,
)
from aidsafe.batch.inputs import Sample
from aidsafe.batch.ledger import Ledger
from aidsafe.batch.prices import PER_TOKEN, PriceError, PriceTable
from aidsafe.batch.stores import SqliteStore
from aidsafe.nodes.context import endpoint_urls
from aidsafe.nodes.llm import WAVES, api_key, reply_from_body, usage_of

Mode = Literal["online", "batch", "offline"]
"""How model calls are made: one HTTP request each (online), a provider's Batch API, or files."""
CHAT_COMPLETIONS = "/v1/chat/completions"
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
"""A batch's final statuses; `validating`, `in_progress`, `finalizing`, `cancelling` come before."""
Sleep = Callable[[float], Awaitable[None]]
FIND_AMONG = 1000
"""How many of a provider's latest batches are searched for one an earlier run started unnoted."""
MAX_POLL_SECONDS = 600.0
"""The longest pause between two polls."""


@dataclass(frozen=True)
class WaveSettings:
    """How the waves run (from `BatchOptions`)."""

    mode: Literal["batch", "offline"]
    folder: Path
    """Where request files are written (`out.batches/`)."""
    max_requests: int
    max_bytes: int
    poll_seconds: float
    """The first pause between two polls; it doubles up to `max_poll_seconds`."""
    max_poll_seconds: float
    completion_window: str = "24h"


@dataclass
class BatchState:
    """A batch as the provider reports it."""

    id: str
    status: str
    completed: int = 0
    failed: int = 0
    total: int = 0
    files: tuple[str, ...] = ()
    """Its output and error files (offline: the results file)."""

    @property
    def ended(self) -> bool:
        return self.status in ENDED


class Provider(Protocol):
    """Where a wave's request files are answered."""

    async def upload(self, path: Path) -> str:
        """Hand the request file over; returns its file id."""
        ...

    async def start(self, file_id: str) -> str:
        """Start the batch of an uploaded file; returns the batch's id."""
        ...

    async def find(self, file_id: str) -> str | None:
        """The batch an earlier run started for the file, if it did (it was killed before it kept the id)."""
        ...

    async def state(self, batch_id: str) -> BatchState: ...

    async def lines(self, state: BatchState) -> list[dict[str, Any]]:
        """The result lines of an ended batch (answers and errors), in any order."""
        ...


class OpenAIBatches:
    """The OpenAI Batch API (Files + Batches endpoints) at a base URL, through the `openai` client:
    OpenAI itself, Azure OpenAI and the providers that speak the same endpoints."""

    def __init__(self, base_url: str, key: str, retries: int, timeout: float, window: str) -> None:
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=retries, timeout=timeout)
        self.window = window

    async def upload(self, path: Path) -> str:
        return (await self.client.files.create(file=path, purpose="batch")).id

    async def start(self, file_id: str) -> str:
        batch = await self.client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window=self.window,  # type: ignore[arg-type]
        )
        return batch.id

    async def find(self, file_id: str) -> str | None:
        """Among the provider's latest batches (newest first, `FIND_AMONG` at most)."""
        seen = 0
        async for batch in self.client.batches.list(limit=100):
            if batch.input_file_id == file_id:
                return batch.id
            seen += 1
            if seen >= FIND_AMONG:
                break
        return None

    async def state(self, batch_id: str) -> BatchState:
        batch = await self.client.batches.retrieve(batch_id)
        counts = batch.request_counts
        files = tuple(f for f in (batch.output_file_id, batch.error_file_id) if f)
        return BatchState(
            batch.id,
            batch.status,
            counts.completed if counts else 0,
            counts.failed if counts else 0,
            counts.total if counts else 0,
            files,
        )

    async def lines(self, state: BatchState) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for file_id in state.files:
            content = await self.client.files.content(file_id)
            found += [json.loads(line) for line in content.text.splitlines() if line.strip()]
        return found


def results_file(requests: Path) -> Path:
    """`requests-003.jsonl` is answered in `results-003.jsonl` beside it."""
    return requests.with_name("results" + requests.name.removeprefix("requests"))


def vllm_command(requests: Path, model: str) -> str:
    """The command that answers a request file offline with vLLM."""
    return f"vllm run-batch -i {requests} -o {results_file(requests)} --model {model}"


class OfflineFiles:
    """Request files answered by a tool that reads and writes the Batch API's line format with no
    server (`vllm run-batch`): a file's batch has ended when its results file holds a line for each
    of its requests. The batch id is the request file's path."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    async def upload(self, path: Path) -> str:
        return str(path)

    async def start(self, file_id: str) -> str:
        with Path(file_id).open(encoding="utf-8") as handle:
            model = json.loads(handle.readline())["body"]["model"]
        self.say(f"waiting for {results_file(Path(file_id))}: run  {vllm_command(Path(file_id), model)}")
        return file_id

    async def find(self, file_id: str) -> str | None:
        return file_id

    async def state(self, batch_id: str) -> BatchState:
        requests, results = Path(batch_id), results_file(Path(batch_id))
        total = _count_lines(requests)
        answered = _count_lines(results) if results.exists() else 0
        status = "completed" if results.exists() and answered >= total else "in_progress"
        return BatchState(batch_id, status, answered, 0, total, (str(results),))

    async def lines(self, state: BatchState) -> list[dict[str, Any]]:
        text = Path(state.files[0]).read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


class Journal:
    """The request files a run handed over and has not applied the answers of yet, with their batch
    ids, in a table of the checkpoint file: a re-run after a kill polls those batches instead of
    paying for their requests again. A file is noted once uploaded, before its batch starts, so a
    kill between the two is found too (`Provider.find`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS aidsafe_batches "
                "(file_id TEXT PRIMARY KEY, batch_id TEXT, wave INTEGER, base_url TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def uploaded(self, file_id: str, wave: int, base_url: str) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute("INSERT OR REPLACE INTO aidsafe_batches VALUES (?, NULL, ?, ?)", (file_id, wave, base_url))

    def started(self, file_id: str, batch_id: str) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute("UPDATE aidsafe_batches SET batch_id = ? WHERE file_id = ?", (batch_id, file_id))

    def pending(self) -> list[tuple[str, str | None, int, str]]:
        """`(file id, batch id or None, wave, base URL)` of every file whose answers are not applied yet."""
        with closing(self._connect()) as conn:
            return list(conn.execute("SELECT file_id, batch_id, wave, base_url FROM aidsafe_batches ORDER BY wave"))

    def drop(self, file_ids: Iterable[str]) -> None:
        with closing(self._connect()) as conn, conn:
            conn.executemany("DELETE FROM aidsafe_batches WHERE file_id = ?", [(f,) for f in file_ids])

    def remove(self) -> None:
        """The table, once empty: the checkpoint file may then be removed as online mode's is."""
        with closing(self._connect()) as conn, conn:
            if not conn.execute("SELECT 1 FROM aidsafe_batches LIMIT 1").fetchone():
                conn.execute("DROP TABLE aidsafe_batches")


def custom_id(thread_id: str, waiting: Interrupt) -> str:
    """The request's name in its batch: the sample's thread, the node's interrupt and its call number."""
    return f"{thread_id}:{waiting.id}:{waiting.value['call']}"


@dataclass
class RequestFile:
    path: Path
    base_url: str
    custom_ids: list[str]


def write_request_files(
    folder: Path, wave: int, requests: Iterable[tuple[str, dict[str, Any]]], max_requests: int, max_bytes: int
) -> list[RequestFile]:
    """`requests` (custom id, interrupt payload) as Batch API request files, one per server and
    model, each split at `max_requests` lines and `max_bytes` bytes: `requests-003.jsonl`,
    `requests-003-2.jsonl`, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for cid, payload in requests:
        groups[(payload["base_url"], payload["body"].get("model", ""))].append((cid, payload))
    files: list[RequestFile] = []
    sizes: list[int] = []
    for (base_url, _), lines in groups.items():
        current: RequestFile | None = None
        for cid, payload in lines:
            line = json.dumps(
                {"custom_id": cid, "method": "POST", "url": CHAT_COMPLETIONS, "body": payload["body"]},
                ensure_ascii=False,
            ).encode()
            line += b"\n"
            if current is None or len(current.custom_ids) >= max_requests or sizes[-1] + len(line) > max_bytes:
                suffix = f"-{len(files) + 1}" if files else ""
                current = RequestFile(folder / f"requests-{wave:03d}{suffix}.jsonl", base_url, [])
                current.path.write_bytes(b"")
                files.append(current)
                sizes.append(0)
            with current.path.open("ab") as handle:
                handle.write(line)
            current.custom_ids.append(cid)
            sizes[-1] += len(line)
    return files


def answer_of(line: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """A result line's chat completion body, or None and why there is none."""
    if line is None:
        return None, "no answer in the batch's results"
    response = line.get("response") or {}
    body = response.get("body")
    if response.get("status_code") == 200 and isinstance(body, dict) and body.get("choices"):
        return body, ""
    error = line.get("error") or (body.get("error") if isinstance(body, dict) else None) or {}
    if isinstance(error, dict):
        return (
            None,
            f"{error.get('code') or response.get('status_code') or 'error'}: {error.get('message', '')}".strip(),
        )
    return None, str(error)


@cache
def _reader() -> ChatOpenAI:
    """Reads answer bodies into messages (for their usage): never sends anything."""
    return ChatOpenAI(model="batch", api_key="not-needed")  # type: ignore[arg-type]


@dataclass
class WaveReport:
    """What the waves did, for the summary."""

    waves: int = 0
    batches: int = 0
    requests: int = 0
    failed_requests: int = 0
    """Requests that came back without an answer (sent again, or their sample failed)."""
    stopped: bool = False
    batch_ids: list[str] = field(default_factory=list)


Note = Callable[[dict[str, object]], None]


class Waves:
    """One run's waves over the job's samples (see the module's docstring)."""

    def __init__(
        self,
        job: GraphJob,
        graph: Any,
        settings: WaveSettings,
        write: WriteOutcome,
        concurrency: int,
        *,
        ledger: Ledger | None,
        prices: PriceTable | None,
        note: Note,
        say: Callable[[str], None],
        sleep: Sleep,
        journal: Journal,
    ) -> None:
        self.job, self.graph, self.settings, self.write = job, graph, settings, write
        self.concurrency, self.ledger, self.prices = concurrency, ledger, prices
        self.note, self.say, self.sleep, self.journal = note, say, sleep, journal
        self.ctx = job.run_context
        self.waiting: dict[str, Sample] = {}
        self.pending: dict[str, tuple[Interrupt, ...]] = {}
        self.carried: set[str] = set()
        self.failures: Counter[str] = Counter()
        self.paid: dict[str, float] = defaultdict(float)
        self.providers: dict[str, Provider] = {}
        self.report = WaveReport()

    def provider(self, base_url: str) -> Provider:
        if base_url not in self.providers:
            if self.settings.mode == "offline":
                self.providers[base_url] = OfflineFiles(self.say)
            else:
                judge = self.ctx.judge_base_url and base_url in endpoint_urls(self.ctx.judge_base_url)
                self.providers[base_url] = OpenAIBatches(
                    base_url,
                    api_key("judge" if judge else "initializer"),
                    self.ctx.http_retries,
                    self.ctx.request_timeout,
                    self.settings.completion_window,
                )
        return self.providers[base_url]

    def config(self, thread_id: str) -> dict[str, Any]:
        return {**self.job.run_config, "configurable": {"thread_id": thread_id, WAVES: True}}

    async def advance(self, sample: Sample, resume: dict[str, Any] | None = None) -> None:
        """Run the sample until it waits for answers or ends; an ended sample is written."""
        thread_id = self.job.thread_id(sample)
        config = self.config(thread_id)
        try:
            if resume is None:
                snap = await self.graph.aget_state(config)
                if snap.values:
                    self.carried.add(thread_id)
                if snap.values and snap.interrupts:
                    self._wait(sample, tuple(snap.interrupts))
                    return
                if snap.values and not snap.next and not snap.tasks:
                    state = dict(snap.values)
                else:
                    state = await self.graph.ainvoke(
                        None if snap.values else self.job.to_input(sample),
                        config,
                        context=self.ctx,
                        durability=checkpoint_durability(),
                    )
            else:
                state = await self.graph.ainvoke(
                    Command(resume=resume), config, context=self.ctx, durability=checkpoint_durability()
                )
        except Exception as exc:  # one sample's crash must not end the batch
            outcome = crashed(self.job, sample, exc, thread_id in self.carried)
        else:
            if interrupts := state.get("__interrupt__"):
                self._wait(sample, tuple(interrupts))
                return
            outcome = finished_outcome(self.job, sample, state, thread_id in self.carried)
        await self._finish(thread_id, outcome)

    def _wait(self, sample: Sample, interrupts: tuple[Interrupt, ...]) -> None:
        thread_id = self.job.thread_id(sample)
        self.waiting[thread_id], self.pending[thread_id] = sample, interrupts

    async def _finish(self, thread_id: str, outcome: Outcome) -> None:
        self.waiting.pop(thread_id, None)
        self.pending.pop(thread_id, None)
        outcome.paid = self.paid.pop(thread_id, 0.0)
        self.write(outcome)
        if outcome.prune:
            await self.graph.checkpointer.adelete_thread(thread_id)

    async def each(self, runs: Iterable[Awaitable[None]]) -> None:
        """Graph steps (CPU only: no model call) of many samples, `concurrency` at a time."""
        gate = asyncio.Semaphore(self.concurrency)

        async def gated(run: Awaitable[None]) -> None:
            async with gate:
                await run

        await asyncio.gather(*(gated(run) for run in runs))

    async def run(self, samples: Iterator[Sample]) -> WaveReport:
        await self.each(self.advance(sample) for sample in samples)
        earlier = self.journal.pending()
        wave = max((w for _, _, w, _ in earlier), default=0)
        if earlier:
            self.say(f"picking up {len(earlier)} batches submitted by an earlier run")
            batches = [await self.restart(*entry) for entry in earlier]
            await self.apply(await self.collect(batches, wave), sent=None, held={})
            self.journal.drop(file_id for file_id, _, _, _ in earlier)
        while self.pending and not self.report.stopped:
            wave += 1
            requests, held = self.within_cap()
            if not requests:
                self.report.stopped = True
                break
            files = write_request_files(
                self.settings.folder, wave, requests, self.settings.max_requests, self.settings.max_bytes
            )
            submitted, file_ids = [], []
            for request_file in files:
                provider = self.provider(request_file.base_url)
                file_id = await provider.upload(request_file.path)
                self.journal.uploaded(file_id, wave, request_file.base_url)  # before the batch starts
                batch_id = await provider.start(file_id)
                self.journal.started(file_id, batch_id)
                submitted.append((batch_id, request_file.base_url))
                file_ids.append(file_id)
                if self.settings.mode == "batch":
                    request_file.path.unlink()
            self.report.waves, self.report.batches = wave, self.report.batches + len(files)
            self.report.requests += len(requests)
            results = await self.collect(submitted, wave)
            await self.apply(results, sent={cid for cid, _ in requests}, held=held)
            self.journal.drop(file_ids)
            if self.settings.mode == "offline":
                for request_file in files:
                    request_file.path.unlink(missing_ok=True)
                    results_file(request_file.path).unlink(missing_ok=True)
        for thread_id in list(self.pending):  # the cap stopped them: checkpointed for a re-run
            outcome = Outcome(self.waiting[thread_id].id, thread_id, resumed=thread_id in self.carried, prune=False)
            outcome.stopped = True
            await self._finish(thread_id, outcome)
        return self.report

    async def restart(self, file_id: str, batch_id: str | None, wave: int, base_url: str) -> tuple[str, str]:
        """An earlier run's batch, found (or started, if that run was killed before it started it)."""
        provider = self.provider(base_url)
        if batch_id is None:
            batch_id = await provider.find(file_id) or await provider.start(file_id)
            self.journal.started(file_id, batch_id)
        return batch_id, base_url

    def requests_of(self, thread_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(custom_id(thread_id, waiting), waiting.value) for waiting in self.pending[thread_id]]

    def within_cap(self) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, float]]:
        """The next wave's requests: every waiting sample's, or under a cap those of the samples whose
        calls' most possible cost (batch prices) the ledger grants beside the money spent and held
        by this wave; the money held per sample. A sample that fits only once the wave's calls have
        settled waits for the next wave; one that does not fit at all stops the run."""
        requests: list[tuple[str, dict[str, Any]]] = []
        held: dict[str, float] = {}
        for thread_id in self.pending:
            mine = self.requests_of(thread_id)
            if self.ledger is not None and self.prices is not None:
                amount = sum(self.reservation(payload) for _, payload in mine)
                granted = self.ledger.reserve(amount)
                if granted is None:  # fits once this wave's calls have settled: the next wave
                    continue
                if not granted:  # the ledger stopped: no later reservation is granted
                    self.report.stopped = True
                    continue
                held[thread_id] = amount
            requests += mine
        return requests, held

    def reservation(self, payload: dict[str, Any]) -> float:
        assert self.prices is not None
        price = self.prices.price_for(payload["model"])
        if price is None:
            raise PriceError(f"no price for model {payload['model']!r}")
        return (payload["prompt_tokens"] * price.input + payload["max_tokens"] * price.output) * PER_TOKEN

    async def collect(self, batches: list[tuple[str, str]], wave: int) -> dict[str, dict[str, Any]]:
        """Poll the batches with backoff until each has ended; their result lines by custom id."""
        states: dict[str, BatchState] = {}
        pause = self.settings.poll_seconds
        while True:
            for batch_id, base_url in batches:
                if batch_id not in states or not states[batch_id].ended:
                    states[batch_id] = await self.provider(base_url).state(batch_id)
            shown = [f"{s.status} {s.completed + s.failed}/{s.total}" for s in states.values()]
            requests = sum(len(interrupts) for interrupts in self.pending.values())
            self.note({"wave": wave, "pending requests": requests, "batch": ", ".join(shown)})
            if all(state.ended for state in states.values()):
                break
            await self.sleep(pause)
            pause = min(2 * pause, self.settings.max_poll_seconds)
        results: dict[str, dict[str, Any]] = {}
        for batch_id, base_url in batches:
            state = states[batch_id]
            if state.status != "completed":
                self.say(f"batch {batch_id} {state.status}: its unanswered requests go into the next wave")
            for line in await self.provider(base_url).lines(state):
                if line.get("custom_id") is not None:
                    results[line["custom_id"]] = line
        return results

    async def apply(self, results: dict[str, dict[str, Any]], sent: set[str] | None, held: dict[str, float]) -> None:
        """Resume every waiting sample with the answers that came for its calls. A call that was
        sent and came back without one counts a failure: under `http_retries` it is sent again,
        else the sample is resumed with the error (and fails). `sent` None: batches of an earlier
        run, whose requests are not known: only their answers are used."""
        resumes: list[tuple[Sample, dict[str, Any]]] = []
        for thread_id, interrupts in list(self.pending.items()):
            answers: dict[str, Any] = {}
            cost = 0.0
            for waiting in interrupts:
                cid = custom_id(thread_id, waiting)
                if sent is not None and cid not in sent:
                    continue
                body, problem = answer_of(results.get(cid))
                if body is not None:
                    answers[waiting.id] = {"body": body}
                    cost += self.cost(body)
                    continue
                if sent is None:
                    continue
                self.failures[cid] += 1
                self.report.failed_requests += 1
                if self.failures[cid] > self.ctx.http_retries:
                    answers[waiting.id] = {"error": f"batch request failed {self.failures[cid]} times: {problem}"}
            if thread_id in held and self.ledger is not None:
                self.ledger.settle(held[thread_id], cost)
            self.paid[thread_id] += cost
            if answers:
                resumes.append((self.waiting[thread_id], answers))
        await self.each(self.advance(sample, answers) for sample, answers in resumes)

    def cost(self, body: dict[str, Any]) -> float:
        if self.prices is None:
            return 0.0
        try:
            return self.prices.cost(usage_of(reply_from_body(_reader(), body)))
        except PriceError:
            return 0.0  # the driver's pricing of the outcome reports it


async def run_waves(
    run: EngineRun,
    settings: WaveSettings,
    *,
    ledger: Ledger | None,
    prices: PriceTable | None,
    note: Note,
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
    sleep: Sleep = asyncio.sleep,
) -> WaveReport:
    """Run the batch in waves in this process (see the module's docstring)."""
    store = run.store
    assert isinstance(store, SqliteStore), "the driver refuses --checkpoint in batch and offline modes (MODE_ALONE)"
    async with open_graph(run.job, store, 0, None) as graph:
        journal = Journal(store.path)
        waves = Waves(
            run.job,
            graph,
            settings,
            run.write,
            run.concurrency,
            ledger=ledger,
            prices=prices,
            note=note,
            say=say,
            sleep=sleep,
            journal=journal,
        )
        report = await waves.run(run.samples)
        if not journal.pending():  # every file answered: what a killed run left is stale
            for stale in [*settings.folder.glob("requests-*.jsonl"), *settings.folder.glob("results-*.jsonl")]:
                stale.unlink()
        journal.remove()
        with contextlib.suppress(OSError):  # empty once every file is answered
            settings.folder.rmdir()
        return report
