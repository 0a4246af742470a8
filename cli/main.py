"""`aidsafe` entry point: each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

DESCRIPTION = (
    "Generate policy-embedded chain-of-thought safety data (AIDSAFE): agents deliberate over each "
    "prompt against a policy set; export it for SFT/DPO, evaluate it, train and bench models on it, or serve "
    "the graphs."
)
"""What `aidsafe --help` tells users (this module's docstring is for maintainers)."""

SUBCOMMANDS: list[str] = ["generate", "prefer", "export", "evaluate", "train", "bench", "serve"]
"""Modules of `cli` that define `register(subparsers)`; each adds one subcommand."""


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="aidsafe", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        importlib.import_module(f"aidsafe.cli.{module}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


def console_main() -> int:
    """The `aidsafe` command: SIGTERM stops a run the way Ctrl-C does.

    Python's default SIGTERM skips `finally` blocks and atexit, which left the embedded llama.cpp
    server (in its own session, so it never sees the signal) running after `kill` or `timeout`.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
