"""`aidsafe generate`: turn a file of prompts into deliberation records, resumably."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from batch.driver import BatchOptions, run_batch
from batch.generate import generate_job
from batch.inputs import DEFAULT_MAX_PROMPT_CHARS, read_samples
from cli.options import add_model_arguments, context_from_args, model_server
from nodes.context import EMBEDDED, Context
from policies import PolicyFileError, load_policies

REMOTE_CONCURRENCY = 16
"""Default for a remote server; the embedded llama.cpp server answers one request at a time."""


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Input options every batch subcommand shares."""
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
    """Engine options every batch subcommand shares."""
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help=f"Samples in flight (default: 1 on the embedded model, {REMOTE_CONCURRENCY} on a server).",
    )
    parser.add_argument("--rpm", type=float, default=None, help="At most this many model requests per minute.")
    parser.add_argument(
        "--workers", type=int, default=1, help="Worker processes sharing the batch (use the cores at high concurrency)."
    )
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")


def default_output(inputs: list[str], kind: str) -> Path:
    return Path(f"{Path(inputs[0]).name.split('.')[0]}.{kind}.jsonl")


def batch_options(args: argparse.Namespace, output: Path, embedded: bool) -> BatchOptions:
    return BatchOptions(
        output=output,
        concurrency=args.concurrency or (1 if embedded else REMOTE_CONCURRENCY),
        rpm=args.rpm,
        workers=max(1, args.workers),
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    context = context_from_args(args)
    try:
        load_policies(context.get("policy_file"))
    except PolicyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = (
        Path(args.output) if args.output else default_output(args.inputs, "baseline" if args.baseline else "generated")
    )
    embedded = Context(**context).base_url == EMBEDDED

    read = partial(
        read_samples,
        args.inputs,
        prompt_field=args.prompt_field,
        max_prompt_chars=args.max_prompt_chars,
        limit=args.limit,
    )
    options = batch_options(args, output, embedded)
    try:
        with model_server(context) as served:
            summary = run_batch(generate_job(served, args.n_deliberators, zero_shot=args.baseline), read, options)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished records are in {output}; run the same command to resume", file=sys.stderr)
        return 130
    print(summary.text())
    return 0 if summary.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="Deliberate over every prompt of a file; write one JSON line per prompt.",
        description=__doc__,
    )
    add_input_arguments(parser)
    parser.add_argument(
        "-o", "--output", default=None, help="Output JSONL (default: <input name>.generated.jsonl here)."
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="Run the zero-shot single-call baseline (LLM_ZS) instead of the deliberation; "
        "default output <input name>.baseline.jsonl. Compare the two with `aidsafe evaluate`.",
    )
    add_batch_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(run=run)
