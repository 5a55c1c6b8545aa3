"""Each model tier's replicas get their own API key: the worker's model client, built from the
runtime config and the env vars the operator sets from each ModelReplicaSet's Secret, against two
scripted model servers that each require their own bearer token (as vLLM's --api-key does)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet_runtime.core.config import load_config
from agentfleet_runtime.model.client import ModelError, ModelRequest
from agentfleet_runtime.testing.scripted_model import ScriptedModelServer
from agentfleet_runtime.worker.lifecycle import model_client

pytestmark = pytest.mark.integration


async def calls(tmp_path: Path, env: dict[str, str]) -> tuple[list[Any], int, int]:
    """One primary call and one routine call (a summary) through the worker's own client; what
    each answered (a reply or the error), and the calls each server served."""
    primary, routine = ScriptedModelServer(api_key="key-primary"), ScriptedModelServer(api_key="key-routine")
    await primary.start()
    await routine.start()
    try:
        doc = {
            "fleet": "keys",
            "model": {"timeoutSeconds": 5, "maxRetries": 0},
            "modelRouting": {
                "primary": {"modelReplicaSet": "big", "model": "scripted", "endpoints": [primary.url]},
                "routine": {"modelReplicaSet": "small", "model": "scripted", "endpoints": [routine.url]},
                "routineSteps": ["Summaries"],
            },
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(doc))
        client = model_client(load_config(path, env=env), None)
        out: list[Any] = []
        try:
            for kind in ("step", "summary"):
                msg = [{"role": "system", "content": "s"}, {"role": "user", "content": f"a {kind} #answer={kind}-ok"}]
                try:
                    out.append((await client.complete(ModelRequest(messages=msg, task_id="t1", kind=kind))).content)
                except ModelError as e:
                    out.append(e.status)
        finally:
            await client.close()
        return out, primary.model.total_calls, routine.model.total_calls
    finally:
        await primary.stop()
        await routine.stop()


def test_each_tier_is_sent_its_own_api_key(tmp_path: Path) -> None:
    env = {"AGENTFLEET_MODEL_API_KEY": "key-primary", "AGENTFLEET_ROUTINE_MODEL_API_KEY": "key-routine"}
    out, primary_calls, routine_calls = asyncio.run(asyncio.wait_for(calls(tmp_path, env), 60))
    assert out == ["step-ok", "summary-ok"] and (primary_calls, routine_calls) == (1, 1)


def test_a_tier_that_requires_another_key_refuses_the_primary_one(tmp_path: Path) -> None:
    # Without its own key the routine tier is sent the primary's (what be7b847 always did) and its
    # replicas refuse every routine call: the servers here enforce their keys.
    env = {"AGENTFLEET_MODEL_API_KEY": "key-primary"}
    out, _, routine_calls = asyncio.run(asyncio.wait_for(calls(tmp_path, env), 60))
    assert out == ["step-ok", 401] and routine_calls == 0
