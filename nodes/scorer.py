"""The violation scorer: how strongly a sample breaks the policies, from 0 to 1.

A replaceable component. `LlmJudge` (`nodes.violation_judge`) rates with a rubric over the policy
set; `HttpSafetyClassifier` (`nodes.safety_classifier`) asks a classifier served over HTTP, the
way the paper used ShieldGemma. Anything with a `node(name, side)` method that returns a graph
node writing `state.preference.scored(...)` can take their place: `build_graph(scorer=...)`.
"""

from __future__ import annotations

from typing import Any, Protocol

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from aidsafe.nodes.context import node_context
from aidsafe.nodes.llm import ModelProvider
from aidsafe.nodes.safety_classifier import HttpSafetyClassifier
from aidsafe.nodes.violation_judge import LlmJudge
from aidsafe.state.preference import Side

Node = Runnable[Any, dict[str, Any]]


class ViolationScorer(Protocol):
    def node(self, name: str, side: Side) -> Node:
        """A graph node that scores `side` of the state and writes `scored(state, side, score)`."""
        ...


class ScorerFromContext:
    """The default: the HTTP classifier when the run's context sets `scorer_url`, else the LLM judge.

    Chosen per run, so the CLI flag `--scorer-url` and Studio's form switch scorers without a rebuild.
    """

    def __init__(self, provider: ModelProvider | None = None) -> None:
        self.judge = LlmJudge(provider)
        self.classifier = HttpSafetyClassifier()

    def node(self, name: str, side: Side) -> Node:
        judge, classifier = self.judge.node(name, side), self.classifier.node(name, side)

        def pick(config: RunnableConfig) -> Node:
            return classifier if node_context(config).scorer_url else judge

        def run(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
            return pick(config).invoke(state, config)

        async def arun(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
            return await pick(config).ainvoke(state, config)

        return RunnableLambda(run, afunc=arun, name=name)
