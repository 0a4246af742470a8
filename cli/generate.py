"""`aidsafe generate`: turn a file of prompts into deliberation records, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.generate import generate_job
from aidsafe.batch.inputs import read_samples
from aidsafe.cli.batch import default_output, register_batch_command, run_command
from aidsafe.cli.clean import add_clean_arguments, cleaning_reader


def make_job(context: dict[str, Any], args: argparse.Namespace) -> GraphJob:
    return generate_job(context, args.n_deliberators, zero_shot=args.baseline)


def output_kind(args: argparse.Namespace) -> str:
    return "baseline" if args.baseline else "generated"


def run(args: argparse.Namespace) -> int:
    """With `--clean`, the clean step runs first and the batch reads only the prompts it kept."""
    reader = read_samples
    if args.clean or args.against or args.against_suites:
        output = Path(args.output) if args.output else default_output(args.inputs, output_kind(args))
        reader = cleaning_reader(args, output)
    return run_command(args, kind=output_kind, make_job=make_job, reader=reader)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = register_batch_command(
        subparsers,
        "generate",
        help="Deliberate over every prompt of a file; write one JSON line per prompt.",
        description=__doc__,
        kind=output_kind,
        make_job=make_job,
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="Run the zero-shot single-call baseline (LLM_ZS) instead of the deliberation; default output "
        "<input name>.baseline.jsonl (else .generated.jsonl). Compare the two with `aidsafe evaluate`.",
    )
    group = parser.add_argument_group("clean first (docs/decontamination.md)")
    group.add_argument(
        "--clean",
        action="store_true",
        help="Drop duplicate prompts and prompts overlapping benchmark suites before any is paid for (implied "
        "by the flags below); the dropped ones and why go to <output>.dropped.jsonl, the counts to "
        "<output>.decontamination.json.",
    )
    add_clean_arguments(group)
    parser.set_defaults(run=run)
