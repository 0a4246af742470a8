"""The settings a run's results depend on: one frozen model, built in one place, whose dump is the
run's fingerprint (Curator's cache key): part of every sample's checkpoint thread id, so a changed
setting never resumes a checkpoint made with another, and the `settings` of every record.

Which `Context` fields belong is said by each field's `changes` metadata (`nodes/context.py`): the
graphs whose results it changes. A new field that changes results is in the fingerprint of those
graphs with no other edit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aidsafe.nodes.context import Context, GraphName, Role
from aidsafe.policies import PolicySet


class RunSettings(BaseModel):
    """What makes a run's results what they are, beside its inputs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    graph: GraphName
    role_models: dict[Role, str]
    """The model each role of the graph calls (prices are looked up for these)."""
    policies: PolicySet = Field(exclude=True)
    """The policy set the run started with: every node of every sample reads this one
    (`GraphJob.run_context`), so an edit of the file during a long run waits for the next run."""
    context: dict[str, Any]
    """Every other `Context` field whose `changes` metadata names this graph and that is set (an unset
    model override is the same run as none: `role_models` holds the model each role calls)."""
    job: dict[str, Any]
    """The job's own (`n_deliberators`, the model under test's identity, ...)."""

    @property
    def policy_set(self) -> str:
        """The policy set's content hash (its file's path does not change results; its text does)."""
        return self.policies.hash

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The flat dump: what thread ids hash and records keep as `settings`."""
        return {
            "graph": self.graph,
            "role_models": self.role_models,
            "policy_set": self.policy_set,
            **self.context,
            **self.job,
        }


def run_settings(ctx: Context, graph: GraphName, roles: Sequence[Role], **job: Any) -> RunSettings:
    """The one builder of `RunSettings`."""
    context = {
        spec.name: getattr(ctx, spec.name)
        for spec in dataclasses.fields(ctx)
        if graph in spec.metadata["changes"] and spec.name != "policy_file" and getattr(ctx, spec.name) is not None
    }
    return RunSettings(
        graph=graph,
        role_models={role: ctx.model_for(role) for role in roles},
        policies=ctx.policies,
        context=context,
        job=job,
    )
