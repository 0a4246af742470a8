"""`aidsafe revise`: an output of `aidsafe generate`, revised for a new version of its policies.

The old set is `--from-policies` (default: the bundled AIDSAFE policies), the new one `--policies`.
Records none of whose thoughts cite a changed or removed policy are carried over (a triage call
first when a policy they never cited is new or changed); the others keep their intents and the
thoughts that cite only unchanged policies and deliberate again. Resumes like `generate`; the
input is only read. `aidsafe policies diff OLD NEW --records FILE` shows what it would cost.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.files import check_outputs
from aidsafe.batch.revise import read_revision_samples, revise_job
from aidsafe.cli.batch import register_batch_command, run_command
from aidsafe.cli.options import UsageError
from aidsafe.policies import load_policies
from aidsafe.policies.diff import PolicyDiff, diff_policies

KIND = "revised"


def policy_diff(old_file: str | None, new_file: str | None) -> PolicyDiff:
    """The diff of two policy files (`None`: the bundled set); refused when they are the same set."""
    old, new = load_policies(old_file), load_policies(new_file)
    diff = diff_policies(old, new)
    if diff.identical:
        names = f"{old_file or 'the bundled policies'} and {new_file or 'the bundled policies'}"
        raise UsageError(f"{names} are the same policy set ({old.hash}): nothing to revise")
    return diff


def make_job(context: dict[str, Any], args: argparse.Namespace) -> GraphJob:
    return revise_job(context, policy_diff(args.from_policies, args.policy_file), args.n_deliberators)


def run(args: argparse.Namespace) -> int:
    """Refuse an unreadable or unchanged policy set before any call, show the diff, run the batch."""
    diff = policy_diff(args.from_policies, args.policy_file)
    if args.from_policies:
        output = Path(args.output) if args.output else Path(f"{Path(args.inputs[0]).name.split('.')[0]}.{KIND}.jsonl")
        check_outputs([args.from_policies], [output])
    print("\n".join(diff.lines() or ["no policy text changed (name or version only)"]))
    return run_command(args, kind=KIND, make_job=make_job, reader=read_revision_samples)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = register_batch_command(
        subparsers,
        "revise",
        help="Revise `aidsafe generate` records for a new version of their policies, paying only for what changed.",
        description=__doc__,
        kind=KIND,
        make_job=make_job,
        reader=read_revision_samples,
    )
    parser.add_argument(
        "--from-policies",
        metavar="FILE",
        default=None,
        help="The policy file the records were made with (default: the bundled AIDSAFE policies); "
        "--policies names the new one.",
    )
    parser.set_defaults(run=run)
