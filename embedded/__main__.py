"""`python -m aidsafe.embedded ARGS`: llama.cpp's server (`python -m llama_cpp.server ARGS`) that
leaves when the process that started it is gone.

A parent killed outright (SIGKILL, a test runner's timeout) cannot stop its server. Its children are
then handed to another process, so a changed parent pid means nobody will stop this one any more:
it leaves at once, holding no state worth saving.
"""

import os
import runpy
import sys
import threading
import time

PARENT_POLL_SECONDS = 1.0


def watch_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


threading.Thread(target=watch_parent, daemon=True).start()
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
