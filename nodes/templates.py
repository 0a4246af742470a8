"""Prompt templates: Markdown files beside the nodes (`nodes/<name>.md`) with `$placeholders`, so
reviewers read prompts as text. Every module that builds a message (the agents, the re-asks) reads
them here."""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).parent


@cache
def template(name: str) -> string.Template:
    """A prompt template beside its node: `nodes/<name>.md`, `$placeholders`."""
    return string.Template((PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8"))
