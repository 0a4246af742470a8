"""`aidsafe policies diff OLD NEW [--records FILE]`: what changed between two policy files, per
policy and per clause, and with records what revising them would cost against regenerating them.

Nothing is called: the figures are estimates from each record's own usage (`batch/revise.py`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aidsafe.batch.inputs import InputProblem
from aidsafe.batch.revise import Estimate, SampleWithRecord, read_revision_samples
from aidsafe.cli.batch import add_price_arguments, prices_from_args
from aidsafe.cli.options import UsageError
from aidsafe.cli.revise import policy_diff
from aidsafe.policies.diff import PolicyDiff


def _records(path: str) -> Iterator[dict[str, Any]]:
    for item in read_revision_samples([path]):
        if isinstance(item, InputProblem):
            raise UsageError(str(item))
        assert isinstance(item, SampleWithRecord)
        yield item.record


def diff_text(diff: PolicyDiff, estimate: Estimate | None, args: argparse.Namespace) -> list[str]:
    lines = diff.lines() or ["no policy text changed (name or version only)"]
    if estimate is None:
        return lines
    lines.append("")
    for change in diff.changes:
        if change.status == "added":
            lines.append(
                f"{change.policy_id} (added): triage asks about it for {estimate.triaged_for[change.policy_id]} records"
            )
        elif change.clauses or change.status == "removed":
            lines.append(
                f"{change.policy_id} ({'removed' if change.status == 'removed' else 'clauses changed'}): "
                f"cited by {estimate.citing[change.policy_id]} records, asked about for "
                f"{estimate.triaged_for[change.policy_id]}"
            )
    models = {m for m in estimate.regeneration_usage.get("by_model") or {}} or {"default"}
    prices = prices_from_args(args, models) if args.prices or args.input_price is not None else None
    return [*lines, *estimate.lines(prices)]


def run_diff(args: argparse.Namespace) -> int:
    diff = policy_diff(args.old, args.new)
    estimate = None
    if args.records:
        if not Path(args.records).is_file():
            raise UsageError(f"{args.records}: no such file")
        estimate = Estimate()
        for record in _records(args.records):
            estimate.add(diff, record, args.n_deliberators)
    print("\n".join(diff_text(diff, estimate, args)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("policies", help="Compare policy files.", description=__doc__)
    commands = parser.add_subparsers(dest="policies_command", required=True)
    diff = commands.add_parser("diff", help="What changed between two policy files.", description=__doc__)
    diff.add_argument("old", help="The policy file the records were made with.")
    diff.add_argument("new", help="The new policy file.")
    diff.add_argument("--records", metavar="FILE", help="An `aidsafe generate` output: what revising it would cost.")
    diff.add_argument("--n-deliberators", type=int, default=2, help="Deliberating agents per round (default 2).")
    add_price_arguments(diff)
    diff.set_defaults(run=run_diff)
