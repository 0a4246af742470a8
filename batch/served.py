"""A run's context with a concrete model server: what the CLI and `aidsafe serve` both need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aidsafe.embedded.llama_server import EmbeddedServer
from aidsafe.nodes.context import EMBEDDED, Context


@contextmanager
def model_server(context: dict[str, Any], threads: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield the context with a concrete `base_url`, starting the embedded server if asked.

    The embedded server is stopped by PID when the block ends, also on Ctrl-C and errors.
    """
    if Context(**context).base_url != EMBEDDED:
        yield context
        return
    with EmbeddedServer(n_threads=threads) as server:
        yield {**context, "base_url": server.base_url}
