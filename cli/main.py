"""`aidsafe` entry point: each subcommand lives in its own module and registers itself here.

No traceback reaches a user: a command line that cannot run (a flag's value, a path, the policy
file) exits 2 with one line naming what and where; an embedded model server that cannot start or
dies exits 1, named with its fix; Ctrl-C and SIGTERM exit 130 quietly; anything
else is a bug, reported in one line that names a log file holding the traceback (`--debug`
shows it instead).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aidsafe.batch.files import UnsafeOutput
from aidsafe.batch.stores import RunFailure
from aidsafe.cli import (
    bench,
    clean,
    contrast,
    evaluate,
    export,
    generate,
    policies,
    prefer,
    revise,
    revise_pairs,
    serve,
    train,
    view,
)
from aidsafe.cli.exit_codes import FAILED, INTERNAL_ERROR, INTERRUPTED, USAGE_ERROR
from aidsafe.cli.options import UsageError
from aidsafe.embedded.llama_server import EmbeddedServerError
from aidsafe.policies import PolicyFileError

USER_ERRORS = (UsageError, UnsafeOutput, PolicyFileError, RunFailure)
"""Exceptions that mean "fix the command", each with a message naming what and where."""

DESCRIPTION = (
    "Generate policy-embedded chain-of-thought safety data (AIDSAFE): agents deliberate over each "
    "prompt against a policy set; export it for SFT/DPO, evaluate it, train and bench models on it, or serve "
    "the graphs."
)
"""What `aidsafe --help` tells users (this module's docstring is for maintainers)."""

SUBCOMMANDS = (
    contrast,
    clean,
    generate,
    prefer,
    revise,
    revise_pairs,
    policies,
    export,
    evaluate,
    train,
    bench,
    serve,
    view,
)
"""Modules of `cli` that define `register(subparsers)`; each adds one subcommand, in this order."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line naming it (and `--help`), not the whole usage, and
    flags are never abbreviated: `--max-round` is a typo, not `--max-rounds`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def error(self, message: str) -> typing.NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="aidsafe", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    for command in subparsers.choices.values():
        command.add_argument(
            "--debug", action="store_true", help="Show the traceback of an internal error instead of logging it."
        )
    return parser


def log_traceback() -> Path:
    """Write the current exception's traceback to a new file in the temp folder; return its path."""
    handle, name = tempfile.mkstemp(prefix=f"aidsafe-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log")
    with os.fdopen(handle, "w", encoding="utf-8") as log:
        log.write(f"aidsafe {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}")
    return Path(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; an embedded model server that cannot start or dies is exit code 1, said in words."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the message naming the flag
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as exc:
        print(f"aidsafe {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except EmbeddedServerError as exc:  # the model server, not the command: named with its fix
        print(f"aidsafe {args.command}: error: {exc}", file=sys.stderr)
        return FAILED
    except OSError as exc:  # the disk, not aidsafe: full, read-only, permissions
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"aidsafe {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"\naidsafe {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        log = log_traceback()
        print(
            f"aidsafe {args.command}: internal error ({type(exc).__name__}: {exc}). This is a bug in aidsafe; "
            f"the traceback is in {log} (or re-run with --debug)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


def console_main() -> int:
    """The `aidsafe` command: SIGTERM stops a run the way Ctrl-C does.

    Python's default SIGTERM skips `finally` blocks and atexit, which left the embedded llama.cpp
    server (in its own session, so it never sees the signal) running after `kill` or `timeout`.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
