"""`aidsafe bench`: how safely models answer prompts with known expected behaviour."""
