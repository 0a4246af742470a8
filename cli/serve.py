"""`aidsafe serve`: the graphs as a LangServe HTTP API (invoke, batch, stream, schemas, playground)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
from typing import Any

from aidsafe.cli.options import Port, add_model_arguments, add_setting, context_from_args, setting_type
from aidsafe.nodes.context import DEFAULT_MAX_PROMPT_CHARS
from aidsafe.serving.settings import ServeSettings


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the graphs over HTTP with LangServe",
        description=__doc__ + " Set AIDSAFE_API_KEY to require 'Authorization: Bearer <key>' or "
        "'X-API-Key: <key>' on every route but /health.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1: this machine only).")
    parser.add_argument("--port", type=setting_type(Port), default=8000, help="Port (default 8000).")
    add_setting(
        parser,
        ServeSettings,
        "max_body_bytes",
        default=1_000_000,
        help="Larger request bodies get 413 (default 1000000).",
    )
    add_setting(
        parser,
        ServeSettings,
        "max_batch_inputs",
        default=32,
        help="More inputs in one /batch request get 413 (default 32).",
    )
    add_setting(
        parser,
        ServeSettings,
        "max_prompt_chars",
        default=DEFAULT_MAX_PROMPT_CHARS,
        help=f"Longer prompts get 422, as the CLI refuses them (default {DEFAULT_MAX_PROMPT_CHARS:,}).",
    )
    add_setting(
        parser,
        ServeSettings,
        "header_timeout",
        default=10.0,
        help="Seconds a client has to send a request's headers; slower clients get 408 and are disconnected "
        "(default 10).",
    )
    add_setting(
        parser,
        ServeSettings,
        "body_timeout",
        default=30.0,
        help="Seconds a client has to send a request's body once its headers are in (default 30).",
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

        from aidsafe.serving import create_app
        from aidsafe.serving.app import server_config
    except ImportError as exc:
        print(f"aidsafe serve needs the 'serve' extra: pip install 'aidsafe[serve]' ({exc})", file=sys.stderr)
        return 2

    settings = ServeSettings(
        context=context_from_args(args),
        n_deliberators=args.n_deliberators,
        max_body_bytes=args.max_body_bytes,
        max_batch_inputs=args.max_batch_inputs,
        max_prompt_chars=args.max_prompt_chars,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
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
        uvicorn.Server(server_config(create_app(settings), settings, host=args.host, port=args.port)).run()
    return 0
