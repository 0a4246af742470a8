"""`aidsafe view`: a self-contained HTML page for reviewing generate, preference and evaluation files."""

from aidsafe.viewer.page import ViewData, load, render, write

__all__ = ["ViewData", "load", "render", "write"]
