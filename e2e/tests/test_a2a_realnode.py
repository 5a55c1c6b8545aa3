"""A2A on the real node (docs/a2a.md): two AgentFleets as the operator renders them, on real pods.

- ``docs`` serves A2A (spec.a2a) over HTTPS (spec.api.tls, a certificate of a private CA). The A2A
  project's compatibility kit (e2e/harness/a2a_tck.py, pinned) runs its mandatory and capabilities
  categories against it through its task API's Service, trusting that CA, and, in the same
  invocation, against the official SDK's own server (e2e/harness/a2a_reference.py).
  A test the fleet fails must be one the kit gets wrong (KIT_DEFECTS, each with the reason): most
  fail on the SDK's server too, and any other failure fails this test.
- ``front`` has one tool of type A2A whose card is docs's, trusting docs's CA (caSecretRef): its
  agent delegates to docs over A2A and its answer cites docs's artifact. docs's card is read here
  through a2a-sdk's resolver.
- ``kubectl get af`` shows docs's A2A endpoint.

The agents' model is the simulator (e2e/cluster/node/vllm-sim) on the real node: what is checked is
the protocol, the operator's wiring and the runtime's tool, not the model's words; the simulator
calls a fleet's one tool on its first step (AGENTFLEET_SIM_TOOL_CALL_STEPS), so the delegation is
deterministic. The real engines' A2A path is the integration tier's (tests/integration/runtime).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agentfleet.render.agentfleet import API_PORT, TOKEN_KEY, api_name, api_token_secret_name
from e2e.harness import a2a_tck, realnode
from e2e.harness.certs import make_certs
from e2e.harness.nodenet import forward_into_netns
from e2e.harness.ports import free_port
from e2e.tests.test_realnode import (  # noqa: F401 - node, images and operator are fixtures
    ServiceClient,
    images,
    node,
    operator,
    submit,
    task,
    wait_done,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

GPUS = 4
MODEL = "sim-a2a"
SERVER, CALLER = "docs", "front"
TOOL = "ask_docs"
QUICK = {"output_tokens_median": 24, "decode_base_s": 0.005}  # agentfleet_sim.config.EngineConfig

# The kit's tests at a2a_tck.KIT_COMMIT the fleet fails, and why. "sdk" and "kit": the kit's own
# defect, against the A2A 1.0 text it ships (current_spec/specification.md, a2a.proto); "sdk": the
# official SDK's server (a2a-sdk 1.3.0) fails it too, checked in the same run. "ours": a gap of the
# fleet's, named in docs/a2a.md (none today). Any other failure fails the test.
_BLOCKING = (
    "sends a blocking SendMessage, then expects the task it returned to be still running or to take more "
    "input; the spec says a blocking send returns only once the task is terminal or interrupted, and that "
    "a terminal task takes no further message (UnsupportedOperationError)"
)
_LIST = "creates its tasks with a blocking SendMessage, then waits for them to be WORKING (" + _BLOCKING + ")"
M, C = "tests/mandatory/", "tests/optional/capabilities/"  # the two categories' directories
KIT_DEFECTS: dict[str, tuple[str, str]] = {
    f"{M}jsonrpc/test_a2a_error_codes_enhanced.py::test_push_notification_not_supported_error_32003_enhanced": (
        "sdk",
        "calls its own helper transport_create_task_push_notification_config with one argument too many "
        "(TypeError before any request)",
    ),
    f"{M}protocol/test_a2a_v030_new_methods.py::TestMethodMappingCompliance::test_core_method_mapping_compliance": (
        "sdk",
        _BLOCKING,
    ),
    f"{M}protocol/test_message_send_method.py::test_message_send_continue_task": ("sdk", _BLOCKING),
    f"{M}protocol/test_state_transitions.py::test_task_history_length": ("sdk", _BLOCKING),
    f"{M}protocol/test_tasks_cancel_method.py::test_tasks_cancel_valid": ("sdk", _BLOCKING),
    f"{C}test_message_send_capabilities.py::test_message_send_continue_with_contextid": (
        "sdk",
        _BLOCKING,
    ),
    f"{C}test_transport_specific_features.py::TestMultiModalFeatures::test_binary_data_handling": (
        "kit",
        "asserts that refusing a file part answers -32601 (method not found), while its own message says that code "
        "is the wrong one; the fleet refuses files with -32005 (ContentTypeNotSupported), and the SDK's server "
        "passes only because it accepts any part",
    ),
    **{
        f"{M}protocol/test_tasks_list_method.py::{t}": ("sdk", _LIST)
        for t in (
            "TestArtifactInclusion::test_artifacts_excluded_by_default",
            "TestArtifactInclusion::test_artifacts_included_when_requested",
            "TestBasicListing::test_list_all_tasks",
            "TestBasicListing::test_list_tasks_sorted_by_timestamp_descending",
            "TestBasicListing::test_list_tasks_validates_required_fields",
            "TestEdgeCasesAndErrors::test_default_page_size_is_50",
            "TestFiltering::test_combined_filters",
            "TestFiltering::test_filter_by_context_id",
            "TestFiltering::test_filter_by_last_updated_after",
            "TestFiltering::test_filter_by_status",
            "TestHistoryLimiting::test_history_length_custom",
            "TestHistoryLimiting::test_history_length_exceeds_actual",
            "TestHistoryLimiting::test_history_length_zero",
            "TestPagination::test_custom_page_size",
            "TestPagination::test_last_page_detection",
            "TestPagination::test_page_token_navigation",
            "TestPagination::test_total_size_accuracy",
        )
    },
    f"{M}protocol/test_tasks_list_method.py::TestBasicListing::test_list_tasks_empty_when_none_exist": (
        "sdk",
        "reads ListTasksResponse.pageSize as the number of tasks returned; a2a.proto says 'the page size used for "
        "this response', which the SDK's server answers too",
    ),
    f"{M}protocol/test_tasks_list_method.py::TestPagination::test_default_page_size": (
        "sdk",
        "reads ListTasksResponse.pageSize as the number of tasks returned (as test_list_tasks_empty_when_none_exist)",
    ),
}


def apply_fleet(cluster, ns: str, name: str, image: str, redis_image: str, **spec: Any) -> None:
    cluster.apply(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "AgentFleet",
            "metadata": {"name": name},
            "spec": {
                "modelRef": {"name": MODEL},
                "image": image,
                "workers": {"replicas": 1, "concurrency": 8, "cpu": "100m", "memory": "256Mi"},
                "budgets": {"maxSteps": 4, "timeoutSeconds": 120},
                "redis": {"deploy": {"image": redis_image, "memory": "128Mi", "storageSize": "1Gi"}},
                **spec,
            },
        },
        ns,
    )


def fleet_ready(cluster, ns: str, name: str) -> dict:
    def ready() -> dict | None:
        if crash := realnode.crash_loops(cluster, ns):
            pytest.fail(crash, pytrace=False)
        af = cluster.json("-n", ns, "get", "agentfleet", name)
        conds = {c["type"]: c["status"] for c in (af.get("status") or {}).get("conditions", [])}
        return af if conds.get("Ready") == "True" else None

    return cluster.wait_for(ready, timeout=600, interval=2, desc=f"AgentFleet {name} Ready on real pods")


def token_of(cluster, ns: str, fleet: str) -> str:
    secret = cluster.json("-n", ns, "get", "secret", api_token_secret_name(fleet))
    return base64.b64decode(secret["data"][TOKEN_KEY]).decode().split()[0]


@pytest.fixture(scope="module")
def fleets(cluster, node, images, operator, tmp_path_factory) -> dict[str, Any]:  # noqa: F811 - fixtures
    """The simulator's ModelReplicaSet and docs (A2A on, its task API serving HTTPS with a
    certificate of a private CA, as cert-manager's CA Issuer makes one), Ready on the real node."""
    ns = operator["fleet_ns"]
    service = f"{api_name(SERVER)}.{ns}.svc"
    certs = tmp_path_factory.mktemp("docs-tls")
    make_certs(certs, [service, f"{service}.cluster.local", "localhost"], ["127.0.0.1"], name=SERVER)
    tls_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "docs-tls", "labels": {"agentfleet.io/consent": "true"}},
        "stringData": {"tls.crt": (certs / "tls.crt").read_text(), "tls.key": (certs / "tls.key").read_text()},
    }
    cluster.apply(tls_secret, ns)
    realnode.gpu_node(cluster, node, GPUS)
    for name in (SERVER, CALLER):
        realnode.local_volume(cluster, node, f"{ns}-redis-{name}")
    sim = {
        # One tool call on a task's first step (front's A2A tool), then the answer.
        "AGENTFLEET_SIM_TOOL_CALL_STEPS": "1",
        # Short answers, fast: the kit waits at most 10 s for some calls, each a task.
        "AGENTFLEET_SIM_ENGINE": json.dumps(QUICK),
    }
    cluster.apply(realnode.simulator_model(MODEL, images["engine"], sim), ns)
    description = "Answers questions about the product documentation."
    apply_fleet(
        cluster,
        ns,
        SERVER,
        images["project"],
        images["redis"],
        a2a={"description": description},
        api={"tls": {"secretName": "docs-tls"}},
    )
    fleet_ready(cluster, ns, SERVER)
    ip = cluster.json("-n", ns, "get", "service", api_name(SERVER))["spec"]["clusterIP"]
    ca = certs / "ca.crt"
    return {
        "ns": ns,
        "token": token_of(cluster, ns, SERVER),
        "server_ip": ip,
        "service": service,
        "ca": ca,
        "tls": (ssl.create_default_context(cafile=str(ca)), service),
        "images": images,
    }


