"""The model servers a run talks to: the embedded one it starts (`model_server`), or the endpoints
it is given, over which the batch's HTTP client spreads requests.

`--base-url` given several times (or as a file of URLs) becomes one comma-separated `base_url`;
the chat model is built for the first URL, and `BalancedClient`, the openai SDK's aiohttp client
with a routing step in `send`, sends each request to the endpoint of that group with the fewest
requests outstanding. An endpoint that fails to connect (or drops a request) is taken out: its
requests go to the others, a request that could not connect is re-sent at once to another, and a
background probe (`GET <url>/models`) lets it back in when it answers again. The openai SDK, the
LangChain client and LangGraph know nothing of this; neither the openai SDK nor LangChain has a
load balancer, and LiteLLM's router would be a large dependency for this much.

Calls and errors are counted per endpoint in a per-sample tally (`endpoint_tally`): worker
processes and Ray actors return it with each outcome, and the driver sums it into the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

from aidsafe.embedded.llama_server import EmbeddedServer
from aidsafe.nodes.context import EMBEDDED, Context, endpoint_urls

EndpointTally = dict[str, list[int]]
"""URL -> [calls, errors]."""

_TALLY: ContextVar[EndpointTally | None] = ContextVar("aidsafe_endpoint_tally", default=None)

FIRST_PROBE_SECONDS = 1.0
"""Seconds before the first health probe of an endpoint taken out; doubled after each failed probe."""
MAX_PROBE_SECONDS = 30.0


@contextlib.contextmanager
def endpoint_tally() -> Iterator[EndpointTally]:
    """Count the calls and errors per endpoint made inside this block (and the tasks it starts)."""
    tally: EndpointTally = {}
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


def add_tallies(total: dict[str, dict[str, int]], tally: EndpointTally) -> None:
    for url, (calls, errors) in tally.items():
        seen = total.setdefault(url, {"calls": 0, "errors": 0})
        seen["calls"] += calls
        seen["errors"] += errors


@dataclass
class _Endpoint:
    url: str
    outstanding: int = 0
    sent: int = 0
    up: bool = True


@functools.cache
def _tls_context() -> Any:
    """The TLS context every run of a process shares: httpx builds the same one for each client,
    reading the CA bundle each time (a tenth of a second per run)."""
    return httpx2.create_ssl_context()


class BalancedClient(openai.DefaultAioHttpClient):  # type: ignore[misc, valid-type]
    """`openai.DefaultAioHttpClient` that routes each group's requests (see the module docstring).

    `groups` are the endpoint lists of the run (the generator's, the judge's, ...); a request goes
    to the group whose first URL it starts with. Requests to other URLs pass through unchanged.
    """

    def __init__(self, groups: Sequence[Sequence[str]], **kwargs: Any) -> None:
        super().__init__(verify=_tls_context(), **kwargs)
        self._groups: dict[str, list[_Endpoint]] = {}
        for group in groups:
            urls = [url.rstrip("/") for url in group]
            known = self._groups.setdefault(urls[0], [_Endpoint(url) for url in urls])
            if [e.url for e in known] != urls:
                raise ValueError(f"two endpoint lists start with {urls[0]}: give each role's list another first URL")
        self._probes: set[asyncio.Task[None]] = set()

    def _group(self, url: str) -> tuple[str, list[_Endpoint]] | None:
        for primary, endpoints in self._groups.items():
            if url == primary or url.startswith(primary + "/"):
                return primary, endpoints
        return None

    @staticmethod
    def _pick(endpoints: list[_Endpoint], tried: set[str]) -> _Endpoint:
        """The endpoint up with the fewest requests outstanding (then the fewest sent); when every
        untried one is out, the untried one with the fewest outstanding, so the request fails fast
        and the SDK's backoff decides."""
        untried = [e for e in endpoints if e.url not in tried] or endpoints
        candidates = [e for e in untried if e.up] or untried
        return min(candidates, key=lambda e: (e.outstanding, e.sent))

    async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        found = self._group(str(request.url))
        if found is None:
            return await super().send(request, **kwargs)
        primary, endpoints = found
        rest = str(request.url)[len(primary) :]
        tally = _TALLY.get()
        tried: set[str] = set()
        while True:
            endpoint = self._pick(endpoints, tried)
            tried.add(endpoint.url)
            request.url = httpx2.URL(endpoint.url + rest)
            request.headers["Host"] = request.url.netloc.decode()
            counts = tally.setdefault(endpoint.url, [0, 0]) if tally is not None else [0, 0]
            counts[0] += 1
            endpoint.outstanding += 1
            endpoint.sent += 1
            try:
                response = await super().send(request, **kwargs)
            except httpx2.TransportError as exc:
                counts[1] += 1
                self._take_out(endpoint)
                if isinstance(exc, httpx2.ConnectError) and len(tried) < len(endpoints):
                    continue  # never reached the server: another endpoint answers it now
                raise  # may have reached it: the openai SDK retries with backoff, elsewhere
            finally:
                endpoint.outstanding -= 1
            if response.status_code >= 500:
                counts[1] += 1
            return response

    def _take_out(self, endpoint: _Endpoint) -> None:
        if endpoint.up:
            endpoint.up = False
            probe = asyncio.get_running_loop().create_task(self._probe(endpoint))
            self._probes.add(probe)
            probe.add_done_callback(self._probes.discard)

    async def _probe(self, endpoint: _Endpoint) -> None:
        """Back in once `GET <url>/models` gets any answer but a 5xx."""
        wait = FIRST_PROBE_SECONDS
        while not endpoint.up:
            await asyncio.sleep(wait)
            with contextlib.suppress(httpx2.HTTPError):
                response = await super().send(self.build_request("GET", endpoint.url + "/models", timeout=10.0))
                await response.aclose()
                endpoint.up = response.status_code < 500
            wait = min(wait * 2, MAX_PROBE_SECONDS)

    async def aclose(self) -> None:
        for probe in list(self._probes):
            probe.cancel()
        await super().aclose()


def endpoint_groups(base_urls: Sequence[str | None]) -> list[list[str]]:
    """The endpoint lists among the run's `base_url` values (one per role), but the embedded one."""
    return [endpoint_urls(value) for value in dict.fromkeys(base_urls) if value and value != EMBEDDED]


@contextmanager
def model_server(context: dict[str, Any], threads: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield the context with a concrete `base_url`, starting the embedded server if asked (the CLI
    and `aidsafe serve` both need one).

    The embedded server is stopped by PID when the block ends, also on Ctrl-C and errors.
    """
    if Context(**context).base_url != EMBEDDED:
        yield context
        return
    with EmbeddedServer(n_threads=threads) as server:
        yield {**context, "base_url": server.base_url}
