"""`aidsafe evaluate RUN.jsonl [--baseline BASELINE.jsonl] --out DIR`: grade generated data.

Deterministic metrics for every record; with a judge (default) the six rubric grades per record
and, given a baseline file, a pairwise verdict per prompt. Unusable lines and failed grades are
reported by file:line and id; the exit code is 1 when there were any, 2 when nothing could run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from aidsafe.cli.options import add_model_arguments, context_from_args, model_server
from aidsafe.metrics.deliberation import file_stats
from aidsafe.metrics.judged import SampleResult, deterministic_result, grade_samples
from aidsafe.metrics.records import RecordsFileError, pair_samples, read_records
from aidsafe.nodes.context import EMBEDDED, Context
from aidsafe.policies import PolicyFileError, load_policies
from aidsafe.report import summarize, write_report


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="Grade generated data; compare it with a baseline.", description=__doc__
    )
    parser.add_argument("run_file", metavar="RUN.jsonl", help="Records of `aidsafe generate`, or preference records.")
    parser.add_argument("--baseline", metavar="BASELINE.jsonl", help="Records to compare with, e.g. from the baseline.")
    parser.add_argument("--out", required=True, metavar="DIR", help="Directory for report.md, summary.json, charts.")
    parser.add_argument("--no-judge", action="store_true", help="Deterministic metrics only: no model calls.")
    parser.add_argument("--limit", type=int, help="Evaluate the first N records (and their baseline records).")
    parser.add_argument("--concurrency", type=int, help="Samples graded at once (default 8; 1 on the embedded model).")
    parser.add_argument(
        "--parallel-calls",
        type=int,
        help="Judge calls of one sample in flight (default: all 13; 1 on the embedded model, which answers one "
        "request at a time: queued requests would run into the request timeout).",
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    context = context_from_args(args)
    try:
        policy_ids = load_policies(context.get("policy_file")).ids
        run_records, bad_lines = read_records(args.run_file, args.limit)
        baseline_records, baseline_bad = read_records(args.baseline) if args.baseline else ([], [])
    except (RecordsFileError, PolicyFileError) as exc:
        print(f"aidsafe evaluate: {exc}", file=sys.stderr)
        return 2
    if args.limit is not None:
        kept_ids = {r.id for r in run_records}
        baseline_records = [r for r in baseline_records if r.id in kept_ids]
    bad_lines += baseline_bad
    for bad in bad_lines:
        print(f"aidsafe evaluate: skipped {bad}", file=sys.stderr)
    samples = pair_samples(run_records, baseline_records)

    started = time.monotonic()
    judge: str | None = None
    if args.no_judge:
        results: list[SampleResult] = [deterministic_result(s, policy_ids) for s in samples]
    else:
        ctx = Context(**context)
        judge = f"{ctx.model_for('judge')} at {ctx.base_url_for('judge')}"
        embedded = ctx.base_url_for("judge") == EMBEDDED
        concurrency = args.concurrency or (1 if embedded else 8)
        parallel_calls = args.parallel_calls or (1 if embedded else None)
        with model_server(context) as served:
            from aidsafe.graphs.evaluation import graph

            results = asyncio.run(grade_samples(samples, policy_ids, graph, served, concurrency, parallel_calls))
    summary = summarize(
        results,
        run_file=args.run_file,
        baseline_file=args.baseline,
        bad_lines=bad_lines,
        judge=judge,
        seconds=time.monotonic() - started,
    )
    summary["deliberation"] = {
        "run": file_stats(args.run_file, {r.id for r in run_records}),
        "baseline": file_stats(args.baseline, {r.id for r in baseline_records}) if args.baseline else None,
    }
    paths = write_report(args.out, summary, results)
    print(f"report: {paths['report.md']}  summary: {paths['summary.json']}")
    failed = len(summary["failures"]) + len(summary["bad_lines"])
    if failed:
        print(f"aidsafe evaluate: {len(summary['failures'])} failed grades, {len(summary['bad_lines'])} unusable lines")
    return 1 if failed else 0