@pytest.fixture(scope="module")
def caller(cluster, fleets) -> str:
    """front, whose one tool (type A2A) calls docs with docs's token, from a Secret with the consent
    label, trusting the private CA of docs's certificate (the same Secret's ca.crt, as cert-manager
    writes it)."""
    ns, image = fleets["ns"], fleets["images"]
    headers = json.dumps({"Authorization": f"Bearer {fleets['token']}"})
    secret = {"name": "docs-caller", "labels": {"agentfleet.io/consent": "true"}}
    data = {"headers": headers, "ca.crt": fleets["ca"].read_text()}
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": secret, "stringData": data}, ns)
    # Where docs's card is, as `kubectl get af` shows it (status.a2aEndpoint): the host its card
    # names, which is the only host the tool sends the credential to.
    endpoint = cluster.json("-n", ns, "get", "agentfleet", SERVER)["status"]["a2aEndpoint"]
    card_url = f"{endpoint}/.well-known/agent-card.json"
    tool = {
        "name": TOOL,
        "type": "A2A",
        "description": "Ask the documentation team's agent a question; it answers with citations.",
        "timeoutSeconds": 120,
        "a2a": {
            "cardUrl": card_url,
            "headersSecretRef": {"name": "docs-caller", "key": "headers"},
            "caSecretRef": {"name": "docs-caller", "key": "ca.crt"},
        },
    }
    apply_fleet(cluster, ns, CALLER, image["project"], image["redis"], tools=[tool])
    fleet_ready(cluster, ns, CALLER)
    return CALLER


