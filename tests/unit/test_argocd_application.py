"""examples/argocd/application.yaml points at what exists in this repository, with the sync options
the chart's README relies on, and values the chart's schema accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
APPS = [d for d in yaml.safe_load_all((ROOT / "examples" / "argocd" / "application.yaml").read_text()) if d]
SCHEMA = json.loads((ROOT / "charts" / "agentfleet" / "values.schema.json").read_text())


def keys_outside_schema(values: dict, schema: dict, path: str = "") -> list[str]:
    out = []
    for k, v in values.items():
        sub = schema.get("properties", {}).get(k)
        if sub is None:
            out.append(f"{path}.{k}")
        elif isinstance(v, dict) and "properties" in sub:
            out += keys_outside_schema(v, sub, f"{path}.{k}")
    return out


def test_applications_point_at_this_repository() -> None:
    assert [a["kind"] for a in APPS] == ["Application", "Application"]
    for app in APPS:
        src = app["spec"]["source"]
        assert (ROOT / src["path"]).is_dir(), src["path"]
        opts = app["spec"]["syncPolicy"]["syncOptions"]
        assert "ServerSideApply=true" in opts and "SkipDryRunOnMissingResource=true" in opts
        include = src.get("directory", {}).get("include")
        if include:
            for name in re.findall(r"[\w.-]+\.yaml", include):
                assert (ROOT / src["path"] / name).is_file(), name


def test_operator_application_values_are_valid_chart_values() -> None:
    chart_app = next(a for a in APPS if a["spec"]["source"]["path"] == "charts/agentfleet")
    values = chart_app["spec"]["source"]["helm"]["valuesObject"]
    assert keys_outside_schema(values, SCHEMA) == []
