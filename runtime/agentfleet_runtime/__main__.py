"""``python -m agentfleet_runtime worker|api|oneshot|gate|scripted-model``: the runtime's entry points."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from agentfleet_contract.agentfleet import READ_AROUND_MAX

from agentfleet_runtime.core import eventloop, gctune, logs
from agentfleet_runtime.core.config import load_config

log = logging.getLogger("agentfleet_runtime")


def _on_signals(handler) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler)


async def run_worker(config_path: str | None) -> int:
    from agentfleet_runtime.tools.mcp import deny_proc_access
    from agentfleet_runtime.worker import Worker

    # Before anything is spawned: a stdio MCP server may not read this process's environment.
    deny_proc_access()

    config = load_config(config_path)
    worker = Worker(config)
    _on_signals(worker.request_drain)
    await worker.start()
    gctune.tune()
    log.info("event loop", extra={"loop": eventloop.name()})
    await worker.wait()
    log.info("worker stopped")
    return 0


async def run_api(config_path: str | None) -> int:
    from agentfleet_runtime.server.api import serve

    config = load_config(config_path)
    stop = asyncio.Event()
    _on_signals(stop.set)
    await serve(config, stop)
    return 0


async def run_scripted_model(args: argparse.Namespace) -> int:
    from agentfleet_runtime.testing.scripted_model import ScriptedModelServer

    server = ScriptedModelServer.from_file(args.script) if args.script else ScriptedModelServer()
    port = await server.start(args.host, args.port)
    gctune.tune()  # it holds every in-flight request's parsed history, as a worker holds its tasks'
    print(f"scripted model listening on http://{args.host}:{port}/v1", flush=True)
    stop = asyncio.Event()
    _on_signals(stop.set)
    await stop.wait()
    await server.stop()
    return 0


async def run_oneshot(args: argparse.Namespace) -> int:
    from agentfleet_runtime.worker.oneshot import run

    await run(
        load_config(args.config),
        args.mode,
        top_k=args.top_k,
        read_around=args.read_around,
        concurrency=args.concurrency,
    )
    return 0


async def run_gate(args: argparse.Namespace) -> int:
    from agentfleet_runtime.gate.cli import main as gate_main

    return await gate_main(args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agentfleet_runtime", description="agentfleet agent runtime")
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("worker", "run agent tasks from the Redis stream"), ("api", "serve the task HTTP API")):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", help="runtime YAML file (default: $AGENTFLEET_CONFIG; env vars override it)")
    os_ = sub.add_parser("oneshot", help="one call per question (agentfleet eval's baselines)")
    os_.add_argument("--config", help="runtime YAML file (the fleet's; default: $AGENTFLEET_CONFIG)")
    os_.add_argument("--mode", choices=("closed-book", "rag"), required=True, help="model alone, or search then call")
    os_.add_argument("--top-k", type=int, default=None, help="passages for rag (default: the Retrieval tool's topK)")
    os_.add_argument(
        "--read-around",
        type=int,
        default=None,
        choices=range(READ_AROUND_MAX + 1),
        help="neighbouring chunks a side joined to each rag passage (default: the Retrieval tool's readAround)",
    )
    os_.add_argument("--concurrency", type=int, default=1, help="questions answered at once")
    from agentfleet_runtime.gate.args import add_arguments as gate_arguments

    gate_arguments(sub.add_parser("gate", help="the evaluation gate's Job: both versions answer a task set"))
    sm = sub.add_parser("scripted-model", help="serve the scripted OpenAI-compatible test model")
    sm.add_argument("--script", help="YAML/JSON script file")
    sm.add_argument("--host", default="127.0.0.1")
    sm.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    logs.setup(args.log_level, component=args.command)
    if args.command == "worker":
        return eventloop.run(run_worker(args.config))
    if args.command == "api":
        return eventloop.run(run_api(args.config))
    if args.command == "oneshot":
        return eventloop.run(run_oneshot(args))
    if args.command == "gate":
        return eventloop.run(run_gate(args))
    return eventloop.run(run_scripted_model(args))


if __name__ == "__main__":
    sys.exit(main())
