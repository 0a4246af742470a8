"""`aidsafe prefer`: turn prompts, or `aidsafe generate` records, into DPO preference records, resumably.

A row with `thoughts` (a line of `aidsafe generate` output) keeps its thoughts and response as the
chosen sample: nothing is generated twice. Any other row is a prompt, deliberated for the chosen side
first. Rejected samples are policy-violating on purpose; every record says `negative_example: true`.
"""

from __future__ import annotations

import argparse
from typing import Any

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.prefer import prefer_job, read_preference_samples
from aidsafe.cli.batch import register_batch_command


def make_job(context: dict[str, Any], args: argparse.Namespace) -> GraphJob:
    return prefer_job(context, args.n_deliberators)


def register(subparsers: argparse._SubParsersAction) -> None:
    register_batch_command(
        subparsers,
        "prefer",
        help="Chosen/rejected reasoning pairs (ear-whisperer) for every prompt or generate record.",
        description=__doc__,
        kind="preference",
        make_job=make_job,
        reader=read_preference_samples,
    )
