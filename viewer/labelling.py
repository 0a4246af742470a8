"""`aidsafe view --label`: the review page served on loopback, and every label on disk when given.

A page opened from disk cannot write a file, so the page is served by a small HTTP server on
127.0.0.1 that appends each label to the labels file (`state/labels.py`, read back by
`metrics/labels.py`) before it answers, and tells a reopened page the labels so far. Python's
`http.server` and not the `[serve]` extra's FastAPI: three routes need no framework, and labelling
then works in the base install. It must not write anything but whole, valid label lines, and never
to the records file.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from aidsafe.metrics.labels import read_labels
from aidsafe.state.labels import LABEL_NAMES, SAFETY_MARKS, Label, score_range
from aidsafe.viewer.page import ViewData, render

LABELLED_KINDS = ("generate", "baseline")
"""Records with thoughts and a response: what the rubrics and the safety marks are about."""
MAX_BODY = 64 * 1024


class LabelsFile:
    """Appends label lines so that none is lost or torn: one `write` per line, flushed and fsynced
    before the answer; a lock in this process and `flock` across processes (two reviewers, each
    with a server of their own on one file), so lines from concurrent labels never interleave."""

    def __init__(self, path: Path, known_ids: set[str]) -> None:
        self.path = path
        self.known_ids = known_ids
        self._lock = threading.Lock()

    def append(self, label: Label) -> None:
        line = (label.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the flock
            if created:  # the new file's name must survive a crash too
                directory = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)

    def so_far(self, annotator: str) -> dict[str, dict[str, int]]:
        """The scores that count for `annotator`, by record id and rubric."""
        if not self.path.exists():
            return {}
        scores: dict[str, dict[str, int]] = {}
        for label in read_labels([self.path], self.known_ids).labels:
            if label.annotator == annotator:
                scores.setdefault(label.id, {})[label.rubric] = label.score
        return scores


class _Handler(BaseHTTPRequestHandler):
    server: LabelServer
    disable_nagle_algorithm = True  # headers and body leave in two writes: Nagle would add ~40 ms

    def log_message(self, format: str, *args: Any) -> None:  # the terminal shows the URL, not every request
        pass

    def _answer(self, status: HTTPStatus, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, value: Any) -> None:
        self._answer(status, json.dumps(value).encode("utf-8"))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/":
            self._answer(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif url.path == "/labels":
            annotator = parse_qs(url.query).get("annotator", [""])[0]
            if not annotator:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "say whose labels: /labels?annotator=NAME"})
            else:
                self._json(HTTPStatus.OK, {"annotator": annotator, "labels": self.server.labels.so_far(annotator)})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no {url.path} here: GET / or /labels, POST /labels"})

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/labels":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no {self.path} here: POST /labels"})
            return
        declared = self.headers.get("Content-Length", "")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            message = f"a label is one JSON object of under {MAX_BODY} bytes, sent with its Content-Length"
            self._json(HTTPStatus.BAD_REQUEST, {"error": message})
            return
        try:
            label = self.server.validate(json.loads(self.rfile.read(int(declared)) or b"null"))
        except ValueError as exc:  # not JSON, or not a label of a record in this file
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        try:
            self.server.labels.append(label)
        except OSError as exc:  # the disk, not the label: full, read-only, permissions
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"cannot write {exc.filename}: {exc.strerror}"})
            return
        self._json(HTTPStatus.OK, {"saved": json.loads(label.model_dump_json())})


class LabelServer(ThreadingHTTPServer):
    """The page and the labels file of one records file, on 127.0.0.1 (`port` 0: any free port)."""

    daemon_threads = False
    block_on_close = True  # Ctrl-C waits for a label being written, so no line is torn

    def __init__(self, data: ViewData, labels_path: Path, annotator: str, port: int = 0, title: str = "") -> None:
        self.labels = LabelsFile(labels_path, {s["id"] for s in data.samples})
        labelling = {
            "annotator": annotator,
            "fields": [{"name": name, "scores": list(score_range(name))} for name in LABEL_NAMES],
            "marks": list(SAFETY_MARKS),
        }
        self.page = render(data, title or "aidsafe view: labelling", labelling).encode("utf-8")
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser closed or killed mid-request is no error of the server: no traceback for it."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def validate(self, body: Any) -> Label:
        """A label of a record in this file, stamped with the time it arrived; `ValueError` saying
        what is wrong otherwise."""
        if not isinstance(body, dict):
            raise ValueError('a label is a JSON object: {"id", "rubric", "score", "annotator"}')
        fields = {key: body.get(key) for key in ("id", "rubric", "score", "annotator")}
        try:
            label = Label.model_validate({**fields, "time": datetime.now(UTC)})
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise ValueError(f"{where + ': ' if where else ''}{error['msg'].removeprefix('Value error, ')}") from None
        if label.id not in self.labels.known_ids:
            raise ValueError(f"id {label.id!r} is not a record of this file")
        return label


def labelled_samples(data: ViewData) -> ViewData:
    """The records people label: generate and baseline records (not error lines or preference pairs)."""
    return ViewData([s for s in data.samples if s["kind"] in LABELLED_KINDS], data.bad_lines, data.files)
