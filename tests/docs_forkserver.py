"""`aidsafe` for the docs' code blocks without paying its imports on every command.

Importing the CLI (LangGraph, LangChain, the openai SDK, ...) takes seconds, and the docs' blocks
run some 30 commands. `serve SOCKET` imports it once and forks a child per request: the child takes
over the client's stdin, stdout and stderr (passed over the Unix socket), its folder, environment and
arguments, runs `aidsafe` (the console entry point) or a Python block, and its exit code goes back
to the client, which exits with it. `client SOCKET aidsafe ARGS...` / `client SOCKET python` (the
code on stdin) is what the blocks' shell calls: it imports only the standard library.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def client(path: str, kind: str, args: list[str]) -> int:
    request = {"kind": kind, "args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    if kind == "python":
        request["code"] = sys.stdin.read()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        data = json.dumps(request).encode()
        sock.sendall(len(data).to_bytes(8, "big"))
        socket.send_fds(sock, [data], [0, 1, 2])
        reply = sock.recv(8)
    return int.from_bytes(reply, "big", signed=True) if len(reply) == 8 else 99


def receive(conn: socket.socket) -> tuple[dict, list[int]]:
    size = int.from_bytes(conn.recv(8), "big")
    data, fds, _, _ = socket.recv_fds(conn, size, 3)
    while len(data) < size:
        data += conn.recv(size - len(data))
    return json.loads(data), fds


def child(request: dict, fds: list[int]) -> int:
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    try:
        if request["kind"] == "python":
            exec(compile(request["code"], "<docs block>", "exec"), {"__name__": "__main__"})
            return 0
        from aidsafe.cli.main import console_main

        sys.argv = ["aidsafe", *request["args"]]
        return console_main()
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def serve(path: str) -> None:
    import importlib
    import pkgutil

    import aidsafe.cli
    import aidsafe.graphs.deliberation  # the Python blocks' imports
    import aidsafe.graphs.preference

    for module in pkgutil.iter_modules(aidsafe.cli.__path__):
        importlib.import_module(f"aidsafe.cli.{module.name}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(8)
        print("ready", flush=True)
        while True:
            conn, _ = server.accept()
            with conn:
                request, fds = receive(conn)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    server.close()
                    os._exit(child(request, fds))
                for fd in fds:
                    os.close(fd)
                _, status = os.waitpid(pid, 0)
                conn.sendall(os.waitstatus_to_exitcode(status).to_bytes(8, "big", signed=True))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(client(sys.argv[2], sys.argv[3], sys.argv[4:]))
