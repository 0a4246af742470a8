"""`aidsafe serve`'s settings, apart from the app so the CLI builds its flags without the serve extra."""

from __future__ import annotations

import os
from dataclasses import field
from typing import Any

import pydantic

from aidsafe.nodes.context import DEFAULT_MAX_PROMPT_CHARS, AtLeastOne, Deliberators, Seconds


@pydantic.dataclasses.dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """The server's settings; each annotation is the valid range (`aidsafe serve`'s flags check it)."""

    context: dict[str, Any] = field(default_factory=dict)
    """Server-side context fields (the CLI's model flags); `base_url` 'embedded' starts the bundled model."""
    n_deliberators: Deliberators = 2
    api_key: str | None = field(default_factory=lambda: os.environ.get("AIDSAFE_API_KEY") or None)
    """When set, every route but /health needs it as a bearer token or an `X-API-Key` header."""
    max_body_bytes: AtLeastOne = 1_000_000
    max_batch_inputs: AtLeastOne = 32
    """Inputs one `/batch` request may hold: each is a whole deliberation."""
    max_prompt_chars: AtLeastOne = DEFAULT_MAX_PROMPT_CHARS
    """The CLI's prompt limit (`--max-prompt-chars`), for every prompt a request brings."""
    header_timeout: Seconds = 10.0
    """Seconds a client has to send a request's headers (from connecting or the previous response)."""
    body_timeout: Seconds = 30.0
    """Seconds a client has to send a request's body, once its headers are in."""
    allow_client_base_url: bool = False
    """Let clients set `base_url`/`judge_base_url`/`scorer_url`: only on trusted networks (see `app`)."""
