"""Build the tools of a fleet from the runtime config (spec.tools)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from agentfleet_contract.runtime_config import RuntimeConfig, tool_ca_file

from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.tools.http import HTTPTool, load_headers
from agentfleet_runtime.tools.retrieval import RetrievalTool, RetrieverLike
from agentfleet_runtime.tools.spawn import FanIn, SpawnTool
from agentfleet_runtime.tools.trust import SYSTEM, Trust, tool_trust

log = logging.getLogger("agentfleet_runtime.tools.registry")

RetrieverFactory = Callable[[RuntimeConfig, Any], RetrieverLike]


def default_retriever(config: RuntimeConfig, tool: Any) -> RetrieverLike:
    """The VectorIndex retriever (``agentfleet_runtime.tools.retriever.Retriever``) from config.retrieval.

    config.retrieval holds ``vectorIndex`` (the VectorIndex's spec, as the operator copies it) and
    ``uri`` (the Milvus endpoint, needed for a managed Milvus: the VectorIndex status.endpoint).
    Secrets come from the environment: AGENTFLEET_MILVUS_TOKEN or AGENTFLEET_MILVUS_USER and
    AGENTFLEET_MILVUS_PASSWORD, and AGENTFLEET_EMBEDDING_API_KEY for an OpenAI-style embedder.
    Imported lazily: a fleet without Retrieval tools never loads the Milvus client or a model.
    """
    settings = dict(config.retrieval)
    if "vectorIndex" not in settings:
        raise ValueError(
            f"tool {tool.name!r} is a Retrieval tool but the runtime config has no retrieval.vectorIndex (the "
            "VectorIndex spec)"
        )
    from agentfleet_contract.vectorindex import VectorIndexSpec

    from agentfleet_runtime.tools.retriever import Retriever

    spec = VectorIndexSpec.model_validate(settings["vectorIndex"])
    env = os.environ
    return Retriever.for_index(
        spec,
        uri=settings.get("uri"),
        token=env.get("AGENTFLEET_MILVUS_TOKEN", ""),
        user=env.get("AGENTFLEET_MILVUS_USER", ""),
        password=env.get("AGENTFLEET_MILVUS_PASSWORD", ""),
        api_key=env.get("AGENTFLEET_EMBEDDING_API_KEY"),
        # The tool's timeoutSeconds is the limit the user set for a search; Milvus' client must not
        # give up before it (a loaded Milvus Lite at 16k rows took over 10 s under a shared CPU).
        timeout=tool.call_timeout(),
    )


def build_tools(
    config: RuntimeConfig,
    store: TaskStore,
    fan_in: FanIn,
    *,
    retriever_factory: RetrieverFactory | None = None,
    on_cache: Any = None,
) -> list[Any]:
    tools: list[Any] = []
    for spec in config.tools:
        if spec.type == "HTTP":
            assert spec.http is not None
            tools.append(
                HTTPTool(
                    spec.name,
                    spec.http.url,
                    method=spec.http.method,
                    description=spec.description,
                    parameters=spec.parameters,
                    timeout=spec.call_timeout(),
                    side_effects=spec.http.side_effects,
                    headers=load_headers(config.tool_headers_dir, spec.name) if spec.http.headers_secret_ref else {},
                    follow_redirects=spec.http.follow_redirects,
                    max_response_bytes=spec.http.max_response_bytes,
                    connect_timeout=float(spec.http.connect_timeout_seconds),
                    trust=trust_of(config, spec),
                )
            )
        elif spec.type == "Retrieval":
            settings = spec.retrieval
            retriever = (retriever_factory or default_retriever)(config, spec)
            tools.append(
                RetrievalTool(
                    spec.name,
                    retriever,
                    cache=store.r,
                    cache_key=lambda digest, name=spec.name: store.keys.retrieval_cache(name, digest),
                    description=spec.description,
                    top_k=settings.top_k if settings else 5,
                    filter=settings.filter if settings else None,
                    read_around=settings.read_around if settings else 0,
                    cache_ttl=settings.cache_ttl_seconds if settings else 300,
                    timeout=spec.call_timeout(),
                    parameters=spec.parameters,
                    on_cache=on_cache,
                )
            )
        elif spec.type == "Spawn":
            tools.append(SpawnTool(spec.name, store, fan_in, description=spec.description, timeout=spec.call_timeout()))
        elif spec.type == "MCP":
            tools.append(mcp_server(config, spec))
        elif spec.type == "A2A":
            tools.append(a2a_agent(config, spec, store))
    return tools


def a2a_agent(config: RuntimeConfig, spec: Any, store: TaskStore) -> Any:
    """A remote A2A agent as a tool: its reported spend charged through the fleet's spend counters,
    its status updates on the calling task's event stream."""
    from decimal import Decimal

    from agentfleet_runtime.core.config import prices_of
    from agentfleet_runtime.model.spend import ReportedSpend
    from agentfleet_runtime.store.tasks import event
    from agentfleet_runtime.tools.a2a import A2ATool, Asked

    settings = spec.a2a
    assert settings is not None
    budgets = settings.budgets

    pending: set[asyncio.Future[Any]] = set()  # held until written: the loop keeps only weak references

    def progress(ctx: Any, update: dict[str, Any]) -> None:
        # Not awaited: the remote's progress never holds up the call. The caller's A2A stream shows
        # nothing of it (stream_events skips unknown events); /v1's event stream does.
        data = event("tool_progress", step=ctx.step, tool=spec.name, **update)
        added = asyncio.ensure_future(
            store.r.xadd(store.keys.events(ctx.task.id), {"e": data}, maxlen=2000, approximate=True)
        )
        pending.add(added)
        added.add_done_callback(pending.discard)

    return A2ATool(
        spec.name,
        settings.card_url,
        description=spec.description,
        timeout=spec.call_timeout(),
        headers=load_headers(config.tool_headers_dir, spec.name) if settings.headers_secret_ref else {},
        budgets=Asked(
            budgets.max_steps if budgets else None,
            budgets.max_tokens if budgets else None,
            Decimal(budgets.max_cost) if budgets and budgets.max_cost else None,
        ),
        max_response_bytes=settings.max_response_bytes,
        connect_timeout=float(settings.connect_timeout_seconds),
        ledger=ReportedSpend(store.r, store.keys, prices_of(config).currency, config.result_ttl_seconds),
        progress=progress,
        trust=trust_of(config, spec),
    )


def mcp_server(config: RuntimeConfig, spec: Any) -> Any:
    """A source of the tools one MCP server lists. Imported here, not at the top: the SDK takes about
    a second to import, which fleets without MCP tools need not pay."""
    from agentfleet_runtime.tools.mcp import MCPServer

    settings = spec.mcp
    assert settings is not None
    return MCPServer(
        spec.name,
        url=settings.url,
        headers=load_headers(config.tool_headers_dir, spec.name) if settings.headers_secret_ref else {},
        command=settings.command,
        env=settings.env,
        description=spec.description,
        allow=settings.allow_tools,
        read_only=settings.read_only_tools,
        max_tools=settings.max_tools,
        timeout=spec.call_timeout(),
        hidden=secret_dirs(config),
        trust=trust_of(config, spec),
    )


def trust_of(config: RuntimeConfig, spec: Any) -> Trust:
    """The TLS trust of a tool's HTTPS connections: its caSecretRef's CA file (config.toolCaDir/<name>.pem)
    besides the system's, read here and again when it changes (tools/trust.py); an unusable file is
    logged and refused by the tool's calls with the field and the fix."""
    if spec.ca_ref() is None:
        return SYSTEM
    field = f"spec.tools[].{spec.settings_key()}.caSecretRef ({spec.name})"
    path = tool_ca_file(config.tool_ca_dir, spec.name) if config.tool_ca_dir else None
    trust = tool_trust(path, field) if path else Trust.refusing(f"{field}: the runtime config has no toolCaDir")
    if trust.problem:
        log.error("a tool's CA file is unusable", extra={"tool": spec.name, "error": trust.problem})
    return trust


def secret_dirs(config: RuntimeConfig) -> list[str]:
    """The directories of the worker's mounted Secret files: the tool headers and CAs, the tracing
    headers, the API's token hashes. A stdio MCP server reads none of them (tools/mcp.py JAIL)."""
    files = [config.tracing.headers_file if config.tracing else None, config.api.tokens_file]
    dirs = [config.tool_headers_dir, config.tool_ca_dir, *(os.path.dirname(f) for f in files if f)]
    return [d for d in dict.fromkeys(dirs) if d and d != "/"]
