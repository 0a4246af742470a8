"""`aidsafe view`: a self-contained HTML page for reviewing generate, preference and evaluation files,
and the loopback server that lets people label them."""

from aidsafe.viewer.labelling import LabelServer, labelled_samples
from aidsafe.viewer.page import ViewData, load, render, write

__all__ = ["LabelServer", "ViewData", "labelled_samples", "load", "render", "write"]
