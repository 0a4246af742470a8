"""`aidsafe generate`: turn a file of prompts into deliberation records, resumably."""

from __future__ import annotations

import argparse
from typing import Any

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.generate import generate_job
from aidsafe.cli.batch import register_batch_command


def make_job(context: dict[str, Any], args: argparse.Namespace) -> GraphJob:
    return generate_job(context, args.n_deliberators, zero_shot=args.baseline)


def output_kind(args: argparse.Namespace) -> str:
    return "baseline" if args.baseline else "generated"


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
