"""`aidsafe revise-pairs`: `aidsafe prefer` pairs, revised after their generate records were.

Give the pairs, `--revised` (the `aidsafe revise` output of the records the pairs were made from)
and the same `--policies`. A pair whose record was carried is carried; one whose record was revised
or regenerated takes the revised chosen side and gets a new rejected side from the ear-whisperer
under the new policies. Resumes like `prefer`; the inputs are only read.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

from aidsafe.batch.engine import GraphJob
from aidsafe.batch.files import check_outputs
from aidsafe.batch.revise_pairs import read_pair_samples, revise_pairs_job, revised_chosen
from aidsafe.cli.batch import default_output, register_batch_command, run_command
from aidsafe.cli.options import UsageError
from aidsafe.policies import load_policies

KIND = "revised"


def make_job(context: dict[str, Any], args: argparse.Namespace) -> GraphJob:
    return revise_pairs_job(context, args.n_deliberators)


def run(args: argparse.Namespace) -> int:
    """Read the revised records first (a wrong file is refused before any call), then run the batch."""
    revised_file = Path(args.revised)
    output = Path(args.output) if args.output else default_output(args.inputs, KIND)
    check_outputs([revised_file], [output])
    try:
        revised = revised_chosen(revised_file, load_policies(args.policy_file).hash)
    except OSError as exc:
        raise UsageError(f"{revised_file}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    reader = partial(read_pair_samples, revised=revised)
    return run_command(args, kind=KIND, make_job=make_job, reader=reader)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = register_batch_command(
        subparsers,
        "revise-pairs",
        help="Revise `aidsafe prefer` pairs after `aidsafe revise` revised their records: new rejected sides "
        "where the chosen side changed.",
        description=__doc__,
        kind=KIND,
        make_job=make_job,
        reader=read_pair_samples,
    )
    parser.add_argument(
        "--revised",
        metavar="FILE",
        required=True,
        help="The `aidsafe revise` output of the records the pairs were made from (revised with the same --policies).",
    )
    parser.set_defaults(run=run)
