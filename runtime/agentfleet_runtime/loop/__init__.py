"""The agent loop: decisions, the answer checks and the plan-act-observe steps."""
