"""What a user runs on their own machine: `agentfleet eval`, `agentfleet approvals`,
`kubectl agentfleet plan|capacity`. Not in the operator's image."""
