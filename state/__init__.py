"""Graph states, input/output schemas and the records aidsafe writes."""
