"""``python -m e2e.demo.forward --netns PATH --route LOCAL=HOST:PORT ...``: ports on 127.0.0.1 of this
machine into the real node's network namespace, held until the process ends (``kubectl port-forward``
for Services and pods, which `up` leaves running): the task API for ``agentfleet eval --api``, and the
replicas, Milvus and Redis for the fleet's runtime configuration run here (``--runtime-config`` with
its closed-book and one-shot RAG baselines and ``--compare``)."""

from __future__ import annotations

import argparse
import contextlib
import threading

from e2e.harness.nodenet import forward_into_netns


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m e2e.demo.forward", description=__doc__)
    p.add_argument("--netns", required=True, help="the node's network namespace (its /run/netns path)")
    p.add_argument("--route", action="append", default=[], metavar="LOCAL=HOST:PORT")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        for route in args.route:
            local, _, target = route.partition("=")
            host, _, port = target.rpartition(":")
            stack.enter_context(forward_into_netns(args.netns, host, int(port), int(local)))
            print(f"127.0.0.1:{local} -> {host}:{port}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
