"""The AIDSAFE agents: one module per agent, its prompt template beside it."""
