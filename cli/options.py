"""Model and run options shared by every subcommand, generated from `nodes.context.Context`.

One flag per context field (`--base-url`, `--model`, `--judge-model`, `--max-rounds`, ...), so the
CLI, Studio and LangServe expose the same configuration with the same help text.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Collection
from typing import Any, get_args

from aidsafe.nodes.context import Context


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_model_arguments(parser: argparse.ArgumentParser, exclude: Collection[str] = ()) -> None:
    """One flag per context field, plus `--n-deliberators`; `exclude` names the ones a command
    defines its own way (`aidsafe bench` uses `--model` for the models under test)."""
    group = parser.add_argument_group("model and deliberation (default: the embedded SmolLM2-135M)")
    hints = typing.get_type_hints(Context)
    for field in dataclasses.fields(Context):
        if field.name in exclude:
            continue
        hint = hints[field.name]
        choices = get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        base = next((t for t in (int, float, str) if t is hint or t in get_args(hint)), str)
        flag = "--policies" if field.name == "policy_file" else _flag(field.name)
        group.add_argument(
            flag,
            dest=field.name,
            type=base,
            choices=choices,
            default=None,
            help=field.metadata.get("description"),
        )
    if "n_deliberators" not in exclude:
        group.add_argument("--n-deliberators", type=int, default=2, help="Deliberating agents per round (default 2).")


def context_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The context fields the user set; the rest keep their defaults (and environment fallbacks)."""
    return {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(Context)
        if getattr(args, field.name, None) is not None
    }
