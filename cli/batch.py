"""What every batch subcommand (`generate`, `prefer`) shares: input and engine flags, the run on the
batch engine, the summary and the exit code. A subcommand differs only in its job and its reader."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, get_args

from aidsafe.batch.driver import MODE_ALONE, BatchOptions, run_batch
from aidsafe.batch.endpoints import model_server
from aidsafe.batch.engine import GraphJob
from aidsafe.batch.files import check_outputs
from aidsafe.batch.inputs import DEFAULT_MAX_PROMPT_CHARS, InputProblem, ReadOptions, Sample, read_samples
from aidsafe.batch.prices import PriceError, PriceOptions, PriceTable
from aidsafe.cli.exit_codes import COST_CAP_REACHED
from aidsafe.cli.options import UsageError, add_model_arguments, add_setting, context_from_args
from aidsafe.embedded.llama_server import EmbeddedServerDied, died_at
from aidsafe.nodes.context import EMBEDDED, Context, setting_annotation
from aidsafe.nodes.servers import OFFLINE_BASE_URL
from aidsafe.policies import load_policies

REMOTE_CONCURRENCY = 16
"""Default for a remote server; the embedded llama.cpp server answers one request at a time."""
SAMPLES_PER_WORKER = 32
"""Samples in flight per worker process when `--workers` is not given: beyond about this many, one
process's client CPU per model call falls behind (docs/performance.md; benchmarks/throughput.py)."""

JobFactory = Callable[[dict[str, Any], argparse.Namespace], GraphJob]
"""Builds the job from the served context (concrete `base_url`) and the parsed flags."""
OutputKind = str | Callable[[argparse.Namespace], str]
"""The `kind` in the default output name `<input name>.<kind>.jsonl`, fixed or chosen by a flag."""
Reader = Callable[..., Iterator[Sample | InputProblem]]
"""`read_samples` or a wrapper with its signature."""


