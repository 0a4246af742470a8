"""The money of a run under `--max-cost`: one ledger per run, shared by every worker, and a purse
per sample that pays for each model call before it is sent.

Before each call, the sample's `Purse` reserves the most the call can cost: its prompt's tokens
(bounded by its UTF-8 bytes, `Request.prompt_tokens`) at the model's input price plus the call's
`max_tokens` at its output price. The `Ledger` grants a reservation that fits under the cap beside
the money spent and the money held by calls in flight; one that would fit once those settle waits
for them; one that does not fit even then is refused, and the run stops: that call is not sent,
its sample stays checkpointed, and no later reservation is granted. After the call the purse
settles its reservation with the reply's usage (cached prompt tokens at their price).

So while no call costs more than its reservation, the money spent never passes the cap.

One `Ledger` serves the whole run, wherever the engine runs samples: in the driver (one process),
in the driver behind a `multiprocessing` manager server (`served`, for worker processes), or in a
Ray actor (`ray_engine.RayLedger`). It only counts: the driver stays the only writer of files.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from typing import Any, Protocol

import openai
from langchain_core.messages import AIMessage

from aidsafe.batch.prices import PER_TOKEN, PriceError, PriceTable
from aidsafe.nodes.context import Context
from aidsafe.nodes.llm import CostCapReached, Reply, Request, cut_off_reply, usage_of
from aidsafe.state.deliberation import Usage, add_usage, no_usage


class SharedLedger(Protocol):
    """What workers and the driver call on the run's ledger, in whichever process it lives."""

    def reserve(self, amount: float) -> bool | None: ...

    def settle(self, held: float, cost: float) -> None: ...

    def add(self, cost: float) -> None: ...

    def stop(self) -> None: ...

    def stopped(self) -> bool: ...


class Ledger:
    """The run's money: spent (settled), held (reserved by calls in flight) and the cap. Thread-safe
    (a manager serves each connection from its own thread); it never blocks, so the same class
    serves in the driver, behind a manager and as a Ray actor."""

    def __init__(self, cap: float, spent: float) -> None:
        self.cap, self._spent, self._held = cap, spent, 0.0
        self._stopped = spent >= cap
        self._lock = threading.Lock()

    def reserve(self, amount: float) -> bool | None:
        """Hold `amount` for a call: True when granted; None when only calls in flight keep it from
        fitting (ask again after they settle); False when it cannot fit, which stops the ledger."""
        with self._lock:
            if not self._stopped and self._spent + amount <= self.cap:
                if self._spent + self._held + amount > self.cap:
                    return None
                self._held += amount
                return True
            self._stopped = True
            return False

    def settle(self, held: float, cost: float) -> None:
        """A call came back: its reservation `held` is released, its `cost` spent."""
        with self._lock:
            self._held -= held
            self._spent += cost

    def add(self, cost: float) -> None:
        """Money spent outside this run's calls: what an earlier run paid for a sample now finished."""
        with self._lock:
            self._spent += cost

    def stop(self) -> None:
        self._stopped = True

    def stopped(self) -> bool:
        return self._stopped


@contextmanager
def served(ledger: Ledger) -> Iterator[SharedLedger]:
    """`ledger` served from this process on a loopback port, for worker processes: yields a proxy
    that they can be handed (it pickles); each call is one round trip to this process. The driver
    answers, so no process starts (a manager process would import the whole program first); after
    the run the server's accepting thread stays blocked until the process ends (Python has no way
    to stop it), idle."""

    class LedgerServer(BaseManager):
        pass

    LedgerServer.register("ledger", callable=lambda: ledger)
    server = LedgerServer(address=("127.0.0.1", 0)).get_server()

    def serve() -> None:
        with contextlib.suppress(SystemExit):  # how `serve_forever` ends, meant for a process of its own
            server.serve_forever()

    threading.Thread(target=serve, daemon=True).start()
    client = LedgerServer(address=server.address)
    client.connect()
    try:
        yield client.ledger()  # type: ignore[attr-defined]
    finally:
        server.stop_event.set()  # type: ignore[attr-defined]  # set by serve_forever; typeshed omits it


FIRST_PAUSE, LAST_PAUSE = 0.01, 0.2
"""Seconds between two asks of a reservation that waits for calls in flight, doubling."""


@dataclass(frozen=True)
class Budget:
    """What a worker needs to pay for calls: the run's ledger, the prices, and how long a call may
    wait for money held by calls in flight (the longest a call can last). Picklable."""

    ledger: SharedLedger
    prices: PriceTable
    wait: float

    def purse(self) -> Purse:
        return Purse(self)


class Purse:
    """One sample's payments (the `Spending` of `nodes/llm.py`): what its calls of this run used and
    cost, and how many of them are in flight."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.usage: Usage = no_usage()
        self.paid = 0.0
        self._in_flight = 0
        self._all_back = asyncio.Event()

    def reservation(self, request: Request) -> float:
        price = self.budget.prices.price_for(request.model)
        if price is None:
            raise PriceError(f"no price for model {request.model!r}")
        return (request.prompt_tokens() * price.input + request.max_tokens * price.output) * PER_TOKEN

    async def _ask(self, method: str, *args: float) -> Any:
        """The in-process ledger answers at once; a manager proxy or a Ray actor is a round trip,
        made off the event loop."""
        ledger = self.budget.ledger
        if isinstance(ledger, Ledger):
            return getattr(ledger, method)(*args)
        return await asyncio.to_thread(getattr(ledger, method), *args)

    async def _reserve(self, amount: float) -> bool:
        """Ask until granted or refused; past `budget.wait` seconds of waiting, a call in flight has
        held money longer than any call lasts (its worker died): the run stops."""
        deadline, pause = time.monotonic() + self.budget.wait, FIRST_PAUSE
        while (granted := await self._ask("reserve", amount)) is None:
            if time.monotonic() > deadline:
                await self._ask("stop")
                return False
            await asyncio.sleep(pause)
            pause = min(2 * pause, LAST_PAUSE)
        return bool(granted)

    async def pay(self, request: Request, send: Callable[[], Awaitable[Reply]]) -> Reply:
        amount = self.reservation(request)
        if not await self._reserve(amount):
            raise CostCapReached(f"a call of up to ${amount:.6f} would cross the spending cap")
        try:
            reply = await send()
        except BaseException:  # cancelled mid-call: the server may have answered and billed it
            await asyncio.shield(self._ask("settle", amount, amount))
            raise
        usage = self._usage(reply)
        try:
            cost = self.budget.prices.cost(usage)
        except PriceError:  # a server-named model without a price: the run cannot keep count
            cost = amount
            await self._ask("stop")
        await self._ask("settle", amount, cost)
        self.usage = add_usage(self.usage, usage)
        self.paid += cost
        return reply

    @staticmethod
    def _usage(reply: Reply) -> Usage:
        if isinstance(reply, AIMessage):
            return usage_of(reply)
        if isinstance(reply, openai.LengthFinishReasonError):  # an answer cut at max_tokens was paid
            return usage_of(cut_off_reply(reply))
        return no_usage()  # any other error: nothing came back to bill

    async def track(self, call: Callable[[], Awaitable[AIMessage]]) -> AIMessage:
        self._in_flight += 1
        self._all_back.clear()
        refused = False
        try:
            return await call()
        except CostCapReached:
            refused = True
            raise
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._all_back.set()
            if refused:
                await self._all_back.wait()


def budget_wait(context: dict[str, Any]) -> float:
    """The longest one call can hold money: every attempt of it timing out (backoff aside)."""
    ctx = Context(**context)
    return ctx.request_timeout * (ctx.http_retries + 1)
