"""Fuzz the task API from its own OpenAPI document (schemathesis) against a real Redis: valid and
invalid requests to every operation, none may answer 5xx.

The document is the one the API serves (``GET /v1/openapi.json``, agentfleet_runtime.server.openapi).
Task ids are random (404) or those of a real, cancelled task of the caller (so GET, cancel and a
replayed event stream run their full paths). AGENTFLEET_FUZZ_EXAMPLES sets the examples per
operation and mode (default 60).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter

import pytest
import requests
import schemathesis
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from runtime_helpers import free_port, make_config

from agentfleet_runtime.core.tenants import token_line
from agentfleet_runtime.server.api import TaskAPI
from agentfleet_runtime.server.openapi import OPENAPI

pytestmark = pytest.mark.integration
TOKEN = "fuzz-token"
REVIEWER = "fuzz-reviewer"  # scope approver: the approvals routes run their full paths with it
# Integers of 17 to 4000 digits, either sign (issue 57: a 400-4000 digit integer raised OverflowError).
HUGE = st.integers(16, 3999).flatmap(lambda n: st.integers(10**n, 10 ** (n + 1) - 1)) | st.integers(
    2**53 + 1, 2**53 + 3
)  # all above 2**53, the largest budget number the API takes
HUGE_INT = st.tuples(st.sampled_from([1, -1]), HUGE).map(lambda t: t[0] * t[1])
BUDGET_FIELDS = ("maxSteps", "maxTokens", "timeoutSeconds", "maxFanOut", "maxDepth", "maxCost")
EXAMPLES = int(os.environ.get("AGENTFLEET_FUZZ_EXAMPLES", "60"))


class ApiThread:
    """The task API on its own event loop in a thread (schemathesis calls it with requests)."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config, self.port = config, free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.api = TaskAPI(self.config)
        self.runner = web.AppRunner(self.api.app(), shutdown_timeout=1)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(30)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.api.closing = True
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def test_no_request_gets_a_5xx(redis_server, fleet, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(token_line("fuzz", TOKEN) + "\n" + token_line("fuzz", REVIEWER) + " approver\n")
    config = make_config(
        redis_server.url, fleet, api={"tokensFile": str(tokens), "tenantLimits": {"maxTasksInFlight": 50}}
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    review = {"Authorization": f"Bearer {REVIEWER}"}
    seen: Counter[str] = Counter()
    server_errors: list[str] = []
    with ApiThread(config) as base, requests.Session() as http:
        served = http.get(base + "/v1/openapi.json").json()
        assert served == OPENAPI
        schema = schemathesis.openapi.from_dict(served)
        tid = http.post(base + "/v1/tasks", json={"goal": "fuzz target"}, headers=auth).json()["id"]
        assert http.post(f"{base}/v1/tasks/{tid}/cancel", headers=auth).status_code == 202
        for result in schema.get_all_operations():
            op = result.ok()
            targets = [None, {"id": tid}] if "{id}" in op.path else [None]
            for mode in schemathesis.GenerationMode:
                for path_parameters in targets:
                    t0 = time.monotonic()
                    strategy = op.as_strategy(generation_mode=mode, path_parameters=path_parameters)

                    @settings(
                        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
                    )
                    @given(case=strategy)
                    def fuzz(case: schemathesis.Case) -> None:
                        # The document's bearer scheme makes up tokens; approvals are a reviewer's routes.
                        headers = {**(case.headers or {}), **(review if "approvals" in case.path else auth)}
                        resp = case.call(base_url=base, session=http, headers=headers, timeout=30)
                        seen[f"{resp.status_code // 100}xx"] += 1
                        if resp.status_code >= 500:
                            server_errors.append(
                                f"{case.method} {case.formatted_path} -> {resp.status_code}: {resp.text[:200]}"
                            )

                    try:
                        fuzz()
                    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): the valid run covers it
                        assert mode == schemathesis.GenerationMode.NEGATIVE
                    print(
                        f"{op.label} {mode.value} {'own task' if path_parameters else 'any id'}:"
                        f" {time.monotonic() - t0:.1f} s"
                    )
        huge_integers(base, http, auth, review, tid, seen, server_errors)
    print(f"\nfuzzed requests by status class: {dict(seen)}, 5xx: {len(server_errors)}")
    assert sum(seen.values()) > 0 and not server_errors, server_errors[:10]


def huge_integers(
    base: str, http: requests.Session, auth: dict, review: dict, tid: str, seen: Counter[str], errors: list[str]
) -> None:
    """Every integer a request carries, as 17-4000 digit numbers: budgets (one to all six fields),
    an approval's step, dead letters' count. Each must be a 4xx (400 naming the field)."""

    def send(method: str, path: str, headers: dict, raw: str | None = None) -> requests.Response:
        resp = http.request(
            method, base + path, data=raw, headers={**headers, "Content-Type": "application/json"}, timeout=30
        )
        seen[f"{resp.status_code // 100}xx"] += 1
        if resp.status_code >= 500:
            errors.append(f"{method} {path} {(raw or '')[:80]} -> {resp.status_code}: {resp.text[:200]}")
        return resp

    @settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(budgets=st.dictionaries(st.sampled_from(BUDGET_FIELDS), HUGE_INT, min_size=1), step=HUGE_INT, n=HUGE)
    def fuzz(budgets: dict[str, int], step: int, n: int) -> None:
        inner = ", ".join(f'"{k}": {v}' for k, v in budgets.items())  # json.dumps caps digits at 4300
        r = send("POST", "/v1/tasks", auth, f'{{"goal": "g", "budgets": {{{inner}}}}}')
        assert r.status_code == 400 and "budgets." in r.json()["error"], (budgets, r.status_code, r.text[:200])
        send("POST", f"/v1/tasks/{tid}/approvals", review, f'{{"decision": "approve", "step": {step}}}')
        send("GET", f"/v1/deadletters?count={n}", auth)

    fuzz()