def add_input_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The input files and how they are read; `required=False` when a command has other inputs too."""
    parser.add_argument(
        "inputs", nargs="+" if required else "*", help="JSONL, JSON array, CSV files or `save_to_disk` dataset folders."
    )
    add_setting(
        parser, ReadOptions, "prompt_field", default="prompt", help="Column holding the prompt (default: prompt)."
    )
    add_setting(parser, ReadOptions, "limit", default=None, help="Take only the first N valid prompts.")
    add_setting(
        parser,
        ReadOptions,
        "max_prompt_chars",
        default=DEFAULT_MAX_PROMPT_CHARS,
        help=f"Longer prompts go to the errors file (default {DEFAULT_MAX_PROMPT_CHARS:,}).",
    )


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting(
        parser,
        BatchOptions,
        "concurrency",
        default=None,
        help=f"Samples in flight (default: 1 on the embedded model, {REMOTE_CONCURRENCY} on a server).",
    )
    add_setting(parser, BatchOptions, "rpm", default=None, help="At most this many model requests per minute.")
    add_setting(
        parser,
        BatchOptions,
        "workers",
        default=None,
        help=f"Worker processes sharing the batch (default: one per {SAMPLES_PER_WORKER} samples in flight, "
        "at most one per core; 1 on the embedded model).",
    )
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    add_setting(
        parser,
        BatchOptions,
        "engine",
        choices=get_args(setting_annotation(BatchOptions, "engine")),
        default="local",
        help="local: this machine's processes (default); ray: Ray actors, on a cluster or a local Ray "
        "started for the run (needs the [ray] extra). --workers is then the number of actors.",
    )
    add_setting(
        parser,
        BatchOptions,
        "ray_address",
        default=None,
        help="With --engine ray: a running cluster (auto, host:port or ray://host:port); needs --checkpoint "
        "postgresql://... since its workers may be on other machines (default: a local Ray for the run).",
    )
    add_setting(
        parser,
        BatchOptions,
        "checkpoint",
        default=None,
        metavar="postgresql://...",
        help="Keep per-sample checkpoints in this Postgres database (LangGraph's Postgres saver, [ray] extra) "
        "instead of SQLite files beside the output; any worker on any machine can then continue any sample.",
    )
    add_mode_arguments(parser)
    add_price_arguments(parser)


def add_mode_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("batch mode and dry run (docs/batch-mode.md)")
    add_setting(
        group,
        BatchOptions,
        "dry_run",
        nargs="?",
        const=0,
        default=None,
        metavar="N",
        help="Run N samples of the input for real (default: 20 or 2%% of it, whichever is larger), online, into "
        "a temporary folder, and print the estimated model calls, tokens, dollars (online and batch) and wall "
        "time for the whole input, with the spread seen; nothing is written to the output.",
    )
    add_setting(
        group,
        BatchOptions,
        "mode",
        choices=get_args(setting_annotation(BatchOptions, "mode")),
        default="online",
        help="online: one HTTP request per model call (default); batch: the provider's Batch API (Files + "
        "Batches endpoints at --base-url), every waiting call of every sample in one batch per wave, at batch "
        "prices; offline: the same waves as request files in <output>.batches/ for `vllm run-batch`, answered "
        "in results files beside them.",
    )
    add_setting(
        group,
        BatchOptions,
        "poll_seconds",
        "--batch-poll-seconds",
        default=30.0,
        help="First pause between two polls of a wave's batches; it doubles, up to 10 minutes (default 30).",
    )
    add_setting(
        group,
        BatchOptions,
        "max_batch_requests",
        default=50_000,
        help="Requests per batch file at most (default 50,000, OpenAI's limit).",
    )
    add_setting(
        group,
        BatchOptions,
        "max_batch_bytes",
        default=200_000_000,
        help="Bytes per batch file at most (default 200,000,000, OpenAI's limit).",
    )


PRICE_SETTINGS = (*(f.name for f in dataclasses.fields(PriceOptions)), "max_cost")
"""The flags of `add_price_arguments`, by their `args` names: every price setting and the cap."""


def price_flags_given(args: argparse.Namespace) -> list[str]:
    return ["--" + name.replace("_", "-") for name in PRICE_SETTINGS if getattr(args, name) is not None]


def add_price_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dollars (prices in USD per million tokens)")
    add_setting(
        group, PriceOptions, "prices", metavar="FILE", help="YAML price file: model -> {input, output, cached_input}."
    )
    add_setting(group, PriceOptions, "input_price", metavar="USD", help="Input price of every model not in --prices.")
    add_setting(group, PriceOptions, "output_price", metavar="USD", help="Output price of every model not in --prices.")
    add_setting(
        group,
        PriceOptions,
        "cached_input_price",
        metavar="USD",
        help="Price of prompt tokens read from a prompt cache.",
    )
    add_setting(
        group,
        BatchOptions,
        "max_cost",
        metavar="USD",
        help="Hard cap on the output's cost (earlier runs' records included): each model call reserves its most "
        "possible cost first, and none is sent past the cap; unfinished samples stay checkpointed and the exit "
        f"code is {COST_CAP_REACHED}. Run again with a higher cap to continue. Needs prices.",
    )


def prices_from_args(args: argparse.Namespace, models: Iterable[str]) -> PriceTable | None:
    """The run's price table, checked against the models it will call; `UsageError` if unusable."""
    options = PriceOptions(
        prices=args.prices,
        input_price=args.input_price,
        output_price=args.output_price,
        cached_input_price=args.cached_input_price,
    )
    try:
        prices = options.table()
        if args.max_cost is not None and prices is None:
            raise PriceError("--max-cost needs prices: --prices FILE, or --input-price and --output-price")
        if prices is not None:
            prices.check_models(models)
    except PriceError as exc:
        raise UsageError(str(exc)) from None
    return prices


def default_output(inputs: list[str], kind: str) -> Path:
    return Path(f"{Path(inputs[0]).name.split('.')[0]}.{kind}.jsonl")


