"""``python -m agentfleet_runtime.ingest --help``."""

from agentfleet_runtime.ingest.cli import main

if __name__ == "__main__":
    main()
