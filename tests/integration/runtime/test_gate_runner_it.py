"""The evaluation gate's Job (``python -m agentfleet_runtime gate``) against real parts: a Redis,
two fleets of real workers (the current version on its private stream ``FLEET~current`` and the
candidate on ``FLEET~candidate``, each driven by its own scripted model, retrieval by the in-process retriever
stand-in), and a private kube-apiserver (e2e/harness/apiserver.py) holding the results ConfigMap,
which the runner reads and patches with a service account token whose Role grants only get and
patch on that ConfigMap.

What it shows: both versions answer every sampled task under the gate's tenant, each answer is
scored by agentfleet_eval and written as it is scored; a runner killed mid-run and started again
runs only what is missing and asks no task twice; a sample already written is kept; a spent token
budget stops the run with exit 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentfleet_contract.gate import (
    DRY_RUN_HEADER,
    GATE_KEY_ENV,
    JUDGE_KEY,
    SAMPLE_KEY,
    SAMPLE_MAC_KEY,
    GateTaskResult,
    result_key,
    result_verifies,
    sign_value,
    verified_results,
)
from agentfleet_contract.runtime_config import GATE_TENANT, RuntimeConfig
from runtime_helpers import arun, make_config, running_worker

from agentfleet_runtime.store.connection import connect
from agentfleet_runtime.testing.fake_retriever import FakeRetriever
from agentfleet_runtime.testing.scripted_model import ScriptedModelServer
from e2e.harness import apiserver
from e2e.harness.procs import Proc

pytestmark = pytest.mark.integration

NS = f"team-a-{uuid.uuid4().hex[:6]}"  # its own namespace on the run's shared API server
SA = "docs-gate"
KEY = "the-gates-key"  # what the operator's Secret holds; the Job gets it in its environment
KB = [{"name": "kb", "type": "Retrieval", "retrieval": {"topK": 1, "cacheTtlSeconds": 0}}]


def _rule(match: str, value: str, latency: float) -> dict[str, Any]:
    """Search for the value (the retriever stand-in's passage repeats the query), then answer it."""
    return {
        "match": match,
        "steps": 2,
        "tool": "kb",
        "args": json.dumps({"query": f"checkpoint_timeout defaults to {value}"}),
        "answer": f"The default checkpoint_timeout is {value} [source: doc0.md].",
        "latency": latency,
    }


def _decline(match: str) -> dict[str, Any]:
    return {"match": match, "steps": 1, "answer": "The documentation does not mention max_cluster_ram."}


def _task(tid: str) -> dict[str, Any]:
    return {
        "id": tid,
        "part": "heldout",
        "kind": "default",
        "question": f"Q-{tid}: What is the default value of checkpoint_timeout?",
        "facts": ["5min"],
        "supporting": ["doc0.md"],
    }


UNANSWERABLE = {
    "id": "none 1",  # a space: its result key is the cleaned id and a hash
    "part": "heldout",
    "kind": "unanswerable",
    "question": "Q-none: What is the default value of the setting max_cluster_ram?",
    "expect": "decline",
}


@pytest.fixture(scope="module")
def api_server() -> Iterator[apiserver.ApiServer]:
    why = apiserver.missing()
    if why:
        pytest.skip(why)
    server = apiserver.run_wide()
    server.kubectl("create", "namespace", NS)
    yield server


def results_configmap(
    api_server: apiserver.ApiServer,
    name: str,
    tmp: Path,
    data: dict[str, str] | None = None,
    verbs: tuple = ("get", "patch"),
) -> Path:
    """The empty results ConfigMap the operator creates, and the Job's service account with only
    get and patch on it; returns the token file a pod's projected volume would hold."""
    rule = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name], "verbs": list(verbs)}
    api_server.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data or {}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": NS}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, "namespace": NS},
         "rules": [rule]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": name, "namespace": NS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": NS}]},
    )  # fmt: skip
    token = tmp / f"{name}.token"
    token.write_text(api_server.token_for(NS, SA))
    return token


def configmap_data(api_server: apiserver.ApiServer, name: str) -> dict[str, str]:
    return json.loads(api_server.kubectl("get", "configmap", name, "-n", NS, "-o", "json")).get("data") or {}


