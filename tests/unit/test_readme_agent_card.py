"""The agent card the README's first-fleet section shows is the one the example fleet serves: built
here from examples/agentfleet.yaml the way the operator and the task API build it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from agentfleet_contract.runtime_config import ModelTarget, RuntimeConfig, runtime_config

from agentfleet_runtime.server import a2a_wire

ROOT = Path(__file__).resolve().parents[2]


def example_card(base_url: str) -> dict:
    docs = [d for d in yaml.safe_load_all((ROOT / "examples" / "agentfleet.yaml").read_text()) if d]
    af = next(d for d in docs if d["kind"] == "AgentFleet")
    doc = runtime_config(af, primary=ModelTarget("llama-8b", "llama-8b"), redis_url="redis://redis:6379/0")
    return a2a_wire.agent_card(RuntimeConfig.model_validate(doc), base_url, "0.1.0", secured=True)


def shown() -> dict:
    """The JSON block after the README's curl of the card (its jq projection)."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"agent-card\.json \\\n.*?jq '([^']+)'\n```\n\n```json\n(.*?)\n```", text, re.S)
    assert m, "the README's first-fleet section has no curl of the agent card followed by its output"
    return json.loads(m.group(2))


def test_the_readme_shows_the_card_the_example_fleet_serves():
    card = example_card("http://support-api:8080")  # the card names the URL the caller used
    projection = {
        "name": card["name"],
        "description": card["description"],
        "supportedInterfaces": card["supportedInterfaces"],
        "capabilities": card["capabilities"],
        "skills": [s["id"] for s in card["skills"]],
    }
    assert shown() == projection
