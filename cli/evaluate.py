"""`aidsafe evaluate RUN.jsonl [--baseline BASELINE.jsonl] -o DIR`: grade generated data.

Deterministic metrics for every record; with a judge (default) the six rubric grades per record
and, given a baseline file, a pairwise verdict per prompt, on the batch engine: one line per id in
DIR/samples.jsonl as it finishes, per-sample checkpoints, and the same command resumes after a
kill without paying again for finished grades. Unusable lines and failed grades are reported by
file:line and id; the exit code is 1 when there were any, 2 when nothing could run, 4 when
`--max-cost` stopped the grading (the report covers what was graded; a higher cap continues).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.endpoints import model_server
from aidsafe.batch.evaluate import (
    GradedSample,
    GradingOptions,
    PairSample,
    as_input,
    as_result,
    evaluate_job,
    labels_agreement,
    read_pairs,
)
from aidsafe.batch.files import check_outputs, replace_together
from aidsafe.batch.inputs import ReadOptions
from aidsafe.cli.batch import (
    add_batch_arguments,
    batch_options,
    interrupted,
    offline_context,
    price_flags_given,
    prices_from_args,
    server_death,
)
from aidsafe.cli.exit_codes import COST_CAP_REACHED
from aidsafe.cli.options import UsageError, add_model_arguments, add_setting, context_from_args
from aidsafe.metrics.agreement import AgreementOptions, missing_libraries
from aidsafe.metrics.deliberation import file_stats
from aidsafe.metrics.judged import deterministic_result
from aidsafe.metrics.labels import LabelProblem
from aidsafe.metrics.record_files import RecordsFileError
from aidsafe.nodes.context import EMBEDDED, Context
from aidsafe.policies import load_policies
from aidsafe.report import summarize, write_report
from aidsafe.report.writer import REPORT_FILES
from aidsafe.state.evaluation import SampleResult

REMOTE_CONCURRENCY = 8
"""Samples graded at once against a server (13 judge calls each with a baseline)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="Grade generated data; compare it with a baseline.", description=__doc__
    )
    parser.add_argument("run_file", metavar="RUN.jsonl", help="Records of `aidsafe generate`, or preference records.")
    parser.add_argument("--baseline", metavar="BASELINE.jsonl", help="Records to compare with, e.g. from the baseline.")
    parser.add_argument(
        "-o",
        "--out",
        "--output",
        dest="out",
        required=True,
        metavar="DIR",
        help="Folder for samples.jsonl, report.md, summary.json, charts/ (the run's errors file, summary "
        "and checkpoints are samples.errors.jsonl, samples.summary.json, samples.checkpoints.sqlite).",
    )
    parser.add_argument("--no-judge", action="store_true", help="Deterministic metrics only: no model calls.")
    parser.add_argument(
        "--labels",
        action="append",
        default=[],
        metavar="LABELS.jsonl",
        help="People's labels of the run file's records (JSONL: id, rubric, score, annotator, time); repeat for "
        "several files. The report then says how far the judge agrees with people, and people with each other.",
    )
    add_setting(
        parser,
        AgreementOptions,
        "bootstrap_resamples",
        metavar="N",
        help="Bootstrap resamples behind each 95%% interval of the agreement (default 1000).",
    )
    add_setting(parser, ReadOptions, "limit", help="Evaluate the first N records (and their baseline records).")
    add_setting(
        parser,
        GradingOptions,
        "parallel_calls",
        help="Judge calls of one sample in flight (default: all 13; 1 on the embedded model, which answers one "
        "request at a time: queued requests would run into the request timeout).",
    )
    add_batch_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    context = offline_context(args, context_from_args(args))
    out = Path(args.out)
    run_file = Path(args.run_file)
    baseline_file = Path(args.baseline) if args.baseline else None
    reads = [run_file, *([baseline_file] if baseline_file else [])]
    reads += [Path(context["policy_file"])] if context.get("policy_file") else []
    ctx = Context(**context)
    embedded = ctx.base_url_for("judge") == EMBEDDED
    if args.concurrency is None and not embedded:
        args.concurrency = REMOTE_CONCURRENCY
    reads += [Path(args.prices)] if args.prices else []
    label_files = [Path(path) for path in args.labels]
    reads += label_files
    if args.bootstrap_resamples is not None and not label_files:
        raise UsageError("--bootstrap-resamples applies to --labels")
    if label_files and (missing := missing_libraries()):
        raise UsageError(f"--labels needs {', '.join(missing)}: pip install 'aidsafe[agreement]'")
    if args.no_judge and (priced := price_flags_given(args)):
        raise UsageError(f"{', '.join(priced)}: --no-judge calls no model, so there is nothing to price or cap")
    prices = None if args.no_judge else prices_from_args(args, [ctx.model_for("judge")])
    options = batch_options(args, out / "samples.jsonl", embedded and not args.no_judge, reads, prices)
    charts = ("scores.png", "pairwise.png", "agreement.png")
    report_files = [out / name for name in (*REPORT_FILES, "metrics.jsonl", *(f"charts/{c}" for c in charts))]
    check_outputs(reads, [*options.writes(), *report_files], folders=[out, out / "charts"])
    policy_ids = load_policies(context.get("policy_file")).ids
    try:
        samples, bad_lines = read_pairs(run_file, baseline_file, args.limit)
    except RecordsFileError as exc:
        raise UsageError(str(exc)) from None
    if baseline_file and samples and not any(s.run and s.baseline for s in samples):
        raise UsageError(
            f"no record id of {run_file} is in {baseline_file}: records are paired by id, so there is nothing "
            "to compare (give the baseline of the same prompts file)"
        )
    for bad in bad_lines:
        print(f"aidsafe evaluate: skipped {bad}", file=sys.stderr)

    started = time.monotonic()
    if args.no_judge:
        results = [deterministic_result(sample.pair(), policy_ids) for sample in samples]
        write_metrics(out / "metrics.jsonl", results)
        judge, failed, stopped_at_cost = None, 0, False
    else:
        judge = f"{ctx.model_for('judge')} at {ctx.base_url_for('judge')}"
        parallel_calls = args.parallel_calls or (1 if embedded else None)
        grading = GradingOptions(parallel_calls=parallel_calls)
        try:
            with model_server(context) as served:
                batch = run_batch(evaluate_job(served, grading), lambda: as_input(samples, bad_lines), options)
                died = server_death(served, embedded)
        except KeyboardInterrupt:
            return interrupted(options.output)
        print(batch.text())
        if died is not None:  # no report from a grading the server ended; the same command resumes it
            raise died
        if options.dry_run is not None:
            return 0  # no report: nothing is written
        results = graded_results(options, samples)
        failed, stopped_at_cost = batch.failed, batch.stopped_at_cost
    summary = summarize(
        results,
        run_file=str(run_file),
        baseline_file=str(baseline_file) if baseline_file else None,
        bad_lines=bad_lines,
        judge=judge,
        seconds=time.monotonic() - started,
    )
    summary["deliberation"] = {
        "run": file_stats(run_file, {s.id for s in samples if s.run}),
        "baseline": file_stats(baseline_file, {s.id for s in samples if s.baseline}) if baseline_file else None,
    }
    label_problems: list[LabelProblem] = []
    if label_files:
        resamples = args.bootstrap_resamples
        agreement_options = AgreementOptions() if resamples is None else AgreementOptions(bootstrap_resamples=resamples)
        try:
            summary["agreement"], label_problems = labels_agreement(label_files, samples, results, agreement_options)
        except RecordsFileError as exc:
            raise UsageError(str(exc)) from None
        for problem in label_problems:
            print(f"aidsafe evaluate: {'skipped' if problem.skipped else 'note'}: {problem}", file=sys.stderr)
    paths = write_report(out, summary)
    print(f"report: {paths['report.md']}  summary: {paths['summary.json']}")
    if failed or bad_lines:
        print(f"aidsafe evaluate: {failed} samples with failed grades, {len(bad_lines)} unusable lines")
    if stopped_at_cost:
        print(
            f"aidsafe evaluate: the report covers the {len(results)} samples graded within --max-cost; "
            "run again with a higher cap to grade the rest"
        )
        return COST_CAP_REACHED
    skipped_labels = sum(problem.skipped for problem in label_problems)
    if skipped_labels:
        print(f"aidsafe evaluate: {skipped_labels} unusable labels lines (see the report)")
    return 1 if failed or bad_lines or skipped_labels else 0


def graded_results(options: BatchOptions, samples: list[PairSample]) -> list[SampleResult]:
    """Every sample of this input, in input order: its line in samples.jsonl (this run's or an earlier
    one's) or, for a sample that failed in this run, the partial result in the errors file."""
    found: dict[str, SampleResult] = {}
    for line in options.output.read_bytes().splitlines() if options.output.exists() else []:
        if line.strip():
            graded = GradedSample.model_validate_json(line)
            found[graded.id] = as_result(graded)
    for line in options.errors.read_bytes().splitlines() if options.errors.exists() else []:
        error = json.loads(line)
        if "partial" in error:
            found.setdefault(error["id"], as_result(error))
    return [found[s.id] for s in samples if s.id in found]


def write_metrics(path: Path, results: list[SampleResult]) -> None:
    """--no-judge: the deterministic metrics of every sample, one line each, replaced whole."""
    with replace_together([path]) as (part,):
        part.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results), encoding="utf-8")
