"""The default vLLM image is a version this project verified, and kubectl explain and the README say so."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from agentfleet_contract.modelreplicaset import Engine

ROOT = Path(__file__).resolve().parents[2]


def test_default_image_is_the_verified_version_named_in_explain_and_readme() -> None:
    field = Engine.model_fields["image"]
    tag = field.default.rsplit(":", 1)[1]
    assert tag == "v0.26.0"  # verified on real vLLM for issue 18
    assert f"Verified: vLLM {tag}" in (field.description or "")
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"Verified engine versions: vLLM \*\*{re.escape(tag)}\*\*", readme)
    crd = yaml.safe_load((ROOT / "crds/agentfleet.io_modelreplicasets.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["engine"][
        "properties"
    ]["image"]
    assert schema["default"] == field.default and f"Verified: vLLM {tag}" in schema["description"]
