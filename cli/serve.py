"""`aidsafe serve`: the graphs as a LangServe HTTP API (invoke, batch, stream, schemas, playground)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
from typing import Any

from aidsafe.cli.options import add_model_arguments, context_from_args


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the graphs over HTTP with LangServe",
        description=__doc__ + " Set AIDSAFE_API_KEY to require 'Authorization: Bearer <key>' or "
        "'X-API-Key: <key>' on every route but /health.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1: this machine only).")
    parser.add_argument("--port", type=int, default=8000, help="Port (default 8000).")
    parser.add_argument(
        "--max-body-bytes", type=int, default=1_000_000, help="Larger request bodies get 413 (default 1000000)."
    )
    parser.add_argument(
        "--allow-client-base-url",
        action="store_true",
        help="Let requests set base_url/judge_base_url/scorer_url in their configurable. Off by default: "
        "a client could make the server call any host, with its API key.",
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from aidsafe.serving import ServeSettings, create_app
    except ImportError as exc:
        print(f"aidsafe serve needs the 'serve' extra: pip install 'aidsafe[serve]' ({exc})", file=sys.stderr)
        return 2

    settings = ServeSettings(
        context=context_from_args(args),
        n_deliberators=args.n_deliberators,
        max_body_bytes=args.max_body_bytes,
        allow_client_base_url=args.allow_client_base_url,
    )
    if settings.api_key is None and not _is_loopback(args.host):
        print(
            f"warning: serving on {args.host} without AIDSAFE_API_KEY: anyone who can reach it can run it",
            file=sys.stderr,
        )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal, which the
    # `aidsafe` command maps to KeyboardInterrupt: a requested shutdown is a clean exit.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(create_app(settings), host=args.host, port=args.port)
    return 0
