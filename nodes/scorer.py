"""The violation scorer: how strongly a sample (or its thoughts alone) breaks the policies, from 0 to 1.

A replaceable component, chosen per run by `scorer_format`. `LlmJudge` (`nodes.violation_judge`,
`aidsafe`) rates with a rubric over the policy set; `HttpSafetyClassifier` (`nodes.safety_classifier`,
`http`) asks a classifier served over HTTP, the way the paper used ShieldGemma; `GuardJudge`
(`nodes.guard_judge`) asks a served guard model in its own format. Anything with a
`node(name, side, part)` method that returns a graph node writing `state.preference.scored(...)` can
take their place: `build_graph(scorer=...)`.
"""

from __future__ import annotations

from typing import Any, Protocol

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from aidsafe.nodes.context import ScorerFormat, node_context
from aidsafe.nodes.guard_judge import FORMATS, GuardJudge
from aidsafe.nodes.llm import ModelProvider
from aidsafe.nodes.safety_classifier import HttpSafetyClassifier
from aidsafe.nodes.violation_judge import LlmJudge
from aidsafe.state.preference import Part, Side

Node = Runnable[Any, dict[str, Any]]


class ViolationScorer(Protocol):
    def node(self, name: str, side: Side, part: Part = "response") -> Node:
        """A graph node that scores `part` of `side` of the state and writes `scored(state, side, score, part)`."""
        ...


class ScorerFromContext:
    """The default: the scorer of the run's `scorer_format` (unset: the HTTP classifier when the
    context sets `scorer_url`, else the LLM judge).

    Chosen per run, so the CLI flags and Studio's form switch scorers without a rebuild.
    """

    def __init__(self, provider: ModelProvider | None = None) -> None:
        self.scorers: dict[ScorerFormat, ViolationScorer] = {
            "aidsafe": LlmJudge(provider),
            "http": HttpSafetyClassifier(),
            **{guard: GuardJudge(guard, provider) for guard in FORMATS},
        }

    def node(self, name: str, side: Side, part: Part = "response") -> Node:
        nodes = {fmt: scorer.node(name, side, part) for fmt, scorer in self.scorers.items()}

        def pick(config: RunnableConfig) -> Node:
            return nodes[node_context(config).scorer]

        def run(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
            return pick(config).invoke(state, config)

        async def arun(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
            return await pick(config).ainvoke(state, config)

        return RunnableLambda(run, afunc=arun, name=name)
