"""`aidsafe view FILE...`: one self-contained HTML page (no network needed) to review records by eye.

Takes generate, baseline, preference, errors and evaluation files (`samples.jsonl` of `aidsafe
evaluate`, joined to the records of the same id). Filters: kind, stop reason, policy, failed,
refused, a score range; full-text search.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aidsafe.viewer import write


def run(args: argparse.Namespace) -> int:
    inputs = [Path(p) for p in args.files]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        print(f"error: {', '.join(missing)}: no such file", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else Path(f"{inputs[0].name.split('.')[0]}.view.html")
    if any(output.resolve() == p.resolve() for p in inputs):
        print(f"error: {output} is one of the inputs; choose another -o", file=sys.stderr)
        return 2
    data = write(inputs, output)
    for bad in data.bad_lines:
        print(f"skipped {bad}", file=sys.stderr)
    print(f"{len(data.samples)} samples: {output}")
    return 1 if data.bad_lines or not data.samples else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "view", help="Write a self-contained HTML page to review records.", description=__doc__
    )
    parser.add_argument("files", nargs="+", help="JSONL files of generate, prefer, evaluate (samples.jsonl) or errors.")
    parser.add_argument("-o", "--output", default=None, help="HTML page (default: <first input name>.view.html here).")
    parser.set_defaults(run=run)
