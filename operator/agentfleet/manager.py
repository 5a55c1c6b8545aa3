"""The agentfleet operator's entry point (kopf).

    python -m agentfleet.manager                       # all namespaces, standalone
    python -m agentfleet.manager --liveness http://127.0.0.1:8080/healthz --verbose
    kopf run -m agentfleet.manager --all-namespaces --standalone

Credentials: in-cluster when run in a pod, else $KUBECONFIG (both kopf and the controllers' own
client). kopf's peering is off (`standalone`): it pauses lower-priority operators rather than
electing a leader. With ``--leader-elect`` (the chart's default, two replicas) a replica starts kopf
only once it holds a coordination.k8s.io Lease (agentfleet/leader.py) and exits when it loses it, so
followers never reconcile or write; while following it answers the liveness URL itself.

Settings that matter to users of the objects:
- kopf's own bookkeeping, for any handler that needs it, goes into annotations and a finalizer
  under agentfleet.io (never kopf.zalando.org), and never into status: our status fields are
  written by the controllers themselves. The ModelReplicaSet controller needs neither (see
  controllers/modelreplicaset.py), so it adds no finalizer: deleting an object never waits for
  the operator.
- Events: controllers post theirs explicitly; kopf's own log lines become Events only from
  WARNING up, so routine handler chatter stays out of `kubectl describe`.
"""

from __future__ import annotations

import argparse
import http.server
import logging
import os
import socket
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from typing import Any

import kopf

import agentfleet.handlers  # noqa: F401 - registers the controllers' handlers
from agentfleet import leader
from agentfleet.controllers.settings import CONFIG, kube_client
from agentfleet.kube import WRITES, Kube

PREFIX = "agentfleet.io"


