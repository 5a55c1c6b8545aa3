"""The ``agentfleet`` and ``kubectl-agentfleet`` commands: ``eval``, ``approvals``, ``plan``, ``capacity``.

``kubectl agentfleet ...`` finds ``kubectl-agentfleet`` on PATH (kubectl's plugin mechanism).
``plan`` and ``capacity`` live in agentfleet_client.cli (pure: they read only the file given); ``eval``
talks to a fleet's task API and, with --fleet, to the cluster, so it is imported only when used;
``approvals`` (agentfleet_client.approvals) lists and decides the tool calls waiting for a person.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None, prog: str = "agentfleet") -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "eval":
        from agentfleet_client.evaluation.cli import main as eval_main

        return eval_main(args[1:], prog=f"{prog} eval")
    if args and args[0] == "approvals":
        from agentfleet_client.approvals import main as approvals_main

        return approvals_main(args[1:], prog=f"{prog} approvals")
    from agentfleet_client.cli import main as cli_main

    return cli_main(args)


def kubectl_plugin() -> None:
    sys.exit(main(prog="kubectl agentfleet"))


def agentfleet() -> None:
    sys.exit(main())
