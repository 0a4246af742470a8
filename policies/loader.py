"""Load and validate a policy file (YAML or JSON).

A policy set is data the user owns: the agents cite policies by `id`, the prompts render them,
and the set's hash is stored with every output record so a dataset says which rules made it.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property, lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_POLICY_FILE = Path(__file__).with_name("aidsafe.yaml")


class PolicyFileError(ValueError):
    """A policy file that cannot be read or does not match the schema; names file and field."""


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Stable id cited by thoughts.")
    title: str = Field(min_length=1)
    allows: list[str] = Field(default_factory=list)
    forbids: list[str] = Field(min_length=1)


class PolicySet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: int | str = 1
    policies: list[Policy] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> PolicySet:
        ids = [p.id for p in self.policies]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicate policy ids: {', '.join(duplicated)}")
        return self

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.policies]

    @cached_property
    def hash(self) -> str:
        """Short content hash: equal sets give equal hashes whatever the file's formatting.

        Cached: every traced agent turn labels itself with it."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def render(self) -> str:
        """The policies as the agents read them."""
        blocks = []
        for policy in self.policies:
            lines = [f"[{policy.id}] {policy.title}"]
            lines += [f"  allows: {item}" for item in policy.allows]
            lines += [f"  forbids: {item}" for item in policy.forbids]
            blocks.append("\n".join(lines))
        return "\n".join(blocks)


def load_policies(path: str | Path | None = None) -> PolicySet:
    """Load a policy set; `None` gives the five AIDSAFE policies."""
    resolved = Path(path).expanduser().resolve() if path else DEFAULT_POLICY_FILE
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError as exc:
        raise PolicyFileError(f"{resolved}: cannot read policy file ({exc.strerror})") from exc
    return _load_cached(resolved, mtime)


@lru_cache(maxsize=32)
def _load_cached(path: Path, _mtime_ns: int) -> PolicySet:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PolicyFileError(f"{path}: not a readable YAML/JSON policy file: {exc}") from exc
    try:
        return PolicySet.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyFileError(f"{path}: invalid policy file: {problems}") from exc
