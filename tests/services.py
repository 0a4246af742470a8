"""Real Postgres and Ray for the tests, on 127.0.0.1, started and stopped by PID.

Postgres: Debian's server binaries (`apt-get install postgresql`; `.ci/run` does it) run as the
`postgres` user when the tests run as root (initdb refuses root), on a temporary data directory.
Ray: a head node started by a small Python process (`ray.init`); after it stops, every process of
the cluster that outlived it (raylet, GCS, agents, workers) is stopped by PID.
"""

from __future__ import annotations

import contextlib
import glob
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RuntimeError("no Postgres server binaries: apt-get install -y postgresql")
    return Path(found[-1]).parent


def children(pid: int) -> list[int]:
    """The live children of `pid` (of any of its threads), read from /proc."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, read from /proc."""
    found, todo = [], [pid]
    while todo:
        found_now = children(todo.pop())
        found += found_now
        todo += found_now
    return found


def alive(pid: int) -> bool:
    """Not exited (a zombie counts as exited: it can no longer do anything)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def listening_addresses(pids: Iterable[int]) -> set[tuple[IPAddress, int]]:
    """(address, port) of every TCP socket of `pids` that listens, from /proc (no `ss` needed);
    an IPv4 address mapped into IPv6 is given as the IPv4 one."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found: set[tuple[IPAddress, int]] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            host, port = fields[1].split(":")
            # the kernel writes the address as 32-bit words, each in little-endian order
            packed = b"".join(bytes.fromhex(host[i : i + 8])[::-1] for i in range(0, len(host), 8))
            address = ipaddress.ip_address(packed)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            found.add((address, int(port, 16)))
    return found


def stop_pids(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM each, SIGKILL what is left after `grace` seconds; return when all are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_gone(pids, grace)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_gone(pids, 30)


def wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh Postgres on 127.0.0.1 and a free port; yields its URL (user postgres, trust auth)."""
    binaries = postgres_bin()
    user = "postgres" if os.geteuid() == 0 else None
    data = Path(tempfile.mkdtemp(prefix="aidsafe-pg-"))
    if user:
        shutil.chown(data, user)
    port = free_port()
    try:
        subprocess.run(
            [binaries / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            user=user,
        )
        server = subprocess.Popen(
            [binaries / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", data, "-c", "fsync=off"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=user,
        )
        try:
            deadline = time.monotonic() + 60
            while subprocess.run(
                [binaries / "pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            ).returncode:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start (exit code {server.poll()})")
                time.sleep(0.1)
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            server.send_signal(signal.SIGINT)  # fast shutdown, by PID
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(data, ignore_errors=True)


RAY_HEAD = """
import signal, sys, time, ray
ray.init(num_cpus=int(sys.argv[1]), include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
print(ray.get_runtime_context().gcs_address, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
"""


@dataclass(frozen=True)
class RayHead:
    address: str
    """The GCS address, for `--ray-address`."""
    pid: int
    """The process that started the cluster: its descendants are the cluster's processes."""


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2, attempts: int = 3) -> Iterator[RayHead]:
    """A local Ray head on 127.0.0.1, started by a Python process of its own.

    On a loaded machine the raylet can die waiting for its agents (Ray's 15 s start-up limit,
    ray-project/ray#65983): another attempt usually comes up.
    """
    for attempt in range(attempts):
        head = subprocess.Popen(
            [sys.executable, "-c", RAY_HEAD, str(num_cpus)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert head.stdout is not None
        address = head.stdout.readline().strip()
        if address:
            break
        stop_ray_tree(head.pid)
        head.wait()
        if attempt == attempts - 1:
            raise RuntimeError(f"the Ray head did not start in {attempts} attempts (exit code {head.returncode})")
    try:
        yield RayHead(address, head.pid)
    finally:
        stop_ray_tree(head.pid)
        head.wait()


def stop_ray_tree(pid: int) -> None:
    """Stop `pid` and every process it started (Ray's GCS, raylet, agents and workers), by PID."""
    tree = descendants(pid)
    stop_pids([pid])
    stop_pids([p for p in tree if alive(p)])


def start_generate(inputs: Path, output: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """`aidsafe generate` on the embedded model in a child process, once its server process exists:
    the run and the server's pids."""
    command = [sys.executable, "-c", "import sys; from aidsafe.cli.main import console_main; sys.exit(console_main())"]
    run = subprocess.Popen(
        [*command, "generate", str(inputs), "-o", str(output), "--no-progress"],
        cwd=output.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    deadline = time.monotonic() + 60
    server_pids: list[int] = []
    while not server_pids and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
        server_pids = children(run.pid)
    if not server_pids:
        run.kill()
        raise AssertionError(f"the embedded server never started: {run.communicate()}")
    return run, server_pids


def wait_until_healthy(process: subprocess.Popen, url: str, timeout: float = 240) -> None:
    """Until `url/health` answers 200: an `aidsafe serve` started in `process` (the CLI's imports
    alone took 65 s on a loaded 2-core machine). Its output is shown if it exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        output = process.stdout or process.stderr
        assert process.poll() is None, output.read().decode() if output else "aidsafe serve exited"
        assert time.monotonic() < deadline, "aidsafe serve did not come up"
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)


@contextlib.contextmanager
def running(app: Any, **options: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1 in a thread; shut it down on exit.
    `options` go to `uvicorn.Config` (e.g. `http`, the protocol class)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
