"""Pure helpers of sub-agent fan-out: reading goals from a spawn call, naming children."""

from __future__ import annotations

from typing import Any


def goals_of(arguments: dict[str, Any]) -> list[str]:
    raw: Any = arguments.get("goals")
    if raw is None:
        raw = arguments.get("tasks")
    if raw is None and "goal" in arguments:
        raw = [arguments["goal"]]
    if raw is None and "input" in arguments:
        raw = arguments["input"]
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return []
    goals = []
    for g in raw:
        if isinstance(g, dict):
            g = g.get("goal") or g.get("task") or ""
        if isinstance(g, str) and g.strip():
            goals.append(g.strip())
    return goals


def child_id(parent: str, step: int, call: int, index: int) -> str:
    return f"{parent}.{step}.{call}.{index}"
