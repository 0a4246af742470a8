"""Limits on what a client can make the server hold: slow headers and bodies, and request bodies
that only look like JSON. Every refusal is a 4xx with a JSON `detail`, never a 500.

`TimedH11Protocol` is uvicorn's h11 protocol with a deadline on a request's headers: a client that
sends them slowly (or opens a connection and sends nothing) is answered 408 and disconnected
when the deadline passes, and its slot is free for others. The body has its own deadline, kept
by `RequestGuard` while it reads the body (`read_body`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from aidsafe.batch.inputs import text_problem

MAX_JSON_DEPTH = 64
"""Deeper bodies are refused: parsing and validating them recursed past Python's limit (a 500)."""


def _timeout_response(detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; a request's headers must arrive within `header_timeout` seconds of
    the connection opening or of the previous response."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        if not self.transport.is_closing():
            detail = f"request headers not received within {self.header_timeout:g} s"
            self.transport.write(_timeout_response(detail))
            self.transport.close()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is None or self.cycle.response_complete:  # waiting for the next request
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def timed_protocol(header_timeout: float) -> type[TimedH11Protocol]:
    """The protocol class to give `uvicorn.run(http=...)`."""
    return type("TimedH11Protocol", (TimedH11Protocol,), {"header_timeout": header_timeout})


class BodyTooSlow(Exception):
    pass


async def read_body(receive: Callable[[], Any], timeout: float, limit: int) -> bytes | None:
    """The whole body, or None when it is over `limit` bytes; `BodyTooSlow` when it did not arrive
    within `timeout` seconds; `ConnectionError` when the client left."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise BodyTooSlow(f"request body not received within {timeout:g} s") from None
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > limit:
            return None
    return b"".join(chunks)


class BadBody(ValueError):
    """A body that is not usable JSON; the message says why and where, `status` is the answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _no_constants(name: str) -> Any:
    raise BadBody(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """The body's JSON, refusing what the standard library accepts but breaks later: NaN and
    Infinity, integers too long to convert, nesting past `MAX_JSON_DEPTH`, lone surrogates."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"request body is not UTF-8 (byte {body[exc.start]:#04x} at offset {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise BadBody(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", status=422) from None
    except RecursionError:
        raise BadBody(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # an integer over Python's conversion limit
        raise BadBody(f"unusable JSON value: {exc}") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise BadBody(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if problem := text_problem(data):
        raise BadBody(problem, status=422)
    return data


def _depth(data: Any) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return deepest
