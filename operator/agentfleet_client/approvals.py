"""``kubectl agentfleet approvals``: the tool calls waiting for a person, and deciding them.

    kubectl agentfleet approvals [--api URL] [--token-file FILE] [--json]
    kubectl agentfleet approvals approve TASK [--step N] [--reason TEXT]
    kubectl agentfleet approvals deny TASK --reason TEXT [--step N]

It talks to the fleet's task API (``GET /v1/approvals``, ``POST /v1/tasks/{id}/approvals``) with a
reviewer's bearer token (a tokens-file line ending in ``approver``), so it lists and decides only
the token's tenant's tasks; the token that submitted a task cannot decide it (403). Each decision
records the reviewer's token identity (``by``), which the command prints. A decision names the step
it decides (the listed one when --step is left out), so running it twice never decides a later
pause of the same task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from agentfleet_client.evaluation.runner import Target, TaskAPIError
from agentfleet_client.evaluation.runner import _request as request

COLUMNS = ("TASK", "TENANT", "STEP", "TOOL", "ARGUMENTS", "WAITING", "TIMES OUT IN", "SUBMITTED BY")


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def rows(items: Sequence[dict[str, Any]], now: float) -> list[tuple[str, ...]]:
    """One row per waiting call (a step may wait on several). Pure."""
    out = []
    for item in items:
        for call in item.get("calls") or []:
            args = json.dumps(call.get("arguments"), separators=(",", ":"), sort_keys=True)
            out.append(
                (
                    item["task"],
                    item.get("tenant", ""),
                    str(item.get("step", "")),
                    call.get("tool", ""),
                    args if len(args) <= 60 else args[:57] + "...",
                    _ago(now - float(item.get("since") or now)),
                    _ago(float(item.get("expiresAt") or now) - now),
                    item.get("submittedBy") or "",
                )
            )
    return out


def table(found: Sequence[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in [COLUMNS, *found]) for i in range(len(COLUMNS))]
    for r in [COLUMNS, *found]:
        out.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Tool calls waiting for approval (spec.decisions.toolPolicies[].requireApproval)."
    )
    p.add_argument("--api", default=os.environ.get("AGENTFLEET_API_URL"), help="task API URL (env AGENTFLEET_API_URL)")
    p.add_argument(
        "--token-file",
        default=os.environ.get("AGENTFLEET_API_TOKEN_FILE"),
        help="file whose first line is a reviewer's bearer token (scope approver)",
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    sub = p.add_subparsers(dest="action")
    for action, reason_help in (("approve", "why (optional)"), ("deny", "why: the agent's model reads it")):
        a = sub.add_parser(action, help=f"{action} the calls a task waits on")
        a.add_argument("task", help="task id (the TASK column)")
        a.add_argument("--step", type=int, help="the waiting step (default: the one listed now)")
        a.add_argument("--reason", default="", required=action == "deny", help=reason_help)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "agentfleet approvals", out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser(prog).parse_args(argv)
    if not args.api or not args.token_file:
        print(
            f"{prog}: give --api and --token-file (or AGENTFLEET_API_URL and AGENTFLEET_API_TOKEN_FILE)",
            file=sys.stderr,
        )
        return 2
    lines = [
        ln.strip() for ln in Path(args.token_file).read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    target = Target("fleet", args.api, lines[0] if lines else "")
    try:
        waiting = request(target, "GET", "/v1/approvals")["items"]
        if args.action is None:
            if args.json:
                out.write(json.dumps(waiting, indent=2) + "\n")
            else:
                table(rows(waiting, time.time()), out)
            return 0
        step = args.step
        if step is None:
            step = next((i["step"] for i in waiting if i["task"] == args.task), None)
            if step is None:
                print(f"{prog}: task {args.task} is not waiting for an approval of your tenant", file=sys.stderr)
                return 1
        body = {"decision": args.action, "reason": args.reason, "step": step}
        got = request(target, "POST", f"/v1/tasks/{args.task}/approvals", body)
    except TaskAPIError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    decided = got["approval"]
    by = f" by {decided['by']}" if decided.get("by") else ""
    out.write(
        json.dumps(got, indent=2) + "\n" if args.json else f"{args.task} step {step}: {decided['decision']}{by}\n"
    )
    return 0
