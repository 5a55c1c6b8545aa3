"""`agentfleet eval`: an agent fleet's answers scored against a task set, through its task API."""
