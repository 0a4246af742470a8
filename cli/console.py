"""The `aidsafe` console script. Importing the commands (LangGraph, LangChain, the batch engine)
takes a second or two; a Ctrl-C meanwhile ends quietly, as it does once a command runs."""

from __future__ import annotations

import sys

from aidsafe.cli.exit_codes import INTERRUPTED


def run() -> int:
    try:
        from aidsafe.cli.main import console_main  # every subcommand, imported once
    except KeyboardInterrupt:
        print("\naidsafe: interrupted", file=sys.stderr)
        return INTERRUPTED
    return console_main()
