"""The evaluation corpus and fleet: the PostgreSQL 15 manual as a VectorIndex (postgres-manual.yaml),
its task set (postgres-manual-tasks.yaml) for `agentfleet eval`."""
