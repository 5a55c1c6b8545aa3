"""First end-to-end pass: a worker, the scripted model over HTTP, real Redis."""

from __future__ import annotations

import pytest
from runtime_helpers import Echo, arun, make_config, running_worker, store_for, submit, wait_ended

from agentfleet_runtime.testing.scripted_model import ScriptedModelServer

pytestmark = pytest.mark.integration


def test_tool_steps_then_final_answer(redis_server, fleet):
    async def body():
        model = ScriptedModelServer()
        await model.start()
        config = make_config(redis_server.url, fleet, model.url)
        store = store_for(config)
        async with running_worker(config, extra_tools=[Echo()]):
            tid = await submit(store, config, "count things #steps=3")
            states = await wait_ended(store, [tid], 20)
        assert states[tid]["status"] == "done", states
        assert states[tid]["reason"] == "final_answer"
        steps = await store.steps(tid)
        assert [s.n for s in steps] == [0, 1, 2]
        assert steps[0].tool_calls[0].name == "echo"
        assert steps[0].observations[0].output.startswith("echo")
        await store.r.aclose()
        await model.stop()

    arun(body())
