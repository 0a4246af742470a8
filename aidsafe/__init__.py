"""AIDSAFE on LangGraph: agentic deliberation that turns prompts into safety-reasoning data.

The repository keeps the design card's top-level folders (`graphs/`, `nodes/`, `state/`, ...);
`aidsafe/` links each of them in, so every folder imports as `aidsafe.<folder>` from a checkout,
an editable install and a wheel alike.
"""
