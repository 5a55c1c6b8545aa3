"""Types, budgets, errors and process plumbing every other layer uses."""
