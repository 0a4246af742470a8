"""`aidsafe contrast SEEDS.jsonl -o PROMPTS.jsonl`: from harmful seed prompts, a prompt set in the mix asked for.

For each seed the writer keeps the alarming surface and writes borderline and benign look-alikes of
named kinds (XSTest's kinds for benign ones), and a blind check drops those it judges another class.
The prompt set then fills the mix (--contrast-mix) in every policy, the seeds themselves as the
harmful prompts; each line is labelled with its class, kind, policies and seed, labels that
`aidsafe generate` keeps in each record's metadata and the dataset card counts. Beside the prompt
set: PROMPTS.candidates.jsonl (every seed's look-alikes, kept or dropped with the reason; resumable),
PROMPTS.mix.json (each cell of the mix: asked, got, and why it is short).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aidsafe.batch.contrast import (
    QuotaOptions,
    candidates_file,
    check_prompt_set,
    contrast_job,
    mix_file,
    read_seeds,
    write_prompt_set,
)
from aidsafe.batch.engine import GraphJob
from aidsafe.batch.files import check_outputs
from aidsafe.cli.batch import default_output, register_batch_command, run_command
from aidsafe.cli.exit_codes import DONE, FAILED, INTERRUPTED
from aidsafe.cli.options import add_setting, context_from_args
from aidsafe.nodes.context import Context
from aidsafe.policies import load_policies

KIND = "contrast"


def make_job(context: dict[str, Any], args: argparse.Namespace) -> GraphJob:
    return contrast_job(context)


def run(args: argparse.Namespace) -> int:
    """The batch over the seeds (its output is the candidates file), then the prompt set from every
    record in it. Exit code as for every batch; 1 too when a cell of the mix could not be filled."""
    context = context_from_args(args)
    prompts = Path(args.output) if args.output else default_output(args.inputs, KIND)
    reads = [Path(p) for p in args.inputs] + ([Path(context["policy_file"])] if context.get("policy_file") else [])
    check_outputs(reads, [prompts, mix_file(prompts)])
    check_prompt_set(prompts)
    candidates = candidates_file(prompts)
    code = run_command(
        argparse.Namespace(**{**vars(args), "output": str(candidates)}), kind=KIND, make_job=make_job, reader=read_seeds
    )
    if code == INTERRUPTED:
        return code
    summary = json.loads(candidates.with_suffix(".summary.json").read_text(encoding="utf-8"))
    report = write_prompt_set(
        prompts,
        Context(**context).contrast_mix,
        per_policy=args.per_policy,
        policy_ids=load_policies(context.get("policy_file")).ids,
        failed_seeds=summary["failed"],
    )
    print(report.text())
    print(f"prompts: {prompts} (each cell of the mix: {mix_file(prompts)})")
    return code if code != DONE else FAILED if report.short else DONE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = register_batch_command(
        subparsers,
        "contrast",
        help="Borderline and benign look-alikes of harmful seed prompts; a prompt set in the mix asked for.",
        description=__doc__,
        kind=KIND,
        make_job=make_job,
        reader=read_seeds,
    )
    add_setting(
        parser,
        QuotaOptions,
        "per_policy",
        metavar="N",
        default=None,
        help="Prompts per policy (default: as many as the seeds allow: seeds / share of harmful).",
    )
    parser.set_defaults(run=run)
