"""What `aidsafe --help` tells a user."""

from __future__ import annotations

from aidsafe.cli.main import main


def test_help_describes_the_tool_and_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "chain-of-thought safety data" in text and "registers itself" not in text
    for command in ("generate", "prefer", "export", "evaluate", "serve"):
        assert command in text
