"""Model and run options shared by every subcommand, generated from `nodes.context.Context`.

One flag per context field (`--base-url`, `--model`, `--judge-model`, `--max-rounds`, ...), so the
CLI, Studio and LangServe expose the same configuration with the same help text, and each flag
checks its value against the field's annotation: the one definition of its valid range.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any, get_args

from annotated_types import Interval
from pydantic import ValidationError

from aidsafe.nodes.context import (
    Context,
    Deliberators,
    check_value,
    context_problems,
    setting_annotation,
    setting_annotations,
)

Port = Annotated[int, Interval(ge=0, le=65535)]
"""A port to listen on, for `aidsafe serve` and `aidsafe view --label`; 0 lets the system pick a free one."""

ENVIRONMENT_DEFAULTS = {"model": "AIDSAFE_MODEL", "base_url": "OPENAI_BASE_URL"}
"""Context fields whose default comes from an environment variable (named in messages)."""
ENDPOINT_FIELDS = ("base_url", "judge_base_url")
"""Fields whose flag may be repeated (or name a file of URLs): several endpoints of one model."""


class UsageError(Exception):
    """A command that cannot run as given (a flag's value, a path, a missing file): exit code 2,
    before anything is written or any model is called."""


def flag_of(name: str) -> str:
    return "--policies" if name == "policy_file" else "--" + name.replace("_", "-")


def setting_type(annotation: Any) -> Callable[[str], Any]:
    """An argparse `type` that converts and range-checks a flag's text with the setting's annotation."""

    def parse(text: str) -> Any:
        try:
            return check_value(annotation, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_setting(parser: Any, owner: type, name: str, *flags: str, **options: Any) -> None:
    """A flag for field `name` of the settings dataclass `owner`, checked by its annotation."""
    parser.add_argument(
        *(flags or (flag_of(name),)), dest=name, type=setting_type(setting_annotation(owner, name)), **options
    )


def endpoints_type(annotation: Any) -> Callable[[str], str]:
    """An argparse `type` for a `base_url` flag: URLs, or a file with one URL per line (`#`
    comments), joined by commas and checked by the setting's annotation."""
    check = setting_type(annotation)

    def parse(text: str) -> str:
        path = Path(text)
        if "://" in text or not path.is_file():
            try:
                return str(check(text))
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(f"{exc}, nor a file of URLs") from None
        lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
        urls = [line for line in lines if line]
        if not urls:
            raise argparse.ArgumentTypeError(f"{text}: no URL in the file (one http(s):// URL per line)")
        try:
            return str(check(",".join(urls)))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{text}: {exc}") from None

    return parse


def add_model_arguments(parser: argparse.ArgumentParser, exclude: Collection[str] = ()) -> None:
    """One flag per context field, plus `--n-deliberators`; `exclude` names the ones a command
    defines its own way (`aidsafe bench` uses `--model` for the models under test)."""
    group = parser.add_argument_group("model and deliberation (default: the embedded SmolLM2-135M)")
    hints = setting_annotations(Context, extras=False)
    for field in dataclasses.fields(Context):
        if field.name in exclude:
            continue
        hint = hints[field.name]
        description = field.metadata.get("description")
        if field.name in ENDPOINT_FIELDS:
            group.add_argument(
                flag_of(field.name),
                dest=field.name,
                type=endpoints_type(setting_annotation(Context, field.name)),
                action="append",
                default=None,
                help=f"{description} Repeat the flag, or give a file of URLs.",
            )
            continue
        choices = get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        add_setting(group, Context, field.name, choices=choices, default=None, help=description)
    if "n_deliberators" not in exclude:
        group.add_argument(
            "--n-deliberators",
            type=setting_type(Deliberators),
            default=2,
            help="Deliberating agents per round (default 2).",
        )


def context_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The context fields the user set; the rest keep their defaults (and environment fallbacks).

    The whole context is checked here, so a bad value from the environment is named before any
    work starts, with the flag that overrides it.
    """
    values = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(Context)
        if getattr(args, field.name, None) is not None
    }
    for name in ENDPOINT_FIELDS:
        if isinstance(values.get(name), list):
            values[name] = ",".join(values[name])
    try:
        Context(**values)
    except ValidationError as exc:
        problems = []
        for name, message in context_problems(exc):
            from_environment = name in ENVIRONMENT_DEFAULTS and name not in values
            source = f" (from ${ENVIRONMENT_DEFAULTS[name]})" if from_environment else ""
            problems.append(f"{flag_of(name)}{source}: {message}")
        raise UsageError("; ".join(problems)) from None
    return values
