"""`aidsafe export`: records to TRL-ready training data, as JSONL and as a Hugging Face parquet dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aidsafe.cli.options import UsageError
from aidsafe.export.training import EXPORTERS, NothingToExport, default_output, export


def run(args: argparse.Namespace) -> int:
    records = Path(args.records)
    if not records.is_file():
        raise UsageError(f"{records}: no such file" if not records.exists() else f"{records}: not a file")
    output = Path(args.output) if args.output else default_output(records, args.format)
    try:
        result = export(records, args.format, output)
    except NothingToExport as exc:
        print(f"aidsafe export: {exc}", file=sys.stderr)
        return 1
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
    parser.set_defaults(run=run)
