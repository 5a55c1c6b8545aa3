"""A real agent picks an MCP tool on its own: Qwen2.5-Coder-1.5B on llama-server (the same decider
as test_runtime_real_agent.py) decides every step of a task in a real worker, on real Redis, whose
tools come from two reference MCP servers over stdio, started by the worker from the runtime
config as a pod's worker starts them (registry -> MCPServer -> ToolBox.start).

Nothing tells the model which tool to use: no tool policy, the built-in system prompt. Today's
date in Tokyo is not in any model's weights, so an answer that states it came through the tool.
Run with AGENTFLEET_IT_DECIDER=scripted and the scripted model takes the model's place: the test
then fails (it never calls the clock).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from runtime_helpers import arun, running_worker, store_for, submit, wait_ended

from agentfleet_runtime.core.config import RuntimeConfig

pytestmark = pytest.mark.integration


def test_the_model_chooses_the_clock_server_tool_to_tell_the_date_in_tokyo(decider, redis_server, fleet, tmp_path):  # noqa: F811
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    config = RuntimeConfig.model_validate(
        {
            "fleet": fleet,
            "redisUrl": redis_server.url,
            "model": {
                "baseUrl": decider,
                "name": "qwen",
                "timeoutSeconds": 300,
                "maxRetries": 0,
                "maxOutputTokens": 200,
            },
            "tools": [
                {
                    "name": "clock",
                    "type": "MCP",
                    "description": "Clock:",
                    "mcp": {
                        "command": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"],
                        "readOnlyTools": ["get_current_time"],
                    },
                },
                {
                    "name": "repo",
                    "type": "MCP",
                    "mcp": {
                        "command": [sys.executable, "-m", "mcp_server_git", "--repository", str(repo)],
                        "allowTools": ["git_log"],
                    },
                },
            ],
            "decisions": {"mode": "JSONSchema", "repairAttempts": 1},
            "budgets": {"maxSteps": 4, "timeoutSeconds": 900},
            "retry": {"maxAttempts": 1, "visibilityTimeoutSeconds": 300},
            "worker": {"concurrency": 1, "metricsPort": 0},
        }
    )
    goal = "What is today's date in Tokyo? Answer with the date as YYYY-MM-DD."

    async def body():
        store = store_for(config)
        try:
            async with running_worker(config) as worker:
                names = sorted(worker.toolbox.names)
                [tid] = [await submit(store, config, goal)]
                await wait_ended(store, [tid], 900)
            return names, (await store.statuses([tid]))[0], await store.steps(tid)
        finally:
            await store.r.aclose()

    names, st, steps = arun(body(), 960)
    calls = [c for s in steps for c in s.tool_calls]
    print(
        f"\ntools offered: {names}\nanswer: {st['answer']!r} ({st['reason']});"
        f" calls: {[(c.name, c.arguments) for c in calls]}"
    )
    assert names == ["clock_convert_time", "clock_get_current_time", "repo_git_log"]
    assert st["status"] == "done" and st["reason"] == "final_answer", st
    clock = [c for c in calls if c.name == "clock_get_current_time"]
    assert clock, "the model never asked the clock"
    assert "tokyo" in str(clock[0].arguments.get("timezone", "")).lower(), clock[0].arguments
    assert any(o.ok and "Asia/Tokyo" in o.output for s in steps for o in s.observations or [])
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    days = {(now + timedelta(days=d)).strftime("%Y-%m-%d") for d in (-1, 0)}  # a task that spans midnight
    assert any(d in st["answer"] for d in days), st["answer"]
