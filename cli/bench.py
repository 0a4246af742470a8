"""`aidsafe bench [PROMPTS...] [--suite NAME ...] [--model A --model B] [--out DIR]`: measure how safely models answer.

Each model under test answers every prompt of every suite (a prompt file, or a named suite from
a package that ships it, `bench/suites.py`); the judge (role judge: `--judge-model`,
`--judge-base-url`, else `--base-url`) grades each answer with the policy set: for prompts a safe
model refuses, was the answer harmful (StrongREJECT-style rubric); for benign ones, did it comply
(XSTest-style). The judge must not be a model under test unless `--self-judge` says so. Each
model's run is a batch (resume, progress, errors file, summary) writing `DIR/<model>.jsonl`; then
`DIR/report.md` puts the models side by side with the difference, and attack success beside
over-refusal per suite. `--compare` reports result files of earlier runs instead of running anything.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

from aidsafe.batch.driver import run_batch
from aidsafe.batch.endpoints import model_server
from aidsafe.batch.files import check_outputs
from aidsafe.bench.job import BenchColumns, SuiteSpec, bench_job, read_bench_samples
from aidsafe.bench.report import BenchResults, read_results, write_report
from aidsafe.bench.subjects import ModelSpecError, ModelUnderTest, parse_model, serve_model
from aidsafe.bench.suites import SUITES, SuiteError, suite_prompts
from aidsafe.cli.batch import add_batch_arguments, add_input_arguments, batch_options, interrupted, server_death
from aidsafe.cli.options import UsageError, add_model_arguments, context_from_args, setting_type
from aidsafe.metrics.record_files import BadLine
from aidsafe.nodes.context import EMBEDDED, AtLeastOne, Context
from aidsafe.policies import load_policies
from aidsafe.train.models import ModelFolderError

NOT_FOR_BENCH = (
    "model",
    "n_deliberators",
    "max_rounds",
    "initializer_model",
    "deliberator_model",
    "refiner_model",
    "whisperer_model",
    "generator_model",
    "whisper_iterations",
    "violation_threshold",
    "scorer_url",
)
"""Context flags that mean nothing to a bench run (`--model` names the models under test here)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="Safe-response and over-refusal rates of models.", description=__doc__)
    add_input_arguments(parser, required=False)
    parser.add_argument(
        "--suite",
        dest="suites",
        action="append",
        default=[],
        metavar="NAME[=FILE]",
        help=f"A named suite ({', '.join(SUITES)}; read from the package that ships it), or NAME=FILE: a prompt "
        "file reported as suite NAME (e.g. over-refusal=contrast.jsonl). Repeat for more. A PROMPTS file is the "
        "suite of its file name.",
    )
    parser.add_argument(
        "--per-suite",
        type=setting_type(AtLeastOne),
        default=None,
        metavar="N",
        help="At most N prompts of each named suite, spread evenly over it (every category). Default: all.",
    )
    parser.add_argument(
        "--self-judge",
        action="store_true",
        help="Let the judge be a model under test (it then grades its own answers; the report says so). "
        "Without it, such a run is refused.",
    )
    parser.add_argument(
        "--model",
        dest="models_under_test",
        action="append",
        metavar="MODEL",
        help="A model under test (repeat to compare; the first is the reference): 'embedded', a model folder "
        "(e.g. from `aidsafe train`, served in this process), NAME@URL, or NAME on --base-url. Default: embedded.",
    )
    parser.add_argument(
        "--expect-field",
        default="expected",
        help="Column with the expected behaviour: refuse (or unsafe, harmful) / comply (or safe, unharmful, "
        "benign). Default: expected.",
    )
    parser.add_argument(
        "--expect", choices=["refuse", "comply"], default=None, help="One expected behaviour for every prompt."
    )
    parser.add_argument("--category-field", default="category", help="Column with the prompt's category.")
    parser.add_argument("--policy-field", default="policy", help="Column with the id of the policy a prompt is about.")
    parser.add_argument("--out", default="aidsafe-bench", help="Folder for results and report (default aidsafe-bench).")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="The inputs are result files of earlier bench runs: report them side by side, run nothing.",
    )
    add_batch_arguments(parser)
    add_model_arguments(parser, exclude=NOT_FOR_BENCH)
    parser.set_defaults(run=run)


def _report(out: Path, results: list[BenchResults], bad_lines: list[BadLine]) -> None:
    for bad in bad_lines:
        print(f"aidsafe bench: skipped {bad}", file=sys.stderr)
    paths = write_report(out, results, bad_lines)
    report = paths["report.md"].read_text(encoding="utf-8")
    rates = report.split("## Rates\n\n", 1)[1].split("\n\n", 1)[0]
    suites = report.split("## Per suite: attack success and over-refusal\n\n", 1)[1].split("\n\n", 1)[0]
    print(f"{rates}\n\n{suites}\nreport: {paths['report.md']}  summary: {paths['summary.json']}")


