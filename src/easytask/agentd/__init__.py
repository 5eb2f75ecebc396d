"""easytask-agentd: the agent daemon."""
