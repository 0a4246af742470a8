"""A safety classifier served over HTTP as the violation scorer (the paper used ShieldGemma).

It receives a POST with JSON `{prompt, thoughts, response, policies, part}` (thoughts as a list of
texts, policies as in the policy file) and answers `{"score": s}` with 0 <= s <= 1. `part` says what
is rated: `response` (the sample, as always), or `thoughts` (the safety gate's check of the chain of
thought alone: `response` is then empty, so a classifier that ignores `part` rates the thoughts). A request
that times out, cannot connect or gets HTTP 408, 409, 429 or 5xx is sent again, `http_retries`
times, after a backoff (the classifier's `Retry-After` when it sends one), as the openai client
does for model calls. Any failure left (unreachable, HTTP error, an answer that does not fit) ends
the sample with an error naming the classifier's URL and the attempts, like an agent that gives up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import ValidationError

from aidsafe.nodes.context import Context, node_context
from aidsafe.policies import PolicyFileError
from aidsafe.state.answers import ClassifierVerdict
from aidsafe.state.preference import Part, PreferenceState, Side, output_to_score, scored


class ClassifierFailure(RuntimeError):
    pass


@contextmanager
def failures_of(url: str, attempts: int) -> Iterator[None]:
    """Turn whatever goes wrong talking to the classifier into one error that names it."""
    try:
        yield
    except (httpx.HTTPError, ValidationError) as exc:
        retried = isinstance(exc, httpx.TransportError) or (
            isinstance(exc, httpx.HTTPStatusError) and retried_status(exc.response.status_code)
        )
        tried = f" after {attempts} attempts" if retried and attempts > 1 else ""
        raise ClassifierFailure(f"safety classifier at {url} failed{tried}: {type(exc).__name__}: {exc}") from exc


RETRIED_STATUSES = frozenset({408, 409, 429})
"""Besides 5xx: what the openai client retries too."""
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 8.0
"""Seconds before the second attempt, doubled for each one after, and the most ever waited."""


def retried_status(status: int) -> bool:
    return status >= 500 or status in RETRIED_STATUSES


def backoff(outcome: httpx.Response | httpx.TransportError, attempt: int, attempts: int) -> float | None:
    """Seconds to wait before sending attempt `attempt + 1` again, or None when `outcome` is final."""
    if attempt + 1 >= attempts:
        return None
    if isinstance(outcome, httpx.Response):
        if not retried_status(outcome.status_code):
            return None
        with suppress(ValueError):
            return min(max(float(outcome.headers.get("retry-after", "")), 0.0), MAX_BACKOFF)
    return min(FIRST_BACKOFF * 2**attempt, MAX_BACKOFF)


def post(client: httpx.Client, url: str, body: dict[str, Any], attempts: int) -> httpx.Response:
    """POST `body` with `backoff` between attempts; `apost` is the same with an async client."""
    for attempt in range(attempts):
        try:
            outcome: httpx.Response | httpx.TransportError = client.post(url, json=body)
        except httpx.TransportError as exc:  # timeouts, refused and dropped connections
            outcome = exc
        if (delay := backoff(outcome, attempt, attempts)) is None:
            break
        time.sleep(delay)
    if isinstance(outcome, httpx.TransportError):
        raise outcome
    return outcome


async def apost(client: httpx.AsyncClient, url: str, body: dict[str, Any], attempts: int) -> httpx.Response:
    for attempt in range(attempts):
        try:
            outcome: httpx.Response | httpx.TransportError = await client.post(url, json=body)
        except httpx.TransportError as exc:
            outcome = exc
        if (delay := backoff(outcome, attempt, attempts)) is None:
            break
        await asyncio.sleep(delay)
    if isinstance(outcome, httpx.TransportError):
        raise outcome
    return outcome


def verdict(response: httpx.Response) -> float:
    response.raise_for_status()
    return ClassifierVerdict.model_validate_json(response.content).score


class HttpSafetyClassifier:
    """`ViolationScorer` backed by an HTTP classifier at `url`, or at the run's `scorer_url`."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def _request(
        self, state: PreferenceState, side: Side, part: Part, config: RunnableConfig
    ) -> tuple[Context, str, dict[str, Any]]:
        ctx = node_context(config)
        url = self.url or ctx.scorer_url
        if not url:
            raise ClassifierFailure("no safety classifier configured: set scorer_url")
        sample = output_to_score(state, side)
        body = {
            "prompt": state["prompt"],
            "thoughts": [t["text"] for t in sample["thoughts"]],
            "response": "" if part == "thoughts" else sample["response"],
            "policies": ctx.policies.model_dump(mode="json")["policies"],
            "part": part,
        }
        return ctx, url, body

    def node(self, name: str, side: Side, part: Part = "response") -> RunnableLambda:
        def failed(exc: Exception) -> dict[str, Any]:
            return {"error": {"node": name, "message": str(exc)}}

        def run(state: PreferenceState, config: RunnableConfig) -> dict[str, Any]:
            try:
                ctx, url, body = self._request(state, side, part, config)
                attempts = ctx.http_retries + 1
                with httpx.Client(timeout=ctx.request_timeout) as client, failures_of(url, attempts):
                    return scored(state, side, verdict(post(client, url, body, attempts)), part)
            except (ClassifierFailure, PolicyFileError) as exc:
                return failed(exc)

        async def arun(state: PreferenceState, config: RunnableConfig) -> dict[str, Any]:
            try:
                ctx, url, body = self._request(state, side, part, config)
                attempts = ctx.http_retries + 1
                async with httpx.AsyncClient(timeout=ctx.request_timeout) as client:
                    with failures_of(url, attempts):
                        return scored(state, side, verdict(await apost(client, url, body, attempts)), part)
            except (ClassifierFailure, PolicyFileError) as exc:
                return failed(exc)

        return RunnableLambda(run, afunc=arun, name=name)
