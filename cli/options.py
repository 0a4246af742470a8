"""Model and run options shared by every subcommand, generated from `nodes.context.Context`.

One flag per context field (`--base-url`, `--model`, `--judge-model`, `--max-rounds`, ...), so the
CLI, Studio and LangServe expose the same configuration with the same help text.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, get_args

from aidsafe.nodes.context import EMBEDDED, Context

ENDPOINT_FIELDS = ("base_url", "judge_base_url")
"""Fields whose flag may be repeated (or name a file of URLs): several endpoints of one model."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def endpoints_value(value: str) -> str:
    """A URL, or a file with one URL per line (`#` comments), as a comma-separated `base_url` value."""
    path = Path(value)
    if value == EMBEDDED or value.startswith(("http://", "https://")):
        urls = [value]
    elif path.is_file():
        lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
        urls = [line for line in lines if line]
        bad = [url for url in urls if not url.startswith(("http://", "https://"))]
        if bad or not urls:
            raise argparse.ArgumentTypeError(f"{value}: expected one http(s):// URL per line, got {bad or 'none'}")
    else:
        raise argparse.ArgumentTypeError(f"expected an http(s):// URL or a file of URLs, got {value!r}")
    return ",".join(urls)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and deliberation (default: the embedded SmolLM2-135M)")
    hints = typing.get_type_hints(Context)
    for field in dataclasses.fields(Context):
        hint = hints[field.name]
        choices = get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        base = next((t for t in (int, float, str) if t is hint or t in get_args(hint)), str)
        flag = "--policies" if field.name == "policy_file" else _flag(field.name)
        if field.name in ENDPOINT_FIELDS:
            group.add_argument(
                flag,
                dest=field.name,
                type=endpoints_value,
                action="append",
                default=None,
                help=f"{field.metadata.get('description')} Repeat the flag, or give a file of URLs.",
            )
            continue
        group.add_argument(
            flag,
            dest=field.name,
            type=base,
            choices=choices,
            default=None,
            help=field.metadata.get("description"),
        )
    group.add_argument("--n-deliberators", type=int, default=2, help="Deliberating agents per round (default 2).")


def context_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The context fields the user set; the rest keep their defaults (and environment fallbacks)."""
    values = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(Context)
        if getattr(args, field.name, None) is not None
    }
    for name in ENDPOINT_FIELDS:
        if isinstance(values.get(name), list):
            values[name] = ",".join(values[name])
    return values