# Kinds the operator only watches or indexes (kopf.on.event, kopf.index): no create/update/delete/
# resume handler, daemon or timer serves them, so kopf's diff-base essence of them is never read.
# tests/unit/controllers checks that this stays true of the registered handlers.
WATCH_ONLY_KINDS = frozenset(
    {
        ("v1", "Pod"),
        ("v1", "Node"),
        ("agentfleet.io/v1alpha1", "ModelReplicaSet"),
        ("agentfleet.io/v1alpha1", "AgentFleet"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
    }
)


class LeanDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff-base essence, without the copies nobody reads.

    kopf builds the essence of every object on every watch event, pods and nodes included, by
    deep-copying the whole body (status and managedFields too) and then dropping most of it, and
    deep-copies the result once more. On a fleet of replica pods those copies were most of the
    operator's CPU. Here the essence of a watch-only kind is empty (no change handler compares
    it), and for other kinds the same essence as kopf's is built from the fields it keeps."""

    def __init__(self, *, watch_only: frozenset[tuple[str, str]] = WATCH_ONLY_KINDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watch_only = watch_only

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        fields = list(extra_fields or [])
        if fields:  # a handler watches some status or metadata field: the full path
            return super().build(body=body, extra_fields=fields)
        if (body.get("apiVersion"), body.get("kind")) in self.watch_only:
            return {}
        meta = body.get("metadata") or {}
        slim = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        # ownerReferences stay for kopf's key marking; the essence keeps only labels and annotations.
        slim["metadata"] = {
            k: meta[k] for k in ("name", "namespace", "labels", "annotations", "ownerReferences") if k in meta
        }
        return super().build(body=kopf.Body(slim), extra_fields=fields)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    WRITES.configure(CONFIG.api_qps, CONFIG.api_burst)
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = LeanDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration")
    settings.posting.enabled = True
    settings.posting.level = logging.WARNING
    settings.peering.standalone = True
    # Watches are re-established well before load balancers cut idle connections.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10


def operator_identity(env: dict[str, str] | None = None) -> str:
    """Who this operator process is, for kopf's bookkeeping (and, later, a leader-election Lease).

    kopf's own default asks ``getpass.getuser()``, which raises KeyError in a container whose uid has
    no passwd entry and no USER/LOGNAME: what containerd and CRI-O give a pod that states only
    ``runAsUser``, so the operator crash-looped on real kubelets. The pod's name (the chart sets
    POD_NAME from the downward API) names it uniquely instead; outside a pod, the host name and the
    process id do, with no lookup of the login name at all."""
    env = os.environ if env is None else env
    pod = env.get("POD_NAME") or env.get("POD_ID")
    if pod:
        return pod
    return f"{socket.gethostname()}/{os.getpid()}"


class _FollowerHealth:
    """Answers the liveness URL while the replica follows (kopf, which serves it when leading, has
    not started): a follower is alive, and the kubelet must not restart it for waiting."""

    def __init__(self, url: str | None) -> None:
        self.server: http.server.ThreadingHTTPServer | None = None
        if not url:
            return
        u = urllib.parse.urlsplit(url)
        path = u.path or "/"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                ok = self.path.split("?")[0] == path
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"leader": false}' if ok else b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((u.hostname or "0.0.0.0", u.port or 80), Handler)
        threading.Thread(target=self.server.serve_forever, name="af-follower-health", daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def lead(args: argparse.Namespace) -> leader.Elector:
    """Block until this replica holds the Lease; then keep renewing it, and exit the process at
    once if it is lost (a replica that may no longer lead must stop writing, and kopf cannot be
    stopped from another thread halfway through a reconcile)."""
    kube_client()  # loads in-cluster credentials or KUBECONFIG into the default configuration
    from kubernetes import client as k8s

    # Its own connection pool: renewals never wait behind the reconciles' requests.
    kube = Kube(k8s.ApiClient(k8s.Configuration.get_default_copy()))
    timing = leader.Timing(args.lease_duration, args.lease_duration * 2 / 3, max(0.2, args.lease_duration * 2 / 15))
    elector = leader.Elector(
        kube, namespace=args.lease_namespace, name=args.lease_name, identity=operator_identity(), timing=timing
    )
    health = _FollowerHealth(args.liveness)
    try:
        elector.acquire()
    finally:
        health.close()

    def lost(why: str) -> None:
        logging.getLogger("agentfleet.leader").critical(
            "leader election: %s; exiting so that only the leader writes", why
        )
        logging.shutdown()
        os._exit(1)

    elector.keep(lost)
    return elector


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agentfleet.manager", description="Run the agentfleet operator.")
    ap.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help=(
            "serve only these namespaces (repeatable; globs allowed). Default: all. Nodes are read cluster-wide "
            "either way, pods only in these"
            " namespaces: GPUs held by pods elsewhere are then invisible to the planner, so restrict namespaces only "
            "on dedicated GPU nodes."
        ),
    )
    ap.add_argument("--liveness", metavar="URL", help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    ap.add_argument(
        "--workers", type=int, default=CONFIG.workers, help=f"parallel reconciles (default {CONFIG.workers})"
    )
    ap.add_argument(
        "--resync-seconds", type=float, default=CONFIG.resync_seconds, help="reconcile every object at least this often"
    )
    ap.add_argument(
        "--api-qps",
        type=float,
        default=CONFIG.api_qps,
        help=f"writes per second to the API server, 0 for no limit (default {CONFIG.api_qps:g})",
    )
    ap.add_argument(
        "--api-burst",
        type=int,
        default=CONFIG.api_burst,
        help=f"writes allowed in a burst above --api-qps (default {CONFIG.api_burst})",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging (kopf's too)")
    ap.add_argument(
        "--log-level",
        default=os.environ.get("AGENTFLEET_LOG_LEVEL"),
        help="level of agentfleet's own loggers (default INFO; WARNING with --quiet)",
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    ap.add_argument(
        "--leader-elect", action="store_true", help="run kopf only while holding a Lease (for more than one replica)"
    )
    ap.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE") or "default",
        help="namespace of the Lease (default $POD_NAMESPACE, else default)",
    )
    ap.add_argument(
        "--lease-name", default="agentfleet-operator", help="name of the Lease (default agentfleet-operator)"
    )
    ap.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        help="seconds a silent leader keeps the Lease (default 15; renewals every 2/15 of it)",
    )
    args = ap.parse_args(argv)

    CONFIG.workers = max(1, args.workers)
    CONFIG.resync_seconds = max(1.0, args.resync_seconds)
    CONFIG.api_qps, CONFIG.api_burst = args.api_qps, max(1, args.api_burst)
    kopf.configure(verbose=args.verbose, quiet=args.quiet)
    logging.getLogger("agentfleet").setLevel((args.log_level or ("WARNING" if args.quiet else "INFO")).upper())
    if not args.verbose:
        # kopf logs every handled watch event ("Handler ... succeeded") at INFO; ours log what they do.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    elector = lead(args) if args.leader_elect else None
    try:
        kopf.run(
            identity=operator_identity(),
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=args.liveness,
        )
    finally:
        if elector is not None:
            elector.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
