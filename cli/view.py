"""`aidsafe view FILE...`: one self-contained HTML page (no network needed) to review records by eye.

Takes generate, baseline, preference, errors and evaluation files (`samples.jsonl` of `aidsafe
evaluate`, joined to the records of the same id). Filters: kind, stop reason, policy, failed,
refused, a score range; full-text search.

`aidsafe view FILE --label --annotator NAME` serves the page on 127.0.0.1 instead, for people to
score the records of FILE on the rubrics and mark them safe or unsafe by keyboard; each label is
appended to the labels file (`state/labels.py`) before the page shows it saved. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from urllib.parse import quote

from aidsafe.cli.options import Port, UsageError, setting_type
from aidsafe.viewer import LabelServer, labelled_samples, load, write

DEFAULT_PORT = 8765


def _label(args: argparse.Namespace, source: Path) -> int:
    if len(args.files) != 1 or args.output:
        raise UsageError("--label serves the records of one file (and writes no page: drop -o)")
    annotator = (args.annotator or "").strip()
    if not annotator:
        raise UsageError("--label needs --annotator NAME: whose labels these are")
    labels = Path(args.labels) if args.labels else source.with_suffix(".labels.jsonl")
    if labels.resolve() == source.resolve():
        raise UsageError(f"--labels {labels} is the records file; labels go to another file")
    data = labelled_samples(load([source]))
    for bad in data.bad_lines:
        print(f"skipped {bad}", file=sys.stderr)
    if not data.samples:
        raise UsageError(f"{source}: no generate or baseline records to label")
    try:
        server = LabelServer(data, labels, annotator, args.port, f"aidsafe view: labelling {source.name}")
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise UsageError(f"port {args.port} on 127.0.0.1 is in use: choose another with --port (0: any free)") from None
    with server:
        print(f"{len(data.samples)} samples to label as {annotator}; labels go to {labels}")
        print(
            f"open {server.url}?annotator={quote(annotator)}  (another reviewer: ?annotator=THEIR NAME; Ctrl-C stops)",
            flush=True,
        )
        server.serve_forever()
    return 0


def run(args: argparse.Namespace) -> int:
    inputs = [Path(p) for p in args.files]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        print(f"error: {', '.join(missing)}: no such file", file=sys.stderr)
        return 2
    if args.label:
        return _label(args, inputs[0])
    if args.annotator or args.labels:
        raise UsageError("--annotator and --labels are for --label")
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
        "view",
        help="Write a self-contained HTML page to review records (or serve it to label them).",
        description=__doc__,
    )
    parser.add_argument("files", nargs="+", help="JSONL files of generate, prefer, evaluate (samples.jsonl) or errors.")
    parser.add_argument("-o", "--output", default=None, help="HTML page (default: <first input name>.view.html here).")
    label = parser.add_argument_group("labelling")
    label.add_argument("--label", action="store_true", help="Serve the page on 127.0.0.1 to label the records of FILE.")
    label.add_argument("--annotator", default=None, metavar="NAME", help="Whose labels (required with --label).")
    label.add_argument(
        "--labels",
        default=None,
        metavar="FILE",
        help="Labels file to append to (default: FILE.labels.jsonl beside FILE).",
    )
    label.add_argument(
        "--port",
        type=setting_type(Port),
        default=DEFAULT_PORT,
        help=f"Port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free one).",
    )
    parser.set_defaults(run=run)
