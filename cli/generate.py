"""`aidsafe generate`: turn a file of prompts into deliberation records, resumably."""

from __future__ import annotations

import argparse

from batch.generate import generate_job
from cli.batch import register_batch_command


def register(subparsers: argparse._SubParsersAction) -> None:
    register_batch_command(
        subparsers,
        "generate",
        help="Deliberate over every prompt of a file; write one JSON line per prompt.",
        description=__doc__,
        kind="generated",
        make_job=generate_job,
    )
