"""The chart's values are documented and typed by values.schema.json (helm enforces it;
tests/integration/api/test_chart_it.py checks that it rejects bad values), and the Grafana dashboard
asks only for series that exist: agentfleet_* from the runtime's registry, vllm:* from vLLM's current
names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Counter, Gauge, Histogram

import agentfleet_runtime.core.metrics as runtime_metrics
from agentfleet_sim.metrics_spec import Flavor, exposed_names, metric_specs

CHART = Path(__file__).resolve().parents[2] / "charts" / "agentfleet"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
DASHBOARD = json.loads((CHART / "dashboards" / "agentfleet.json").read_text())


def walk_values(values: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in values.yaml the schema does not declare (or declares with another type)."""
    problems: list[str] = []
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    pytype = {"object": dict, "array": list, "string": str, "boolean": bool, "number": (int, float), "integer": int}
    if types and not any(
        isinstance(values, pytype[t]) and not (t in ("number", "integer") and isinstance(values, bool)) for t in types
    ):
        problems.append(f"{path or '.'}: {values!r} is not {types}")
    if isinstance(values, dict) and "properties" in schema:
        for k, v in values.items():
            sub = schema["properties"].get(k)
            if sub is None:
                problems.append(f"{path}.{k}: not in the schema")
            else:
                problems += walk_values(v, sub, f"{path}.{k}")
    return problems


def test_values_yaml_matches_the_schema() -> None:
    assert walk_values(VALUES, SCHEMA) == []
    for key in SCHEMA.get("required", []):
        assert key in VALUES, key


def test_every_schema_object_is_closed_and_every_field_documented() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        out = []
        if "properties" in node:
            if node.get("additionalProperties") is not False:
                out.append(f"{path}: open object")
            for k, sub in node["properties"].items():
                if not sub.get("description") and "properties" not in sub:
                    out.append(f"{path}.{k}: no description")
                out += walk(sub, f"{path}.{k}")
        return out

    assert walk(SCHEMA, "") == []


def test_operator_runs_as_the_images_user() -> None:
    assert VALUES["securityContext"] == {"runAsUser": 65532, "runAsGroup": 65532}
    assert SCHEMA["properties"]["securityContext"]["properties"]["runAsUser"]["minimum"] >= 1


# --- dashboard -----------------------------------------------------------------------------------


def runtime_series() -> set[str]:
    out: set[str] = set()
    for obj in vars(runtime_metrics).values():
        if isinstance(obj, Counter):
            out.add(obj._name + "_total")
        elif isinstance(obj, Histogram):
            out |= {obj._name + s for s in ("_bucket", "_sum", "_count")}
        elif isinstance(obj, Gauge):
            out.add(obj._name)
    return out


def vllm_series() -> set[str]:
    histograms = {m.name for m in metric_specs(Flavor.CURRENT) if m.kind == "histogram"}
    out = set(exposed_names(Flavor.CURRENT))
    return out | {h + s for h in histograms for s in ("_bucket", "_sum", "_count")}


def exprs(dash: dict[str, Any]) -> list[str]:
    out = []
    for p in dash["panels"]:
        out += [t["expr"] for t in p.get("targets", [])]
    out += [v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)]
    return out


METRIC = re.compile(r"\b((?:agentfleet_|vllm:)[A-Za-z0-9_:]+)")


def test_dashboard_queries_only_existing_series() -> None:
    known = runtime_series() | vllm_series()
    assert "agentfleet_tasks_total" in known and "vllm:kv_cache_usage_perc" in known
    used = {m for e in exprs(DASHBOARD) for m in METRIC.findall(e)}
    assert used - known == set()
    # Every runtime metric and the vLLM serving signals the autoscaler reads have a panel.
    runtime_families = {n.removesuffix("_bucket").removesuffix("_total") for n in used if n.startswith("agentfleet_")}
    assert {n.removesuffix("_total") for n in runtime_series() if not n.endswith(("_sum", "_count", "_bucket"))} | {
        n.removesuffix("_bucket") for n in runtime_series() if n.endswith("_bucket")
    } <= runtime_families
    for name in (
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
    ):
        assert name in used


def test_dashboard_panels_have_unique_ids_and_use_the_datasource_variable() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for p in DASHBOARD["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]


def test_dashboard_links_to_the_selected_fleets_traces() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["traces"]["type"] == "textbox"  # the Jaeger UI's address, set per Grafana
    urls = [link["url"] for link in DASHBOARD.get("links", [])]
    assert "${traces}/search?service=${agentfleet}&limit=50" in urls  # the fleet's name is its traces' service.name
