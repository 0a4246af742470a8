"""`aidsafe revise`: an output of `aidsafe generate`, revised for a new version of its policies.

The old set is `--from-policies` (default: the bundled AIDSAFE policies), the new one `--policies`.
Records none of whose thoughts cite a changed or removed policy are carried over (a triage call
first when a policy they never cited is new or changed); the others keep their intents and the
thoughts that cite only unchanged policies and deliberate again. Resumes like `generate`; the
input is only read. `aidsafe policies diff OLD NEW --records FILE` shows what it would cost.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.files import check_outputs
from aidsafe.batch.revise import SampleWithRecord, read_revision_samples, revise_job
from aidsafe.cli.batch import default_output, register_batch_command, run_command
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


def check_made_under(diff: PolicyDiff, args: argparse.Namespace) -> None:
    """Records made under neither set would all be regenerated in full: refused when that is every
    record (the old policy file is most likely the wrong one), a note when it is some."""
    made_under: Counter[str] = Counter()
    for item in read_revision_samples(args.inputs, prompt_field=args.prompt_field, limit=args.limit):
        if isinstance(item, SampleWithRecord):
            made_under[item.record["policy_set"]] += 1
    others = {h: n for h, n in made_under.items() if h not in (diff.old_hash, diff.new_hash)}
    if not others:
        return
    sets = ", ".join(f"{h} ({n} records)" for h, n in sorted(others.items()))
    if sum(others.values()) == sum(made_under.values()):
        raise UsageError(
            f"no record was made under {args.from_policies or 'the bundled policies'} ({diff.old_hash}); they name "
            f"{sets}: give --from-policies the policy file they were made with"
        )
    print(f"note: {sum(others.values())} records were made under other policy sets ({sets}): "
          "they will be regenerated in full", file=sys.stderr)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Refuse an unreadable or unchanged policy set before any call, show the diff, run the batch."""
    diff = policy_diff(args.from_policies, args.policy_file)
    check_made_under(diff, args)
    if args.from_policies:
        output = Path(args.output) if args.output else default_output(args.inputs, KIND)
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
