"""`aidsafe export`: records to TRL-ready training data, as JSONL and as a Hugging Face parquet dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aidsafe.cli.options import UsageError, add_setting
from aidsafe.export.card import decontamination_summary, evaluation_agreement
from aidsafe.export.quality import PairQuality, RowFilter, safety_gate
from aidsafe.export.training import EXPORTERS, NothingToExport, assistant_turn, default_output, export
from aidsafe.nodes.context import Context


def row_filters(args: argparse.Namespace) -> list[RowFilter]:
    """The safety gate (SFT) and the DPO pair-quality filters (their ranges are checked by the flags)."""
    quality = PairQuality(min_score_gap=args.min_score_gap, max_similarity=args.max_similarity)
    if args.format != "dpo" and quality != PairQuality():
        raise UsageError("--min-score-gap and --max-similarity apply to --format dpo")
    if args.format != "sft" and args.safety_threshold is not None:
        raise UsageError("--safety-threshold applies to --format sft")
    if args.format == "sft":
        return [safety_gate(args.safety_threshold)]
    return quality.filters(lambda side: assistant_turn(side["thoughts"], side["response"]).content)


def run(args: argparse.Namespace) -> int:
    records = Path(args.records)
    if not records.is_file():
        raise UsageError(f"{records}: no such file" if not records.exists() else f"{records}: not a file")
    output = Path(args.output) if args.output else default_output(records, args.format)
    filters = row_filters(args)
    try:
        agreement = evaluation_agreement(Path(args.evaluation), records) if args.evaluation else None
        beside = records.with_suffix(".decontamination.json")  # written by `generate --clean`
        cleaned = Path(args.decontamination) if args.decontamination else beside if beside.is_file() else None
        decontamination = decontamination_summary(cleaned) if cleaned else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        result = export(records, args.format, output, filters, agreement, decontamination)
    except NothingToExport as exc:
        print(f"aidsafe export: {exc}", file=sys.stderr)
        return 1
    for reason, count in result.left_out.most_common():
        print(f"left out {count} {'pairs' if args.format == 'dpo' else 'records'}: {reason}")
    print(f"{result.rows} {args.format} rows: {result.jsonl}" + (f" and {result.parquet}" if result.rows else ""))
    if result.card.name == "README.md":
        print(f"dataset card: {result.card} (the folder uploads with `huggingface-cli upload`, see the card)")
    else:
        print(
            f"dataset card: {result.card}: {result.card.parent}/README.md is not an aidsafe card and was left alone; "
            "export into a folder of its own (-o folder/name.jsonl) to upload it with the card",
            file=sys.stderr,
        )
    if result.bad_lines:
        print(f"{result.bad_lines} lines of {records} were not valid records (see above)", file=sys.stderr)
    return 0 if result.rows and not result.bad_lines else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="Records to training data (JSONL + parquet).", description=__doc__)
    parser.add_argument("records", help="Output of `aidsafe generate` (for sft) or `aidsafe prefer` (for dpo), JSONL.")
    parser.add_argument("--format", choices=sorted(EXPORTERS), default="sft", help="Training format (default: sft).")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help="Output JSONL; the parquet dataset goes beside it (default: <records name>.<format>.jsonl).",
    )
    add_setting(
        parser,
        Context,
        "safety_threshold",
        metavar="SCORE",
        help="SFT: leave out records whose safety-gate score (aidsafe generate --safety-threshold) is above "
        "SCORE, and records the gate never rated. Without it, records the gate flagged are left out.",
    )
    parser.add_argument(
        "--evaluation",
        metavar="DIR",
        help="The folder of an `aidsafe evaluate --labels` of these records: the card then shows how far the "
        "judge agrees with people (its agreement table).",
    )
    parser.add_argument(
        "--decontamination",
        metavar="FILE",
        help="The counts of an `aidsafe clean` of these records' prompts (CLEAN.decontamination.json): the card "
        "then shows them. Default: <records>.decontamination.json beside the records, which `generate --clean` "
        "writes, when it exists.",
    )
    group = parser.add_argument_group("DPO pair quality (--format dpo)")
    add_setting(
        group,
        PairQuality,
        "min_score_gap",
        metavar="GAP",
        help="Drop pairs whose rejected side is less than GAP more violating than the chosen side "
        "(rejected_score - chosen_score, violation scores 0..1).",
    )
    add_setting(
        group,
        PairQuality,
        "max_similarity",
        metavar="S",
        help="Drop pairs whose chosen and rejected texts are at least S similar (0..1, rapidfuzz ratio).",
    )
    parser.set_defaults(run=run)