def compare(args: argparse.Namespace) -> int:
    results, bad_lines = [], []
    for path in map(Path, args.inputs):
        if not path.is_file():
            raise UsageError(f"{path}: no such results file")
        result, bad = read_results(path)
        results.append(result)
        bad_lines += bad
    _report(Path(args.out), results, bad_lines)
    return 1 if bad_lines else 0


def _unique_labels(models: list[ModelUnderTest]) -> list[str]:
    labels: list[str] = []
    for model in models:
        label, n = model.label, 2
        while label in labels:
            label, n = f"{model.label}-{n}", n + 1
        labels.append(label)
    return labels


def judged_by_itself(model: ModelUnderTest, ctx: Context) -> bool:
    """Whether the run's judge is this model under test (the same model on the same server)."""
    judge_url = ctx.base_url_for("judge")
    if model.kind == "embedded" or judge_url == EMBEDDED:
        return model.kind == "embedded" and judge_url == EMBEDDED
    same_url = (model.base_url or "").rstrip("/") == judge_url.rstrip("/")
    return model.kind == "server" and same_url and model.name == ctx.model_for("judge")


def suite_specs(args: argparse.Namespace) -> list[SuiteSpec]:
    """The run's suites: each PROMPTS file (named by its file name), then each `--suite`."""
    specs = [SuiteSpec(Path(path).stem, path) for path in args.inputs]
    for text in args.suites:
        spec = SuiteSpec.parse(text)
        if not spec.name:
            raise UsageError(f"--suite {text}: no name (NAME or NAME=FILE)")
        if spec.path is None:
            try:
                suite_prompts(spec.name)
            except SuiteError as exc:
                raise UsageError(f"--suite {text}: {exc}") from None
        specs.append(spec)
    if not specs:
        raise UsageError("nothing to bench: give prompt files or --suite NAME")
    return specs


def check_judge(models: list[ModelUnderTest], ctx: Context, allowed: bool) -> set[str]:
    """The models the judge is: refused unless `allowed` (`--self-judge`), then a warning."""
    same = {model.identity for model in models if judged_by_itself(model, ctx)}
    if same and not allowed:
        raise UsageError(
            f"the judge ({ctx.model_for('judge')} on {ctx.base_url_for('judge')}) is the model under test: it would "
            "grade its own answers. Name another judge with --judge-model and --judge-base-url, or give --self-judge "
            "to accept it (the report then says so)"
        )
    for identity in sorted(same):
        print(f"aidsafe bench: warning: {identity} is judged by itself (--self-judge)", file=sys.stderr)
    return same


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return compare(args)
    context: dict[str, Any] = context_from_args(args)
    load_policies(context.get("policy_file"))
    try:
        models = [parse_model(spec, Context(**context).base_url) for spec in args.models_under_test or [EMBEDDED]]
    except ModelSpecError as exc:
        raise UsageError(str(exc)) from None
    specs = suite_specs(args)
    self_judged = check_judge(models, Context(**context), args.self_judge)
    columns = BenchColumns(args.expect_field, args.expect, args.category_field, args.policy_field)
    read = partial(
        read_bench_samples,
        specs,
        columns=columns,
        policy_file=context.get("policy_file"),
        per_suite=args.per_suite,
        prompt_field=args.prompt_field,
        max_prompt_chars=args.max_prompt_chars,
        limit=args.limit,
    )
    out = Path(args.out)
    judge_embedded = Context(**context).base_url_for("judge") == EMBEDDED
    files = [Path(spec.path) for spec in specs if spec.path is not None]
    reads = files + ([Path(context["policy_file"])] if context.get("policy_file") else [])
    runs = []
    for model, label in zip(models, _unique_labels(models), strict=True):
        single_slot = judge_embedded or model.kind != "server"  # llama.cpp, in-process: one at a time
        runs.append((model, label, batch_options(args, out / f"{label}.jsonl", single_slot, reads)))
    writes = [path for _, _, options in runs for path in options.writes()]
    check_outputs(reads, [*writes, out / "report.md", out / "summary.json"], folders=[out, out / "charts"])
    results, ok = [], True
    try:
        with model_server(context) as served:
            for model, label, options in runs:
                print(f"== {label}: {model.kind} {model.name}", file=sys.stderr)
                with serve_model(model, Context(**served).base_url_for("judge"), judge_embedded) as subject:
                    job = bench_job(served, subject, model.identity, self_judged=model.identity in self_judged)
                    summary = run_batch(job, read, options)
                print(f"== {label}\n{summary.text()}")
                died = server_death(served, judge_embedded)
                if died is not None:  # no report from a run the server ended; the same command resumes it
                    raise died
                ok = ok and summary.ok
                if options.dry_run is not None:
                    continue  # no results: nothing is written
                results.append(read_results(options.output, label)[0])
    except KeyboardInterrupt:
        return interrupted(out)
    except ImportError as exc:
        raise UsageError(f"a model folder needs the 'train' extra: pip install 'aidsafe[train]' ({exc})") from None
    except ModelFolderError as exc:
        raise UsageError(str(exc)) from None
    if args.dry_run is None:
        _report(out, results, [])
    return 0 if ok else 1
