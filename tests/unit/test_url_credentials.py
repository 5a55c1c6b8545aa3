"""Credentials anywhere in a URL are refused in every URL field of the three CRDs (issue 57,
finding 8): user:password@ and query or fragment parameters such as ?password=, ?api_key=,
?token=, #access_token=, in any case. The URL fields are enumerated from the models, so a URL
field added later without the rule fails here; each must carry the one shared rule
(agentfleet_contract.rules.no_credentials) in both the pydantic check and the CRD's CEL."""

from __future__ import annotations

import re
import typing
from types import SimpleNamespace
from typing import Any

import pydantic
import pytest
from agentfleet_contract import RESOURCES
from agentfleet_contract.rules import CREDENTIALS_IN_URL, CREDENTIALS_WHAT, Rule, has_credentials

from agentfleet import crdgen

BAD = [
    "http://user:pw@host:80/x",
    "redis://:hunter2@redis:6379/0",
    "redis://redis:6379/0?password=hunter2",
    "redis://redis:6379/0?PassWord=hunter2",
    "https://api.example.com/v1?api_key=k",
    "https://api.example.com/v1?x=1&apiKey=k",
    "https://api.example.com/v1?API-KEY=k",
    "http://collector:4318?token=t",
    "http://collector:4318/x?access_token=t",
    "http://collector:4318/#access_token=t",
    "http://milvus:19530?secret=s",
    "https://blob.example.com/d.md?sv=1&sig=abc",
    "s3://bucket/m?X-Amz-Credential=AKIA&X-Amz-Signature=ab",
    "http://h/x?client_secret=s",
    "http://h/x?db_passwd=s",
    "http://h/x;auth=s",
    # Issue 76, finding 6: names read after percent-decoding (redis-py logged in with pass%77ord).
    "redis://redis:6379/0?pass%77ord=hunter2",
    "redis://redis:6379/0?PASS%57ORD=hunter2",
    "https://api.example.com/v1?x=1&%61pi_key=k",
    "http://collector:4318/#%74oken=t",
    "http://h/x?s%69g=abc",
]
GOOD = [
    "http://prometheus.monitoring:9090",
    "redis://redis.data:6379/0",
    "rediss://redis.data:6380/1?ssl_cert_reqs=none",
    "https://docs.example.com/a.md?author=kim&monkey=1&page=2",
    "https://docs.example.com/search?q=caf%C3%A9&page=2",  # percent-encoding in a value is no name
    "http://tools.default.svc:8000/mcp",
    "https://example.com/a@b",  # an @ in the path is not userinfo
    "org/model",
    "s3://bucket/llama-3",
]

# A spec field is a URL field when its name says so or its description speaks of a URL or URI.
URL_NAME = re.compile(r"(?i)(url|uri|urls|endpoint)$")
URL_WORDS = re.compile(r"URL|URI|://")


def _models(t: Any) -> list[type[pydantic.BaseModel]]:
    if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
        return [t]
    return [m for a in typing.get_args(t) for m in _models(a)]


def _is_str(t: Any) -> tuple[bool, bool]:
    """(a string, a list of strings)"""
    s = str(t)
    if t is str or s in ("str | None", "typing.Optional[str]"):
        return True, False
    return False, s.startswith("list[") and "str" in s and "dict" not in s


def url_fields() -> list[tuple[str, type[pydantic.BaseModel], str, str, bool]]:
    """(path, owning model, attribute, alias, is a list) of every URL field in every spec."""
    out, seen = [], set()

    def walk(model: type[pydantic.BaseModel], path: str) -> None:
        if (model, path) in seen:
            return
        seen.add((model, path))
        for attr, f in model.model_fields.items():
            alias = f.alias or attr
            subs = _models(f.annotation)
            if subs:
                for s in subs:
                    walk(s, f"{path}.{alias}" + ("[]" if str(f.annotation).startswith("list[") else ""))
                continue
            one, many = _is_str(f.annotation)
            if (one or many) and (URL_NAME.search(alias) or URL_WORDS.search(f.description or "")):
                out.append((f"{path}.{alias}", model, attr, alias, many))

    for res in RESOURCES:
        walk(res.spec, f"{res.kind}.spec")
    return out


FIELDS = url_fields()


def credentials_rule(model: type[pydantic.BaseModel], alias: str) -> Rule | None:
    rules = getattr(model, "rules", ()) or ()
    return next((r for r in rules if r.field_path == f".{alias}" and CREDENTIALS_WHAT in r.message), None)


def test_the_url_fields_are_found() -> None:
    paths = {p for p, *_ in FIELDS}
    expected = {
        "AgentFleet.spec.redis.url",
        "AgentFleet.spec.tools[].http.url",
        "AgentFleet.spec.tools[].mcp.url",
        "AgentFleet.spec.tracing.endpoint",
        "VectorIndex.spec.milvus.uri",
        "VectorIndex.spec.embedding.endpoint",
        "VectorIndex.spec.source.urls",
        "ModelReplicaSet.spec.autoscaling.prometheusURL",
        "ModelReplicaSet.spec.model.name",
    }
    assert expected <= paths, expected - paths


@pytest.mark.parametrize(("path", "model", "attr", "alias", "many"), FIELDS, ids=[f[0] for f in FIELDS])
def test_every_url_field_refuses_credentials_anywhere(path, model, attr, alias, many) -> None:
    rule = credentials_rule(model, alias)
    assert rule is not None and rule.check is not None, f"{path} has no credentials rule (rules.no_credentials)"
    # The message names the field and the fix.
    assert path.split(".spec.", 1)[1].replace("[]", "") in rule.message.replace("[]", "")
    assert "put the credential in a Secret and reference it with" in rule.message
    for url in BAD:
        assert not rule.check(SimpleNamespace(**{attr: [GOOD[0], url] if many else url})), f"{path} accepts {url}"
    for url in GOOD:
        assert rule.check(SimpleNamespace(**{attr: [url] if many else url})), f"{path} refuses {url}"
    assert rule.check(SimpleNamespace(**{attr: None}))


@pytest.mark.parametrize(("path", "model", "attr", "alias", "many"), FIELDS, ids=[f[0] for f in FIELDS])
def test_every_url_fields_cel_rule_is_in_the_crd(path, model, attr, alias, many) -> None:
    rule = credentials_rule(model, alias)
    assert rule is not None
    kind, rest = path.split(".", 1)
    res = next(r for r in RESOURCES if r.kind == kind)
    node = crdgen.crd(res)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in rest.split(".")[:-1]:
        node = node["properties"][part.removesuffix("[]")]
        if part.endswith("[]"):
            node = node["items"]
    if many:  # a list's rule sits on its items, where the API server costs it per item
        assert not rule.in_schema
        node = node["properties"][alias]["items"]
    rules = [v["rule"] for v in node.get("x-kubernetes-validations", [])]
    assert rule.cel in rules, f"{path}: the CEL rule is not in the CRD"
    assert CREDENTIALS_IN_URL in rule.cel.replace("\\\\", "\\")


def test_the_shared_pattern_sorts_the_examples() -> None:
    assert [u for u in BAD if not has_credentials(u)] == []
    assert [u for u in GOOD if has_credentials(u)] == []
