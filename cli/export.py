"""`aidsafe export`: records to TRL-ready training data, as JSONL and as a Hugging Face parquet dataset."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from aidsafe.export.quality import PairQuality, RowFilter, safety_gate
from aidsafe.export.training import EXPORTERS, assistant_turn, export
from aidsafe.nodes.context import Context

SAFETY_THRESHOLD: TypeAdapter[float | None] = TypeAdapter(
    typing.get_type_hints(Context, include_extras=True)["safety_threshold"]
)


def row_filters(args: argparse.Namespace) -> list[RowFilter]:
    """The safety gate (SFT) and the DPO pair-quality filters; `ValueError` naming a flag out of range."""
    asked = {"min_score_gap": args.min_score_gap, "max_similarity": args.max_similarity}
    if args.format != "dpo" and any(v is not None for v in asked.values()):
        raise ValueError("--min-score-gap and --max-similarity apply to --format dpo")
    if args.format != "sft" and args.safety_threshold is not None:
        raise ValueError("--safety-threshold applies to --format sft")
    if args.format == "sft":
        try:  # the range of the generate flag of the same name
            threshold = SAFETY_THRESHOLD.validate_python(args.safety_threshold)
        except ValidationError as exc:
            raise ValueError(f"--safety-threshold: {exc.errors()[0]['msg']}") from None
        return [safety_gate(threshold)]
    if all(v is None for v in asked.values()):
        return []
    try:
        quality = PairQuality(**asked)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    return quality.filters(lambda side: assistant_turn(side["thoughts"], side["response"]).content)


def run(args: argparse.Namespace) -> int:
    records = Path(args.records)
    if not records.is_file():
        print(f"error: {records}: no such file", file=sys.stderr)
        return 2
    output = (
        Path(args.output) if args.output else records.with_name(f"{records.name.split('.')[0]}.{args.format}.jsonl")
    )
    try:
        filters = row_filters(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = export(records, args.format, output, filters)
    for reason, count in result.left_out.most_common():
        print(f"left out {count} {'pairs' if args.format == 'dpo' else 'records'}: {reason}")
    print(f"{result.rows} {args.format} rows: {result.jsonl}" + (f" and {result.parquet}" if result.rows else ""))
    if result.card is not None and result.card.name == "README.md":
        print(f"dataset card: {result.card} (the folder uploads with `huggingface-cli upload`, see the card)")
    elif result.card is not None:
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
        help="Output JSONL; the parquet dataset goes beside it (default: <name>.<format>.jsonl).",
    )
    parser.add_argument(
        "--safety-threshold",
        type=float,
        metavar="SCORE",
        help="SFT: leave out records whose safety-gate score (aidsafe generate --safety-threshold) is above "
        "SCORE, and records the gate never rated. Without it, records the gate flagged are left out.",
    )
    group = parser.add_argument_group("DPO pair quality (--format dpo)")
    group.add_argument(
        "--min-score-gap",
        type=float,
        metavar="GAP",
        help="Drop pairs whose rejected side is less than GAP more violating than the chosen side "
        "(rejected_score - chosen_score, violation scores 0..1).",
    )
    group.add_argument(
        "--max-similarity",
        type=float,
        metavar="S",
        help="Drop pairs whose chosen and rejected texts are at least S similar (0..1, rapidfuzz ratio).",
    )
    parser.set_defaults(run=run)
