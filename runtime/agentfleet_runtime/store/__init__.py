"""The fleet's Redis: task records, leases, checkpoints, approvals and the Lua scripts behind them."""
