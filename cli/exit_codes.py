"""The exit codes of every `aidsafe` command, one definition each (the docs list them per command)."""

DONE = 0
"""Every input became a record (or was judged, graded, exported)."""
FAILED = 1
"""An input line or a sample failed, or the embedded model server could not start or died; the rest
completed and the same command resumes."""
USAGE_ERROR = 2
"""A command that cannot run as given; nothing was written."""
INTERNAL_ERROR = 3
"""A bug: the message names the log file with the traceback."""
COST_CAP_REACHED = 4
"""A batch that `--max-cost` stopped: nothing failed, every record is whole, and the same command
with a higher cap continues (1 would say "something failed", 0 "all done")."""
INTERRUPTED = 130
"""Ctrl-C or SIGTERM: finished records are kept and the same command resumes."""