def batch_options(
    args: argparse.Namespace,
    output: Path,
    embedded: bool,
    reads: Sequence[Path] = (),
    prices: PriceTable | None = None,
) -> BatchOptions:
    if args.ray_address and not args.checkpoint:
        raise UsageError(
            "--ray-address needs --checkpoint postgresql://... (the cluster's workers may be on other "
            "machines, where SQLite files beside the output are not)"
        )
    if args.mode != "online" and (args.engine != "local" or args.checkpoint or (args.workers or 1) > 1):
        raise UsageError(MODE_ALONE.format(mode=args.mode) + " or --workers")
    concurrency = args.concurrency or (1 if embedded else REMOTE_CONCURRENCY)
    workers = args.workers or (1 if embedded else min(os.cpu_count() or 1, math.ceil(concurrency / SAMPLES_PER_WORKER)))
    if args.mode != "online":
        workers = 1  # the waves run in this process: their graph steps need no model call
    return BatchOptions(
        output=output,
        concurrency=concurrency,
        rpm=args.rpm,
        workers=max(1, workers),
        progress=not args.no_progress,
        reads=tuple(reads),
        prices=prices,
        max_cost=args.max_cost,
        engine=args.engine,
        ray_address=args.ray_address,
        checkpoint=args.checkpoint,
        mode=args.mode,
        poll_seconds=args.poll_seconds,
        max_batch_requests=args.max_batch_requests,
        max_batch_bytes=args.max_batch_bytes,
        dry_run=args.dry_run,
    )


def interrupted(output: Path) -> int:
    """Ctrl-C or SIGTERM: one line, the resume hint, exit code 130."""
    print(f"\ninterrupted: finished records are in {output}; run the same command to resume", file=sys.stderr)
    return 130


def server_death(served: dict[str, Any], embedded: bool) -> EmbeddedServerDied | None:
    """After a batch, the embedded server's death if it died: worker processes cannot tell it from a
    refused connection (their samples end as failures), so this process asks."""
    return died_at(served["base_url"], grace=0) if embedded else None


def offline_context(args: argparse.Namespace, context: dict[str, Any]) -> dict[str, Any]:
    """`--mode offline` has no server: unless a base URL is given, the embedded model is not started
    and the requests are made as for a server that takes `json_schema` (vLLM)."""
    if args.mode == "offline" and Context(**context).base_url == EMBEDDED:
        return {**context, "base_url": OFFLINE_BASE_URL}
    return context


def run_command(args: argparse.Namespace, *, kind: OutputKind, make_job: JobFactory, reader: Reader) -> int:
    """Check the policies, start the model server if asked, run the batch, print the summary.

    Exit code 0 when every sample has a record, 1 when some failed or input lines were bad, 2 for
    an unusable flag, policy or price file or a run that cannot start (another run holds the output,
    the checkpoint store or the Ray cluster is unreachable), `COST_CAP_REACHED` (4) when `--max-cost`
    stopped the run (a re-run with a higher cap continues), 130 on Ctrl-C (finished records are kept;
    the same command resumes).
    """
    context = offline_context(args, context_from_args(args))
    output = Path(args.output) if args.output else default_output(args.inputs, kind(args) if callable(kind) else kind)
    embedded = Context(**context).base_url == EMBEDDED
    read = partial(
        reader,
        args.inputs,
        prompt_field=args.prompt_field,
        max_prompt_chars=args.max_prompt_chars,
        limit=args.limit,
    )
    reads = [Path(p) for p in args.inputs] + ([Path(context["policy_file"])] if context.get("policy_file") else [])
    reads += [Path(args.prices)] if args.prices else []
    options = batch_options(args, output, embedded, reads)
    check_outputs(options.reads, options.writes())  # before the embedded server starts
    load_policies(context.get("policy_file"))
    options.prices = prices_from_args(args, make_job(context, args).settings.role_models.values())
    try:
        with model_server(context) as served:
            summary = run_batch(make_job(served, args), read, options)
            died = server_death(served, embedded)
    except KeyboardInterrupt:
        return interrupted(output)
    print(summary.text())
    if died is not None:
        raise died
    if summary.stopped_at_cost:
        return COST_CAP_REACHED
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
