"""A safety classifier served over HTTP as the violation scorer (the paper used ShieldGemma).

It receives a POST with JSON `{prompt, thoughts, response, policies}` (thoughts as a list of
texts, policies as in the policy file) and answers `{"score": s}` with 0 <= s <= 1. Any failure
(unreachable, HTTP error, an answer that does not fit) ends the sample with an error naming the
classifier's URL, like an agent that gives up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import ValidationError

from aidsafe.nodes.context import Context, node_context
from aidsafe.policies import PolicyFileError, load_policies
from aidsafe.state.answers import ClassifierVerdict
from aidsafe.state.preference import PreferenceState, Side, output_to_score, scored


class ClassifierFailure(RuntimeError):
    pass


@contextmanager
def failures_of(url: str) -> Iterator[None]:
    """Turn whatever goes wrong talking to the classifier into one error that names it."""
    try:
        yield
    except (httpx.HTTPError, ValidationError) as exc:
        raise ClassifierFailure(f"safety classifier at {url} failed: {type(exc).__name__}: {exc}") from exc


def verdict(response: httpx.Response) -> float:
    response.raise_for_status()
    return ClassifierVerdict.model_validate_json(response.content).score


class HttpSafetyClassifier:
    """`ViolationScorer` backed by an HTTP classifier at `url`, or at the run's `scorer_url`."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def _request(
        self, state: PreferenceState, side: Side, config: RunnableConfig
    ) -> tuple[Context, str, dict[str, Any]]:
        ctx = node_context(config)
        url = self.url or ctx.scorer_url
        if not url:
            raise ClassifierFailure("no safety classifier configured: set scorer_url")
        sample = output_to_score(state, side)
        body = {
            "prompt": state["prompt"],
            "thoughts": [t["text"] for t in sample["thoughts"]],
            "response": sample["response"],
            "policies": load_policies(ctx.policy_file).model_dump(mode="json")["policies"],
        }
        return ctx, url, body

    def node(self, name: str, side: Side) -> RunnableLambda:
        def failed(exc: Exception) -> dict[str, Any]:
            return {"error": {"node": name, "message": str(exc)}}

        def run(state: PreferenceState, config: RunnableConfig) -> dict[str, Any]:
            try:
                ctx, url, body = self._request(state, side, config)
                transport = httpx.HTTPTransport(retries=ctx.http_retries)
                with httpx.Client(transport=transport, timeout=ctx.request_timeout) as client, failures_of(url):
                    return scored(state, side, verdict(client.post(url, json=body)))
            except (ClassifierFailure, PolicyFileError) as exc:
                return failed(exc)

        async def arun(state: PreferenceState, config: RunnableConfig) -> dict[str, Any]:
            try:
                ctx, url, body = self._request(state, side, config)
                transport = httpx.AsyncHTTPTransport(retries=ctx.http_retries)
                async with httpx.AsyncClient(transport=transport, timeout=ctx.request_timeout) as client:
                    with failures_of(url):
                        return scored(state, side, verdict(await client.post(url, json=body)))
            except (ClassifierFailure, PolicyFileError) as exc:
                return failed(exc)

        return RunnableLambda(run, afunc=arun, name=name)
