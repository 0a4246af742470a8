"""What every agent node shares: its prompt templates, the shared system prefix, and the driver.

An agent's logic is a generator: it yields `Ask`s (a role, an answer schema and the messages) and
receives validated answers, then returns its state update. `agent_node` turns the logic and the
re-asks of each answer into one `Conversation` of model requests, which `drive` (sync) or `adrive`
(async) sends. It adds up token usage, and turns an agent that gives up into a clear `error` in
the state so one bad sample ends cleanly instead of crashing a batch. A failed call is first thrown into the
logic, so an agent that makes independent calls (a grader scoring several rubrics) can note the
failure and carry on; logic that does not catch it ends the node with `error` as before.

Each agent turn is labelled for tracing before its run starts: a `role:<role>` tag and metadata
with the sample id, round, model and policy-set hash (the graph's node metadata adds the role and
agent index), so a LangSmith project can be filtered by any of them. The role is the node's:
`agent_node(name, role, logic)` declares it once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from pydantic import BaseModel

from aidsafe.nodes.context import Context, Role, node_context
from aidsafe.nodes.llm import (
    AgentFailure,
    Conversation,
    ModelProvider,
    StructuredCall,
    adrive,
    ask_servers,
    drive,
    drive_options,
    openai_compatible_model,
    servers_unknown,
)
from aidsafe.nodes.templates import template
from aidsafe.policies import PolicyFileError, PolicySet
from aidsafe.state.answers import AnswerContext, CorrectionDraft, ThoughtDraft, answer_schema
from aidsafe.state.deliberation import DeliberationState, Intents, Refusal, Repair, Thought, add_usage, no_usage

TEAM_TASKS = frozenset({"initializer_intents", "initializer_seed", "deliberator", "refiner"})
"""The deliberation team's calls: their system message adds the deliberators' instructions
(`nodes/deliberator_instructions.md`). Six of a deliberation sample's nine calls are a deliberator's; with the
instructions in the shared prefix, each of them ends with its task line only."""


def system_message(policies: PolicySet, *, team: bool = False) -> SystemMessage:
    """Identical for every agent and round, so servers with prefix caching reuse it; `team`: see
    `TEAM_TASKS`."""
    content = template("system").substitute(policies=policies.render())
    return SystemMessage(content=f"{content}\n{template('deliberator_instructions').template}" if team else content)


CONTEXT_BLOCKS = ("request", "intents", "thoughts", "response")
"""The sample's context, in the order it grows: `nodes/context_<block>.md`. Thoughts only ever get
appended during a deliberation, so every call of a sample repeats the previous call's text up to
where something new was written."""

NO_RESPONSE_YET = "(none yet: the first draft was blank; write the response)"
"""The response block while the deliberated response is empty (the initializer's was blank)."""


def messages(
    policies: PolicySet, task: str, *, context: Collection[str] = ("request",), **values: Any
) -> list[BaseMessage]:
    """The shared system prefix, the sample's `context` blocks, then this call's part, `nodes/<task>.md`.

    Prefix caches (vLLM, SGLang, llama.cpp's slot, OpenAI) reuse only a byte-identical leading part
    of a prompt, so whatever changes from call to call (the task, the agent, the round) comes last,
    and the blocks are written alike, in `CONTEXT_BLOCKS` order, for every agent that shows them.
    """
    if unknown := set(context) - set(CONTEXT_BLOCKS):
        raise ValueError(f"unknown context blocks {sorted(unknown)}; known: {CONTEXT_BLOCKS}")
    blocks = [template(f"context_{block}") for block in CONTEXT_BLOCKS if block in context]
    parts = [part.substitute(**values).rstrip("\n") for part in [*blocks, template(task)]]
    return [system_message(policies, team=task in TEAM_TASKS), HumanMessage(content="\n\n".join(parts) + "\n")]


def intent_values(intents: Intents) -> dict[str, str]:
    """The `explicit` and `implicit` placeholders of the intents block."""
    return {"explicit": "; ".join(intents["explicit"]), "implicit": "; ".join(intents["implicit"]) or "(none)"}


def deliberation_blocks(state: DeliberationState) -> dict[str, str]:
    """The placeholders of every context block, as the deliberators and the refiner show them."""
    return {
        "prompt": state["prompt"],
        **intent_values(state["intents"]),
        "thoughts": render_thoughts(state["thoughts"]),
        "response": state["response"] or NO_RESPONSE_YET,
    }


def render_thoughts(thoughts: list[Thought]) -> str:
    if not thoughts:
        return "(none yet)"
    return "\n".join(
        f"{t['id']}. [{t['agent']}, round {t['round']}; {', '.join(t['policy_ids']) or 'no policy'}] {t['text']}"
        for t in thoughts
    )


def as_thoughts(drafts: Sequence[ThoughtDraft], agent: str, round_number: int, first_id: int = 0) -> list[Thought]:
    """An answer's thought drafts as state thoughts, numbered on from `first_id`."""
    return [
        {
            "id": first_id + offset,
            "text": draft.text,
            "agent": agent,
            "round": round_number,
            "policy_ids": draft.policy_ids,
            "corrects": draft.corrects if isinstance(draft, CorrectionDraft) else None,
        }
        for offset, draft in enumerate(drafts)
    ]


@dataclass
class Ask:
    """One question of an agent's logic; the node adds its role, model and policy set."""

    schema: type[BaseModel]
    messages: list[BaseMessage]
    checks: AnswerContext = field(default_factory=AnswerContext)
    """What the answer is checked against, besides the policy ids, which the node adds."""


State = TypeVar("State", contravariant=True)
AgentLogic = Callable[[State, Context, PolicySet], Generator[Ask, Any, dict[str, Any]]]
"""An agent's logic over its graph's state: yields `Ask`s, receives their answers, returns its update."""


def _structured_call(
    ask: Ask, role: Role, ctx: Context, policies: PolicySet, provider: ModelProvider
) -> StructuredCall:
    """The call with one contract: the ids its schema allows are the ids its validation knows."""
    checks = dataclasses.replace(ask.checks, policy_ids=tuple(policies.ids))
    return StructuredCall(
        provider(role, ctx),
        ask.schema,
        ctx,
        base_url=ctx.base_url_for(role),
        json_schema=answer_schema(ask.schema, checks),
        checks=checks,
        model_name=ctx.model_for(role),
    )


def turn_labels(role: Role, state: Mapping[str, Any], config: RunnableConfig) -> RunnableConfig:
    """The config with this turn's trace tag and metadata.

    `round` is the deliberation round the turn belongs to: the one in progress for a deliberator,
    the last finished one for agents after the deliberation; absent before it starts.
    """
    metadata = dict(config.get("metadata") or {})
    ctx = node_context(config)
    metadata["model"] = ctx.model_for(role)
    if "id" in state:
        metadata["sample_id"] = state["id"]
    if "rounds" in state or role == "deliberator":
        metadata["round"] = state.get("rounds", 0) + (role == "deliberator")
    with suppress(PolicyFileError):  # the turn itself reports a bad file as its error
        metadata["policy_set"] = ctx.policies.hash
    return {**config, "metadata": metadata, "tags": [*(config.get("tags") or []), f"role:{role}"]}


Function = TypeVar("Function", bound=Callable[..., Any])


def fixed_signature(func: Function) -> Function:
    """`func` carrying its own `__signature__`, which `inspect.signature` returns at once.

    langchain-core inspects the signature of the function a runnable runs on every call, to see
    whether it takes `run_manager` or `config`: ~10 us each time, 1.5 us with `__signature__`.
    """
    func.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    return func


class AgentNode(Runnable[Any, dict[str, Any]]):
    """An agent as a graph node, declaring its `role`; each run carries `turn_labels`, set per call
    because they depend on the state.

    Its run in a trace is the one a `RunnableLambda` of the same name made (`_call_with_config`),
    without the lambda's wrapper, which inspects two more signatures per run (~50 us): a batch
    pays that about once per model call. `func` and `afunc` carry `fixed_signature`.
    """

    name: str

    def __init__(self, role: Role, func: Callable[..., Any], afunc: Callable[..., Any], name: str) -> None:
        self.role, self.func, self.afunc, self.name = role, func, afunc, name

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        labelled = turn_labels(self.role, input, ensure_config(config))
        return self._call_with_config(self.func, input, labelled, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        labelled = turn_labels(self.role, input, ensure_config(config))
        return await self._acall_with_config(self.afunc, input, labelled, **kwargs)


def agent_node(name: str, role: Role, logic: AgentLogic[Any], provider: ModelProvider | None = None) -> AgentNode:
    """Wrap an agent's logic as a graph node that runs under both `invoke` and `ainvoke`."""
    model_provider = provider or openai_compatible_model

    def turn(state: Mapping[str, Any], config: RunnableConfig) -> Conversation[dict[str, Any]]:
        """Both levels in one generator: the logic's asks, and each ask's re-asks, as model requests."""
        calls: list[StructuredCall] = []
        try:
            ctx = node_context(config)
            policies = ctx.policies
            steps = logic(state, ctx, policies)
            ask = next(steps)
            while True:
                calls.append(_structured_call(ask, role, ctx, policies, model_provider))
                try:
                    answer = yield from calls[-1].conversation(ask.messages)
                except AgentFailure as exc:
                    ask = steps.throw(exc)
                    continue
                ask = steps.send(answer)
        except StopIteration as done:
            update = done.value
        except (AgentFailure, PolicyFileError) as exc:
            update = {"error": {"node": name, "message": str(exc)}, "stop_reason": "error"}
        usage = no_usage()
        for call in calls:
            for attempt in call.usage:
                usage = add_usage(usage, attempt)
        repairs: list[Repair] = [{**r, "node": name} for call in calls for r in call.repairs]
        refusals: list[Refusal] = [{"node": name, "text": text} for call in calls for text in call.refusals]
        noted = {"repairs": repairs, "refusals": refusals}
        return {**update, "usage": usage, **{key: value for key, value in noted.items() if value}}

    @fixed_signature
    def run(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return drive(turn(state, config))

    @fixed_signature
    async def arun(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        if servers_unknown(ctx := node_context(config)):
            await asyncio.to_thread(ask_servers, ctx)  # once per process: the loop never blocks on it
        return await adrive(turn(state, config), **drive_options(config))

    return AgentNode(role, run, arun, name)
