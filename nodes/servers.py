"""What kind of OpenAI-compatible server a base URL is, by what the server says of itself.

The form of a structured answer's request depends on it (`nodes/llm.structured_output_mode`): only
llama-cpp-python's server refuses OpenAI's `json_schema` (HTTP 500), and only OpenAI's own API needs
`strict` to enforce a schema. `GET <base_url>/models` tells them apart: llama-cpp-python lists each
model as `{"owned_by": "me", "permissions": []}` (vLLM's cards say `"owned_by": "vllm"`, SGLang's
"sglang", llama.cpp's own server "llamacpp"), and OpenAI's API answers with an `openai-version`
header. The embedded model is llama-cpp-python's server, and api.openai.com is OpenAI, without asking.

Asked once per URL per process, with a short timeout, never on an event loop: a batch asks before
its samples start (`batch/engine.open_graph`, in a thread, in every worker process and Ray actor),
an agent node run with `ainvoke` (LangGraph's API server, LangServe) in a thread at its first call,
one run with `invoke` at its first call. A server that does not answer is taken for one that takes `json_schema`,
as every common server but llama-cpp-python's does: a wrong guess fails loudly (HTTP 500 on every
call) rather than silently unconstrained, and the warning names the setting that overrides it.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal
from urllib.parse import urlparse

import httpx

from aidsafe.nodes.context import EMBEDDED, endpoint_urls

ServerKind = Literal["llama-cpp-python", "openai", "other"]
PROBE_SECONDS = 3.0
"""Timeout of the one `GET /models` per server and process."""

log = logging.getLogger(__name__)
_kinds: dict[str, ServerKind] = {}
_lock = threading.Lock()


def server_kind(base_url: str, api_key: str | None = None) -> ServerKind:
    """The kind of the server at `base_url` (its first endpoint when there are several); blocks
    while it asks, so async code first makes sure it is `known` (`nodes/agent.py`)."""
    if (kind := _without_asking(base_url)) is not None:
        return kind
    url = endpoint_urls(base_url)[0].rstrip("/")
    with _lock:  # threads of one process (LangServe, a sync graph) ask once
        if url not in _kinds:
            _kinds[url] = _ask(url, api_key)
        return _kinds[url]


def known(base_url: str) -> bool:
    """Whether `server_kind` answers without asking the server."""
    return _without_asking(base_url) is not None


def is_openai_api(base_url: str) -> bool:
    """Whether `base_url` (its first endpoint) is OpenAI's own API, known by its host name."""
    urls = endpoint_urls(base_url)
    return bool(urls) and urlparse(urls[0]).hostname == "api.openai.com"


OFFLINE_BASE_URL = "http://offline.invalid/v1"
"""The base URL of `--mode offline` runs, which have no server (`vllm run-batch` answers files):
taken for a server that takes `json_schema`, without asking."""


def _without_asking(base_url: str) -> ServerKind | None:
    if base_url == EMBEDDED:
        return "llama-cpp-python"
    urls = endpoint_urls(base_url)
    if not urls or base_url == OFFLINE_BASE_URL:
        return "other"
    return "openai" if is_openai_api(base_url) else _kinds.get(urls[0].rstrip("/"))


def _ask(url: str, api_key: str | None) -> ServerKind:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{url}/models", headers=headers, timeout=PROBE_SECONDS)
        response.raise_for_status()
        models = response.json().get("data")
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        log.warning(
            "%s/models did not say which server this is (%s): sending OpenAI's json_schema; "
            "for llama-cpp-python's server set structured_output to json_object",
            url,
            exc,
        )
        return "other"
    if "openai-version" in response.headers:
        return "openai"
    if models and all(
        isinstance(model, dict) and model.get("owned_by") == "me" and "permissions" in model for model in models
    ):
        return "llama-cpp-python"
    return "other"
