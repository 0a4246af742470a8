"""What every batch subcommand (`generate`, `prefer`) shares: input and engine flags, the run on the
batch engine, the summary and the exit code. A subcommand differs only in its job and its reader."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.engine import GraphJob
from aidsafe.batch.inputs import DEFAULT_MAX_PROMPT_CHARS, InputProblem, Sample, read_samples
from aidsafe.batch.prices import PriceError, PriceTable, load_prices
from aidsafe.cli.options import add_model_arguments, context_from_args, model_server
from aidsafe.nodes.context import EMBEDDED, Context
from aidsafe.policies import PolicyFileError, load_policies

REMOTE_CONCURRENCY = 16
"""Default for a remote server; the embedded llama.cpp server answers one request at a time."""
SAMPLES_PER_WORKER = 32
"""Samples in flight per worker process when `--workers` is not given. One process's client work
(~5 ms of CPU per model call) falls behind beyond about this many; see benchmarks/throughput.py."""

JobFactory = Callable[[dict[str, Any], argparse.Namespace], GraphJob]
"""Builds the job from the served context (concrete `base_url`) and the parsed flags."""
OutputKind = str | Callable[[argparse.Namespace], str]
"""The `kind` in the default output name `<input name>.<kind>.jsonl`, fixed or chosen by a flag."""
Reader = Callable[..., Iterator[Sample | InputProblem]]
"""`read_samples` or a wrapper with its signature."""


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="JSONL, JSON array, CSV files or `save_to_disk` dataset folders.")
    parser.add_argument("--prompt-field", default="prompt", help="Column holding the prompt (default: prompt).")
    parser.add_argument("--limit", type=int, default=None, help="Take only the first N valid prompts.")
    parser.add_argument(
        "--max-prompt-chars",
        type=int,
        default=DEFAULT_MAX_PROMPT_CHARS,
        help=f"Longer prompts go to the errors file (default {DEFAULT_MAX_PROMPT_CHARS:,}).",
    )


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help=f"Samples in flight (default: 1 on the embedded model, {REMOTE_CONCURRENCY} on a server).",
    )
    parser.add_argument("--rpm", type=float, default=None, help="At most this many model requests per minute.")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"Worker processes sharing the batch (default: one per {SAMPLES_PER_WORKER} samples in flight, "
        "at most one per core; 1 on the embedded model).",
    )
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    add_price_arguments(parser)


def add_price_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dollars (prices in USD per million tokens)")
    group.add_argument("--prices", metavar="FILE", help="YAML price file: model -> {input, output, cached_input}.")
    group.add_argument("--input-price", type=float, metavar="USD", help="Input price of every model not in --prices.")
    group.add_argument("--output-price", type=float, metavar="USD", help="Output price of every model not in --prices.")
    group.add_argument(
        "--cached-input-price", type=float, metavar="USD", help="Price of prompt tokens read from a prompt cache."
    )
    group.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="Start no sample once the output's cost (earlier runs included) would pass this; samples in flight "
        "finish. Run again with a higher cap to continue. Needs prices.",
    )


def prices_from_args(args: argparse.Namespace, models: Iterable[str]) -> PriceTable | None:
    """The run's price table, checked against the models it will call; `PriceError` if unusable."""
    prices = load_prices(args.prices, args.input_price, args.output_price, args.cached_input_price)
    if args.max_cost is not None:
        if prices is None:
            raise PriceError("--max-cost needs prices: --prices FILE, or --input-price and --output-price")
        if args.max_cost <= 0:
            raise PriceError(f"--max-cost must be more than 0 (got {args.max_cost:g})")
    if prices is not None:
        prices.check_models(models)
    return prices


def default_output(inputs: list[str], kind: str) -> Path:
    return Path(f"{Path(inputs[0]).name.split('.')[0]}.{kind}.jsonl")


def batch_options(
    args: argparse.Namespace, output: Path, embedded: bool, prices: PriceTable | None = None
) -> BatchOptions:
    concurrency = args.concurrency or (1 if embedded else REMOTE_CONCURRENCY)
    workers = args.workers or (1 if embedded else min(os.cpu_count() or 1, math.ceil(concurrency / SAMPLES_PER_WORKER)))
    return BatchOptions(
        output=output,
        concurrency=concurrency,
        rpm=args.rpm,
        workers=max(1, workers),
        progress=not args.no_progress,
        prices=prices,
        max_cost=args.max_cost,
    )


def run_command(args: argparse.Namespace, *, kind: OutputKind, make_job: JobFactory, reader: Reader) -> int:
    """Check the policies, start the model server if asked, run the batch, print the summary.

    Exit code 0 when every sample has a record, 1 when some failed or input lines were bad, 2 for
    an unusable policy or price file, 3 when `--max-cost` stopped the run (a re-run with a higher
    cap continues), 130 on Ctrl-C (finished records are kept; the same command resumes).
    """
    context = context_from_args(args)
    try:
        load_policies(context.get("policy_file"))
        prices = prices_from_args(args, make_job(context, args).fingerprint.get("role_models", {}).values())
    except (PolicyFileError, PriceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else default_output(args.inputs, kind(args) if callable(kind) else kind)
    embedded = Context(**context).base_url == EMBEDDED
    read = partial(
        reader,
        args.inputs,
        prompt_field=args.prompt_field,
        max_prompt_chars=args.max_prompt_chars,
        limit=args.limit,
    )
    options = batch_options(args, output, embedded, prices)
    try:
        with model_server(context) as served:
            summary = run_batch(make_job(served, args), read, options)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished records are in {output}; run the same command to resume", file=sys.stderr)
        return 130
    print(summary.text())
    if summary.stopped_at_cost:
        return 3
    return 0 if summary.ok else 1


def register_batch_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str | None,
    kind: OutputKind,
    make_job: JobFactory,
    reader: Reader = read_samples,
) -> argparse.ArgumentParser:
    """Add a batch subcommand writing `<input name>.<kind>.jsonl` by default; returns its parser."""
    parser = subparsers.add_parser(name, help=help, description=description)
    add_input_arguments(parser)
    shown = "<kind>" if callable(kind) else kind
    parser.add_argument(
        "-o", "--output", default=None, help=f"Output JSONL (default: <input name>.{shown}.jsonl here)."
    )
    add_batch_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(run=partial(run_command, kind=kind, make_job=make_job, reader=reader))
    return parser
