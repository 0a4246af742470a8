"""`aidsafe clean PROMPTS... -o CLEAN.jsonl`: drop duplicates and benchmark prompts before paying for them.

A prompt is dropped when it shares a word n-gram (`--ngram`, 13) with a prompt of a benchmark
suite `aidsafe bench` runs (`--suite`, every installed one by default) or of a file named with
`--against`, or when it repeats, exactly or nearly (`--near`, 0.9), a prompt kept before it
(`metrics/decontamination.py` holds the rules). Writes the kept rows to CLEAN.jsonl,
CLEAN.dropped.jsonl (each dropped prompt, why, and what it matched) and CLEAN.decontamination.json
(the counts, which `aidsafe export --decontamination` puts into the dataset card). Never writes over
an input. `aidsafe generate --clean` runs the same step first and pays only for the kept prompts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from aidsafe.batch.files import check_outputs, replace_together
from aidsafe.batch.inputs import InputProblem, Sample, read_samples
from aidsafe.bench.suites import SUITES, SuiteError, suite_prompts
from aidsafe.cli.batch import add_input_arguments, default_output
from aidsafe.cli.options import UsageError, add_setting
from aidsafe.metrics.decontamination import Cleaner, CleanOptions, Reference


def add_clean_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="FILE",
        help="Also drop prompts sharing an n-gram with a prompt of this file (any input format, column "
        "--prompt-field; repeat for more files).",
    )
    parser.add_argument(
        "--suite",
        dest="against_suites",
        action="append",
        default=None,
        choices=list(SUITES),
        help="Check against this named suite only (repeat; default: every named suite that is installed).",
    )
    parser.add_argument("--no-suites", action="store_true", help="Check against the --against files only.")
    add_setting(parser, CleanOptions, "ngram", default=13, help="Words in a shared n-gram (default 13, as STAR-1).")
    add_setting(
        parser,
        CleanOptions,
        "near",
        default=0.9,
        help="Near-duplicate similarity, 0-1 (rapidfuzz ratio of the normalised texts; default 0.9; 1 = exact only).",
    )


def references(args: argparse.Namespace) -> list[Reference]:
    """The prompts no kept prompt may overlap: the suites asked for (or every installed one) and the files."""
    found: list[Reference] = []
    if not args.no_suites:
        for name in args.against_suites or list(SUITES):
            try:
                found += [Reference(name, p.id, p.prompt) for p in suite_prompts(name)]
            except SuiteError as exc:
                if args.against_suites:
                    raise UsageError(str(exc)) from None
                print(f"note: {exc}; not checked against it", file=sys.stderr)
    for path in args.against:
        if not Path(path).exists():
            raise UsageError(f"--against {path}: no such file")
        for item in read_samples([path], prompt_field=args.prompt_field, max_prompt_chars=sys.maxsize):
            if isinstance(item, InputProblem):
                raise UsageError(f"--against {item}")
            found.append(Reference(Path(path).name, item.id, item.prompt))
    return found


def report_paths(output: Path) -> tuple[Path, Path]:
    """Beside `output`: the dropped prompts and the counts."""
    return output.with_suffix(".dropped.jsonl"), output.with_suffix(".decontamination.json")


def clean(args: argparse.Namespace, output: Path, kept_rows: Path | None = None) -> tuple[frozenset[str], int]:
    """Check every prompt of the inputs; write the report beside `output` (and the kept rows to
    `kept_rows`). Returns where the dropped prompts are (`file:line`) and the input problems."""
    dropped_file, summary_file = report_paths(output)
    cleaner = Cleaner(references(args), CleanOptions(ngram=args.ngram, near=args.near))
    read = read_samples(
        args.inputs, prompt_field=args.prompt_field, max_prompt_chars=args.max_prompt_chars, limit=args.limit
    )
    dropped: set[str] = set()
    problems = 0
    targets = [dropped_file, summary_file, *([kept_rows] if kept_rows else [])]
    with replace_together(targets) as temporary, ExitStack() as files:
        drops = files.enter_context(open(temporary[0], "w", encoding="utf-8"))
        kept = files.enter_context(open(temporary[2], "w", encoding="utf-8")) if kept_rows else None
        for item in read:
            if isinstance(item, InputProblem):
                problems += 1
                print(f"input error: {item}", file=sys.stderr)
                continue
            drop = cleaner.check(item.id, item.prompt)
            if drop is not None:
                dropped.add(item.where)
                line = {"id": item.id, "where": item.where, "prompt": item.prompt, **drop.as_dict()}
                drops.write(json.dumps(line, ensure_ascii=False) + "\n")
            elif kept is not None:
                row = {"id": item.id, args.prompt_field: item.prompt, **item.metadata}
                kept.write(json.dumps(row, ensure_ascii=False) + "\n")
        files.close()
        summary: dict[str, Any] = {
            "inputs": [str(p) for p in args.inputs],
            **cleaner.summary.as_dict(),
            "dropped_file": dropped_file.name,
        }
        temporary[1].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"clean: {cleaner.summary.text()}; report: {dropped_file}", file=sys.stderr)
    return frozenset(dropped), problems


def kept_samples(paths: list[str], *, dropped: frozenset[str], **options: Any) -> Iterator[Sample | InputProblem]:
    """`read_samples` without the prompts the clean step dropped (a reader for the batch engine)."""
    for item in read_samples(paths, **options):
        if not (isinstance(item, Sample) and item.where in dropped):
            yield item


def cleaning_reader(args: argparse.Namespace, output: Path) -> partial[Iterator[Sample | InputProblem]]:
    """For `generate --clean`: clean first (report beside `output`), then read only the kept prompts."""
    check_outputs(args.inputs, report_paths(output))
    dropped, _ = clean(args, output)
    return partial(kept_samples, dropped=dropped)


def run(args: argparse.Namespace) -> int:
    output = Path(args.output) if args.output else default_output(args.inputs, "clean")
    reads = [*args.inputs, *args.against]
    check_outputs(reads, [output, *report_paths(output)])
    _, problems = clean(args, output, kept_rows=output)
    print(f"output: {output}")
    return 1 if problems else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "clean", help="Drop duplicate prompts and prompts overlapping benchmarks.", description=__doc__
    )
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", default=None, help="Kept prompts, JSONL (default <input name>.clean.jsonl).")
    add_clean_arguments(parser)
    parser.set_defaults(run=run)