def results_of(data: dict[str, str]) -> dict[str, GateTaskResult]:
    return {
        k: GateTaskResult.model_validate_json(v) for k, v in data.items() if k.startswith(("current.", "candidate."))
    }


def signed_sample(name: str, tasks: list[str]) -> dict[str, str]:
    raw = json.dumps(tasks)
    return {SAMPLE_KEY: raw, SAMPLE_MAC_KEY: sign_value(KEY.encode(), name, SAMPLE_KEY, raw)}


class Gate:
    """Both versions' workers and models in this event loop; the runner as a subprocess."""

    def __init__(self, api_server: apiserver.ApiServer, redis_url: str, fleet: str, tmp: Path) -> None:
        self.kube, self.redis_url, self.fleet, self.tmp = api_server, redis_url, fleet, tmp
        self.configs: dict[str, RuntimeConfig] = {}

    async def start(
        self, stack: AsyncExitStack, current: list[dict], candidate: list[dict], tools: list[dict] = KB
    ) -> None:
        for version, fleet, rules in (
            ("current", self.fleet + "~current", current),  # the baseline's private workers (issue 76)
            ("candidate", self.fleet + "~candidate", candidate),
        ):
            model = ScriptedModelServer()
            model.model.rules = rules
            await model.start()
            stack.push_async_callback(model.stop)
            config = make_config(self.redis_url, fleet, model.url, tools=tools)
            self.configs[version] = config
            doc = config.model_dump(by_alias=True, mode="json", exclude_none=True)
            (self.tmp / f"{version}.yaml").write_text(yaml.safe_dump(doc))
            await stack.enter_async_context(running_worker(config, retriever_factory=lambda c, t: FakeRetriever()))

    def runner(self, cm: str, token: Path, tasks: list[dict], *extra: str, timeout: int = 600, key: str = KEY) -> Proc:
        (self.tmp / "tasks.yaml").write_text(yaml.safe_dump({"name": "gate-it", "tasks": tasks}))
        args = [
            sys.executable, "-m", "agentfleet_runtime", "gate", "--fleet", self.fleet, "--namespace", NS,
            "--results-configmap", cm, "--task-set", str(self.tmp / "tasks.yaml"), "--part", "heldout",
            "--seed", "0", "--timeout-seconds", str(timeout), "--current-config", str(self.tmp / "current.yaml"),
            "--candidate-config", str(self.tmp / "candidate.yaml"), "--kube-api", self.kube.url,
            "--kube-token-file", str(token), "--kube-ca", str(self.kube.ca), *extra,
        ]  # fmt: skip
        env = {"AGENTFLEET_FLEET": self.fleet, GATE_KEY_ENV: key}
        return Proc(args, log=self.tmp / f"runner-{time.monotonic_ns()}.log", env=env)

    async def wait_exit(self, proc: Proc, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while proc.alive():
            assert time.monotonic() < deadline, f"the runner did not end in {timeout}s\n{proc.tail()}"
            await asyncio.sleep(0.2)
        return proc.returncode  # type: ignore[return-value]

    async def gate_roots(self, version: str) -> list[dict[str, str]]:
        """The root tasks filed in one version's Redis keys, with their tenant."""
        keys_prefix = f"af:{self.configs[version].fleet}:t:"
        r = connect(self.redis_url)
        try:
            out = []
            async for key in r.scan_iter(match=keys_prefix + "*", count=1000):
                if ":" in key[len(keys_prefix) :]:
                    continue  # steps, events, children
                h = await r.hgetall(key)
                if h.get("root") == h.get("id"):
                    out.append(h)
            return out
        finally:
            await r.aclose()


def test_both_versions_answer_the_sample_scored_and_written_under_the_gates_tenant(
    api_server, redis_server, fleet, tmp_path
):
    tasks = [_task("a"), _task("b"), UNANSWERABLE]
    current = [_rule("Q-a", "5min", 0), _rule("Q-b", "5min", 0), _decline("Q-none")]
    candidate = [_rule("Q-a", "5min", 0), _rule("Q-b", "30min", 0), _decline("Q-none")]
    token = results_configmap(api_server, "full", tmp_path)

    async def body() -> None:
        async with AsyncExitStack() as stack:
            gate = Gate(api_server, redis_server.url, fleet, tmp_path)
            await gate.start(stack, current, candidate)
            proc = gate.runner("full", token, tasks, "--concurrency", "2", "--max-tokens", "1000000")
            assert await gate.wait_exit(proc) == 0, proc.tail()
            data = await asyncio.to_thread(configmap_data, api_server, "full")
            assert json.loads(data[SAMPLE_KEY]) == ["a", "b", "none 1"]
            got = results_of(data)
            assert set(got) == {result_key(v, t["id"]) for t in tasks for v in ("current", "candidate")}
            assert result_key("current", "none 1") in got and "current.none 1" not in data
            figures = {(r.version, r.task_id): (r.success, r.grounded, r.unanswerable) for r in got.values()}
            assert figures == {
                ("current", "a"): (True, True, False),
                ("candidate", "a"): (True, True, False),
                ("current", "b"): (True, True, False),
                # 30min: the candidate's own model answered (and its passage holds no 5min)
                ("candidate", "b"): (False, False, False),
                ("current", "none 1"): (True, None, True),
                ("candidate", "none 1"): (True, None, True),
            }
            assert all(r.tokens > 0 for r in got.values())
            # Each signed under the gate's key, the sample and what judged too: the operator counts them.
            assert all(result_verifies(KEY.encode(), "full", r) for r in got.values())
            verified = verified_results(data, KEY.encode(), "full")
            assert verified.rejected == () and verified.sample == ["a", "b", "none 1"]
            assert verified.judge is not None and set(verified.judge) == {"taskSetSha256", "scorerSha256"}
            assert JUDGE_KEY in data
            for version in ("current", "candidate"):
                roots = await gate.gate_roots(version)
                # Each task asked once per version, filed under the gate's tenant (no token maps to it).
                assert sorted(json.loads(h["metadata"])["gateTask"] for h in roots) == ["a", "b", "none 1"]
                assert {h.get("tenant") for h in roots} == {GATE_TENANT}

    arun(body(), timeout=240)


def test_a_killed_runner_restarted_runs_only_what_is_missing(api_server, redis_server, fleet, tmp_path):
    tasks = [_task(t) for t in ("a", "b", "c", "d")]
    # Two model calls of 0.6 s a task and one task at a time: the run takes seconds, so the kill
    # lands after the first results and with a task in flight.
    current = [_rule(f"Q-{t}", "5min", 0.6) for t in "abcd"]
    candidate = [_rule(f"Q-{t}", "5min", 0.6) for t in "abcd"]
    token = results_configmap(api_server, "killed", tmp_path)

    async def body() -> None:
        async with AsyncExitStack() as stack:
            gate = Gate(api_server, redis_server.url, fleet, tmp_path)
            await gate.start(stack, current, candidate)
            extra = ("--concurrency", "1", "--max-tokens", "1000000")
            first = gate.runner("killed", token, tasks, *extra)
            deadline = time.monotonic() + 60
            while True:
                before = await asyncio.to_thread(configmap_data, api_server, "killed")
                if results_of(before):
                    break
                assert first.alive(), f"the runner ended before a result was written\n{first.tail()}"
                assert time.monotonic() < deadline, "no result written within 60 s: results are not written as scored"
                await asyncio.sleep(0.1)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            before = await asyncio.to_thread(configmap_data, api_server, "killed")
            assert len(results_of(before)) < 8, "the kill came after the whole run: nothing left to resume"
            second = gate.runner("killed", token, tasks, *extra)
            assert await gate.wait_exit(second) == 0, second.tail()
            after = await asyncio.to_thread(configmap_data, api_server, "killed")
            assert len(results_of(after)) == 8 and after[SAMPLE_KEY] == before[SAMPLE_KEY]
            # What was written before the kill is neither run nor written again.
            assert {k: after[k] for k in before} == before
            assert second.logs().count('"result written"') == 8 - len(results_of(before)), second.tail()
            for version in ("current", "candidate"):
                roots = await gate.gate_roots(version)
                asked = sorted(json.loads(h["metadata"])["gateTask"] for h in roots)
                assert asked == ["a", "b", "c", "d"], f"{version} was asked {asked}"

    arun(body(), timeout=240)


def test_a_written_sample_is_kept_and_a_spent_token_budget_stops_the_run(api_server, redis_server, fleet, tmp_path):
    tasks = [_task(t) for t in ("a", "b", "c")]
    rules = [_rule(f"Q-{t}", "5min", 0) for t in "abc"]
    # An earlier start drew ["c", "a"]; this start must not draw again.
    token = results_configmap(api_server, "budget", tmp_path, signed_sample("budget", ["c", "a"]))

    async def body() -> None:
        async with AsyncExitStack() as stack:
            gate = Gate(api_server, redis_server.url, fleet, tmp_path)
            await gate.start(stack, rules, rules)
            # One token: the first task's two results spend it, and the run stops there.
            proc = gate.runner("budget", token, tasks, "--concurrency", "1", "--max-tokens", "1", "--sample", "3")
            assert await gate.wait_exit(proc) == 0, proc.tail()
            data = await asyncio.to_thread(configmap_data, api_server, "budget")
            assert json.loads(data[SAMPLE_KEY]) == ["c", "a"]
            assert set(results_of(data)) == {"current.c", "candidate.c"}
            assert "budget is spent" in proc.logs() or "token budget" in proc.logs()

    arun(body(), timeout=240)


def test_without_patch_on_its_configmap_the_runner_fails_naming_the_verbs(api_server, redis_server, fleet, tmp_path):
    token = results_configmap(api_server, "readonly", tmp_path, verbs=("get",))

    async def body() -> None:
        async with AsyncExitStack() as stack:
            gate = Gate(api_server, redis_server.url, fleet, tmp_path)
            await gate.start(stack, [], [])
            proc = gate.runner("readonly", token, [_task("a")], "--max-tokens", "1000")
            assert await gate.wait_exit(proc) == 1, proc.tail()
            assert "needs get and patch on configmaps (resourceNames: [readonly])" in proc.logs()
            assert configmap_data(api_server, "readonly") == {}

    arun(body(), timeout=120)


def test_when_the_gates_time_is_up_the_runner_cancels_its_tasks_and_exits_0(api_server, redis_server, fleet, tmp_path):
    tasks = [_task(t) for t in ("a", "b")]
    # Each task takes two 3 s model calls: the 4 s budget ends with the first task in flight.
    rules = [_rule(f"Q-{t}", "5min", 3.0) for t in "ab"]
    token = results_configmap(api_server, "clock", tmp_path)

    async def body() -> None:
        async with AsyncExitStack() as stack:
            gate = Gate(api_server, redis_server.url, fleet, tmp_path)
            await gate.start(stack, rules, rules)
            started = time.monotonic()
            proc = gate.runner("clock", token, tasks, "--concurrency", "1", "--max-tokens", "1000000", timeout=4)
            assert await gate.wait_exit(proc, timeout=60) == 0, proc.tail()
            assert time.monotonic() - started < 15, "the runner outlived its time budget"
            data = await asyncio.to_thread(configmap_data, api_server, "clock")
            assert results_of(data) == {} and json.loads(data[SAMPLE_KEY]) == ["a", "b"]
            for version in ("current", "candidate"):
                roots = await gate.gate_roots(version)
                assert [json.loads(h["metadata"])["gateTask"] for h in roots] == ["a"]
                assert roots[0].get("cancel") == "1", f"the runner left {version}'s task running: {roots[0]}"

    arun(body(), timeout=120)


def test_forged_results_and_a_forged_sample_are_run_again_and_written_over(api_server, redis_server, fleet, tmp_path):
    """Someone who may write ConfigMaps in the namespace wrote a sample of one task and flawless
    candidate results before the Job ran (issue 76, finding 3): none of it verifies under the gate's
    key, so the Job draws its own sample, asks both versions every task and writes its signed
    results over the forged ones."""
    tasks = [_task("a"), _task("b")]
    current = [_rule("Q-a", "5min", 0), _rule("Q-b", "5min", 0)]
    candidate = [_rule("Q-a", "30min", 0), _rule("Q-b", "30min", 0)]  # wrong on both
    forged = {SAMPLE_KEY: json.dumps(["a"])}
    for t in ("a", "b"):
        for version, ok in (("current", False), ("candidate", True)):
            r = GateTaskResult(task_id=t, version=version, success=ok, grounded=ok, tokens=1)
            forged[result_key(version, t)] = r.model_dump_json(by_alias=True)
    token = results_configmap(api_server, "forged", tmp_path, forged)

    async def body() -> None:
        async with AsyncExitStack() as stack:
            gate = Gate(api_server, redis_server.url, fleet, tmp_path)
            await gate.start(stack, current, candidate)
            proc = gate.runner("forged", token, tasks, "--concurrency", "2", "--max-tokens", "1000000")
            assert await gate.wait_exit(proc) == 0, proc.tail()
            data = await asyncio.to_thread(configmap_data, api_server, "forged")
            verified = verified_results(data, KEY.encode(), "forged")
            assert verified.rejected == () and verified.sample == ["a", "b"]
            figures = {(r.version, r.task_id): r.success for r in verified.results}
            assert figures == {("current", "a"): True, ("current", "b"): True, ("candidate", "a"): False,
                               ("candidate", "b"): False}  # fmt: skip
            for version in ("current", "candidate"):
                asked = sorted(json.loads(h["metadata"])["gateTask"] for h in await gate.gate_roots(version))
                assert asked == ["a", "b"], f"{version} was asked {asked}"

    arun(body(), timeout=240)


def test_without_the_gates_key_the_runner_refuses_to_run(api_server, redis_server, fleet, tmp_path):
    token = results_configmap(api_server, "keyless", tmp_path)

    async def body() -> None:
        async with AsyncExitStack() as stack:
            gate = Gate(api_server, redis_server.url, fleet, tmp_path)
            await gate.start(stack, [], [])
            bare = gate.runner("keyless", token, [_task("a")], "--max-tokens", "1000", key="")
            assert await gate.wait_exit(bare) == 2, bare.tail()
            assert f"{GATE_KEY_ENV} is not set" in bare.logs()
            assert configmap_data(api_server, "keyless") == {}

    arun(body(), timeout=120)


class Payments:
    """A real HTTP endpoint for a side-effect tool: every call it receives, with its headers."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.url = ""

    async def start(self, stack: AsyncExitStack) -> None:
        from aiohttp import web

        async def pay(request: web.Request) -> web.Response:
            self.calls.append(dict(request.headers))
            return web.Response(text="refunded 5000")

        app = web.Application()
        app.router.add_post("/pay", pay)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        stack.push_async_callback(runner.cleanup)
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/pay"  # type: ignore[union-attr]


def test_no_side_effect_happens_while_judged_unless_marked_as_a_dry_run(api_server, redis_server, fleet, tmp_path):
    """Issue 76, finding 4: a "Refund order 77" question whose model calls a side-effect pay tool
    on both versions. Under the gate the endpoint is never called (the default, Skip); with
    sideEffects DryRunHeader it is called once per version, each call marked as a dry run."""
    refund = {
        "id": "refund",
        "part": "heldout",
        "kind": "default",
        "question": "Q-pay: Refund order 77",
        "facts": ["refunded"],
        "supporting": ["orders.md"],
    }
    rule = {"match": "Q-pay", "steps": 2, "tool": "pay", "args": json.dumps({"order": 77, "amount": 5000}),
            "answer": "Order 77 was refunded."}  # fmt: skip
    skip, dry = (results_configmap(api_server, name, tmp_path) for name in ("effects-skip", "effects-dry"))

    async def body() -> None:
        async with AsyncExitStack() as stack:
            payments = Payments()
            await payments.start(stack)
            tools = [*KB, {"name": "pay", "type": "HTTP", "http": {"url": payments.url, "sideEffects": True}}]
            gate = Gate(api_server, redis_server.url, fleet, tmp_path)
            await gate.start(stack, [rule], [rule], tools)
            proc = gate.runner("effects-skip", skip, [refund], "--max-tokens", "1000000")
            assert await gate.wait_exit(proc) == 0, proc.tail()
            assert payments.calls == [], "a gate task applied the side effect"
            data = await asyncio.to_thread(configmap_data, api_server, "effects-skip")
            assert set(results_of(data)) == {"current.refund", "candidate.refund"}
            proc = gate.runner(
                "effects-dry", dry, [refund], "--max-tokens", "1000000", "--side-effects", "DryRunHeader"
            )
            assert await gate.wait_exit(proc) == 0, proc.tail()
            assert len(payments.calls) == 2 and all(c.get(DRY_RUN_HEADER) == "true" for c in payments.calls)

    arun(body(), timeout=240)
