"""Models under test, as the user names them with `--model`, and how each is served for a run.

- `embedded`: the bundled SmolLM2-135M on llama.cpp (the judge's server, when the judge is embedded too);
- a folder (written by `aidsafe train`, or any Hugging Face model or adapter folder): loaded with
  `transformers` and served in this process on loopback (`aidsafe.train.local_server`);
- `NAME@URL`: model NAME on the OpenAI-compatible server at URL;
- `NAME`: model NAME on `--base-url` (or `OPENAI_BASE_URL`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aidsafe.embedded import MODEL_ALIAS, EmbeddedServer
from aidsafe.nodes.bench_subject import Subject
from aidsafe.nodes.context import EMBEDDED

MODEL_FOLDER_MARKERS = ("config.json", "adapter_config.json")


class ModelSpecError(ValueError):
    """A `--model` that names nothing usable."""


@dataclass(frozen=True)
class ModelUnderTest:
    kind: Literal["embedded", "folder", "server"]
    name: str
    """The model name sent to the server, or the folder's path."""
    base_url: str | None = None

    @property
    def identity(self) -> str:
        """What the model is across runs (part of every checkpoint key); ports change, this does not."""
        if self.kind == "folder":
            folder = Path(self.name).resolve()
            newest = max((p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()), default=0)
            return f"folder:{folder}@{newest}"
        return f"{self.kind}:{self.name}@{self.base_url or ''}"

    @property
    def label(self) -> str:
        """A file-name-safe label: the results of this model are `<label>.jsonl`."""
        name = Path(self.name).resolve().name if self.kind == "folder" else self.name
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def parse_model(spec: str, base_url: str) -> ModelUnderTest:
    """`spec` as given to `--model`; `base_url` is the run's `--base-url` (or `embedded`)."""
    if spec == EMBEDDED:
        return ModelUnderTest("embedded", MODEL_ALIAS)
    name, at, url = spec.rpartition("@")
    if at and re.match(r"https?://", url) and name:
        return ModelUnderTest("server", name, url)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not any((path / marker).is_file() for marker in MODEL_FOLDER_MARKERS):
            raise ModelSpecError(
                f"--model {spec}: {path} is not a model folder (no {' or '.join(MODEL_FOLDER_MARKERS)})"
            )
        return ModelUnderTest("folder", str(path))
    if path.exists():
        raise ModelSpecError(f"--model {spec}: {path} is a file, not a model folder")
    if base_url == EMBEDDED:
        raise ModelSpecError(
            f"--model {spec}: no such model folder, and no --base-url to find a server model of that name "
            "(give a folder, 'embedded', NAME@URL, or --base-url URL)"
        )
    return ModelUnderTest("server", spec, base_url)


@contextmanager
def serve_model(model: ModelUnderTest, judge_base_url: str, judge_embedded: bool) -> Iterator[Subject]:
    """Where the model under test answers during the block; anything started here stops after it.

    An embedded model under test shares the judge's server when the judge is embedded too.
    """
    if model.kind == "server":
        assert model.base_url is not None
        yield Subject(model.base_url, model.name)
    elif model.kind == "embedded":
        if judge_embedded:
            yield Subject(judge_base_url, model.name)
        else:
            with EmbeddedServer() as server:
                yield Subject(server.base_url, model.name)
    else:
        from aidsafe.train.local_server import LocalModelServer

        with LocalModelServer(model.name) as server:
            yield Subject(server.base_url, server.model_name)
