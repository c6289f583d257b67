"""SSM → Sage: reading SSM's changes, deciding, the commands to the agent and their results."""