@pytest.fixture(scope="module")
def docs_url(node, fleets) -> Iterator[str]:  # noqa: F811 - node is a fixture
    """docs's task API Service on a port of this machine (for clients outside the node's network)."""
    with forward_into_netns(node["netns"], fleets["server_ip"], API_PORT) as port:
        yield f"https://localhost:{port}"


@pytest.fixture(scope="module")
def reference() -> Iterator[str]:
    """The official SDK's server (a2a-sdk 1.3.0), the kit's other subject."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "e2e.harness.a2a_reference", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("a2a reference listening on "), line
        yield f"http://localhost:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_a2a_kit_passes_against_a_fleet_on_the_real_node(node, fleets, reference) -> None:  # noqa: F811
    # Every category on both subjects at once: the runs mostly wait on the servers.
    version = {"A2A-Version": "1.0"}  # the SDK's server takes a request without it for 0.3
    # The kit runs as an in-cluster client would: in the node's network namespace, docs's Service
    # name resolved to its ClusterIP as cluster DNS does, since the card names that URL, over HTTPS
    # verified against docs's CA (the kit's HTTPS checks judge the card's URLs).
    service = fleets["service"]
    inside = {"netns": node["netns"], "hosts": {service: fleets["server_ip"]}, "ca_file": fleets["ca"]}
    bearer = {**version, "Authorization": f"Bearer {fleets['token']}"}
    subjects = {
        "fleet": (f"https://{service}:{API_PORT}/a2a", bearer, inside),
        "sdk": (reference, version, {}),
    }
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(subjects) * len(a2a_tck.CATEGORIES)) as pool:
        futures = {
            (who, cat): pool.submit(a2a_tck.run_kit, url, cat, headers, **where)
            for who, (url, headers, where) in subjects.items()
            for cat in a2a_tck.CATEGORIES
        }
        runs = {k: f.result() for k, f in futures.items()}
    print(f"kit {a2a_tck.KIT_REPO}@{a2a_tck.KIT_COMMIT[:12]}: {time.monotonic() - t0:.0f}s")
    failed = {who: set().union(*(runs[(who, c)].failed() for c in a2a_tck.CATEGORIES)) for who in subjects}
    for (who, cat), run in sorted(runs.items()):
        outcomes = list(run.outcomes.values())
        counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
        print(f"  {who:5} {cat:12} {counts}")
    why = {t: w for c in a2a_tck.CATEGORIES for t, w in runs[("fleet", c)].why.items()}
    for t in sorted(failed["fleet"]):
        kind, known = KIT_DEFECTS.get(t, ("?", "NOT KNOWN"))
        print(f"  fleet FAILED ({kind}) {t}: {known[:100]}\n      {why.get(t, '')}")
    for t in sorted(failed["sdk"] - failed["fleet"]):
        print(f"  sdk   FAILED, fleet not: {t}")
    # The fleet fails only what the kit gets wrong, and each "sdk" defect fails on the SDK's server too.
    unexplained = sorted(failed["fleet"] - KIT_DEFECTS.keys())
    assert not unexplained, f"fleet failures neither the kit's defects nor known gaps: {unexplained}"
    not_shared = sorted(t for t in failed["fleet"] if KIT_DEFECTS[t][0] == "sdk" and t not in failed["sdk"])
    assert not not_shared, f"the SDK's server passes these, so they are ours: {not_shared}"
    # The kit ran: the categories' core tests passed on the fleet (a kit that could not reach it fails all).
    passed = set().union(*(runs[("fleet", c)].passed() for c in a2a_tck.CATEGORIES))
    assert len(passed) >= 100, sorted(passed)
    assert "tests/mandatory/protocol/test_agent_card.py::test_mandatory_fields_present" in passed, passed
    # HTTPS as the kit judges it (docs's card names https:// URLs, its certificate verifies): these
    # four failed while the task API served plain HTTP, and the certificate check was skipped.
    https = {
        f"{M}security/test_transport_security.py::test_https_required_production",
        f"{M}security/test_transport_security.py::test_tls_certificate_validation",
        f"{C}test_a2a_v030_authentication.py::TestEnhancedSecurityValidation::test_transport_security_requirements",
        f"{C}test_transport_security_v030.py::TestSecurityCompliance::test_enterprise_security_practices",
        f"{C}test_transport_security_v030.py::TestTransportLayerSecurity::test_https_enforcement",
    }
    assert https <= passed, sorted(https - passed)


def test_a_fleet_delegates_to_another_over_a2a_and_cites_its_artifact(cluster, node, fleets, caller, docs_url) -> None:  # noqa: F811
    ns = fleets["ns"]
    # docs's card as other agent systems read it: through a2a-sdk's resolver.
    card = asyncio.run(_resolved_card(docs_url, fleets["tls"][0]))
    assert card.name == SERVER and card.capabilities.streaming, card
    # Its interfaces name the Service over HTTPS (spec.a2a.url unset), whatever address the card was read at.
    assert card.supported_interfaces[0].url == f"https://{fleets['service']}:{API_PORT}/a2a", card

    ip = cluster.json("-n", ns, "get", "service", api_name(CALLER))["spec"]["clusterIP"]
    front = ServiceClient(node["netns"], ip, API_PORT)
    token = token_of(cluster, ns, CALLER)
    tid = submit(front, token, "How do I rotate an API key? Ask the documentation team.")
    (view,) = wait_done(cluster, front, token, [tid], timeout=300)
    detail = task(front, token, tid) if "steps" not in view else view
    assert view["status"] == "done", json.dumps(view)[:3000]
    calls = [c for s in detail.get("steps") or [] for c in s.get("toolCalls") or s.get("tool_calls") or []]
    print(json.dumps(view, indent=1)[:3000])
    # The answer cites docs's artifact: a task docs ran for front, which docs lists for front's token.
    cited = [c for c in view["citations"] if c.startswith(f"a2a:{TOOL}/")]
    assert cited, (view["citations"], calls)
    docs = ServiceClient(node["netns"], fleets["server_ip"], API_PORT, tls=fleets["tls"])
    remote_id = cited[0].split("/")[1]
    remote = task(docs, fleets["token"], remote_id)
    assert remote["status"] == "done" and remote["answer"], remote
    # What docs spent counts in front's usage.
    assert view["treeUsage"]["totalTokens"] >= remote["usage"]["totalTokens"] > 0, (view["treeUsage"], remote["usage"])

    # `kubectl get af`: docs's A2A column is its in-cluster endpoint; front serves no A2A.
    rows = {r.split()[0]: r for r in cluster.run("-n", ns, "get", "af").stdout.splitlines()[1:]}
    assert f"https://{fleets['service']}:{API_PORT}" in rows[SERVER], rows
    assert "http://" not in rows[CALLER], rows


async def _resolved_card(base: str, ctx: ssl.SSLContext) -> Any:
    import httpx
    from a2a.client import A2ACardResolver

    async with httpx.AsyncClient(timeout=30, verify=ctx) as hx:
        return await A2ACardResolver(hx, base).get_agent_card()
