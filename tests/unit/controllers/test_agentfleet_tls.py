"""spec.api.tls (issue 78): the task API's certificate Secret needs consent and both keys, is mounted
into the task API pods only, and turns the probes, the endpoints and the card's URL to HTTPS."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet.controllers.agentfleet import status
from agentfleet.controllers.agentfleet.controller import references
from agentfleet.controllers.agentfleet.records import Acted, Plan
from agentfleet.render.agentfleet import config_text
from tests.builders import Fleet
from tests.unit.controllers.test_agentfleet_decide import NS, observe, plan_of, ready_model, secret


def cert_secret(*, consent: bool = True, keys: tuple[str, ...] = ("tls.crt", "tls.key")) -> dict[str, Any]:
    s = secret("PEM", key=keys[0], consent=consent)
    for k in keys[1:]:
        s["data"][k] = s["data"][keys[0]]
    return s


def tls_fleet(**a2a: Any) -> Fleet:
    fleet = Fleet("docs").spec(api={"tls": {"secretName": "docs-cert"}})
    return fleet.spec(a2a=a2a) if a2a is not None else fleet


def plan_with(cert: dict[str, Any] | None, fleet: Fleet | None = None) -> Plan:
    secrets = {"docs-cert": cert} if cert is not None else {}
    return plan_of(observe(fleet or tls_fleet(), models={"llama-8b": ready_model()}, secrets=secrets))


def deployment(plan: Plan, component: str) -> dict[str, Any]:
    assert plan.runtime is not None
    return next(
        o for o in plan.runtime.children if o["kind"] == "Deployment" and o["metadata"]["name"].endswith(component)
    )


def test_the_certificate_secret_without_the_consent_label_is_a_problem_naming_the_field_and_the_fix() -> None:
    plan = plan_with(cert_secret(consent=False))
    assert [p.reason for p in plan.problems] == ["SecretNotConsented"] and plan.runtime is None
    msg = plan.problems[0].message
    assert msg.startswith("spec.api.tls.secretName: Secret docs-cert lacks the label agentfleet.io/consent=true")
    assert f"kubectl label secret -n {NS} docs-cert agentfleet.io/consent=true" in msg
    report = status.compose(observe(tls_fleet()), plan, Acted(), "2026-11-29T00:00:00Z")
    ready = next(c for c in report.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "SecretNotConsented"


def test_a_certificate_secret_that_is_missing_or_lacks_a_key_is_a_problem() -> None:
    for cert, key in ((None, "tls.crt"), (cert_secret(keys=("tls.crt",)), "tls.key")):
        plan = plan_with(cert)
        assert [p.reason for p in plan.problems] == ["SecretNotFound"] and plan.runtime is None
        assert f"spec.api.tls.secretName: Secret docs-cert with key {key} does not exist" in plan.problems[0].message


def test_the_certificate_is_mounted_into_the_task_api_pods_only_and_their_probes_speak_https() -> None:
    plan = plan_with(cert_secret())
    assert plan.problems == ()
    api, worker = deployment(plan, "-api"), deployment(plan, "-worker")
    pod = api["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    items = [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]
    assert volumes["api-tls"] == {"name": "api-tls", "secret": {"secretName": "docs-cert", "items": items}}
    (container,) = pod["containers"]
    mount = {"name": "api-tls", "mountPath": "/etc/agentfleet/tls", "readOnly": True}
    assert mount in container["volumeMounts"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
    # The chart's PodMonitor scrapes these pods' /metrics over HTTPS by this label.
    assert api["spec"]["template"]["metadata"]["labels"]["agentfleet.io/api-scheme"] == "https"
    assert "agentfleet.io/api-scheme" not in worker["spec"]["template"]["metadata"]["labels"]
    # The workers never get the API's private key, and their own probes stay plain HTTP.
    wpod = worker["spec"]["template"]["spec"]
    assert "docs-cert" not in str(wpod["volumes"]) and "api-tls" not in str(wpod["containers"][0]["volumeMounts"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "scheme" not in wpod["containers"][0][probe]["httpGet"], probe


def test_the_runtime_config_names_the_mounted_files_and_the_endpoints_are_https() -> None:
    plan = plan_with(cert_secret(), tls_fleet())
    assert plan.runtime is not None
    config = RuntimeConfig.model_validate(plan.runtime.doc)
    assert config.api.tls is not None
    assert (config.api.tls.cert_file, config.api.tls.key_file) == (
        "/etc/agentfleet/tls/tls.crt",
        "/etc/agentfleet/tls/tls.key",
    )
    assert plan.endpoint == f"https://docs-api.{NS}.svc:8080"
    assert plan.a2a_endpoint == f"https://docs-api.{NS}.svc:8080"
    assert config.a2a is not None and config.a2a.url == f"https://docs-api.{NS}.svc:8080"
    cm = next(o for o in plan.runtime.children if o["kind"] == "ConfigMap")
    assert cm["data"]["runtime.yaml"] == config_text(plan.runtime.doc)


def test_a_fleet_without_tls_keeps_plain_http_everywhere() -> None:
    plan = plan_with(None, Fleet("docs").spec(a2a={}))
    assert plan.problems == () and plan.endpoint == f"http://docs-api.{NS}.svc:8080"
    assert plan.a2a_endpoint == plan.endpoint
    assert plan.runtime is not None and "tls" not in plan.runtime.doc["api"]
    api = deployment(plan, "-api")["spec"]["template"]["spec"]
    assert "api-tls" not in {v["name"] for v in api["volumes"]}
    assert "agentfleet.io/api-scheme" not in deployment(plan, "-api")["spec"]["template"]["metadata"]["labels"]
    assert "scheme" not in api["containers"][0]["readinessProbe"]["httpGet"]


def test_an_a2a_url_the_author_gives_is_kept_as_written() -> None:
    # An Ingress in front may terminate TLS itself: the author's URL is what callers reach.
    plan = plan_with(cert_secret(), tls_fleet(url="https://agents.example.com/docs"))
    assert plan.a2a_endpoint == "https://agents.example.com/docs"


def test_the_certificate_secret_wakes_the_fleet_when_it_changes() -> None:
    spec = tls_fleet().obj()["spec"]
    assert ("Secret", "docs-cert") in references(spec)


def test_the_contract_takes_a_secret_name_and_nothing_else() -> None:
    obj = tls_fleet().ns(NS).obj()
    af = AgentFleet.model_validate(obj)
    assert af.spec.api.tls is not None and af.spec.api.tls.secret_name == "docs-cert"
    assert af.wire()["spec"]["api"]["tls"] == {"secretName": "docs-cert"}
    for bad in ({}, {"secretName": "Docs_Cert"}, {"secretName": "docs-cert", "keyFile": "/k"}):
        obj["spec"]["api"]["tls"] = bad
        with pytest.raises(pydantic.ValidationError, match=r"api\.tls"):
            AgentFleet.model_validate(obj)
