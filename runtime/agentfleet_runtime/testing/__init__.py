"""Test doubles shipped with the runtime: the scripted model server (tests, benchmarks, demo)."""
