"""agentfleet_sim: a vLLM replica simulator for tests and benchmarks.

One process serves many simulated vLLM replicas (OpenAI API + vLLM's /metrics names), each on
its own 127.0.0.1 port, or runs them in-process on a simulated clock for fast offline
benchmarks. The engine core (engine.py, kv_cache.py, stats.py) is pure and clock-free; the
asyncio runner, the replica front end and the aiohttp server are thin layers over it.

    from agentfleet_sim import start_fleet
    with start_fleet(3, engine={"prefill_tokens_per_s": 50_000}) as fleet:
        urls = [r.base_url for r in fleet.replicas]

    from agentfleet_sim import run_virtual, start_replicas
    async def bench():
        replicas = await start_replicas(4)
        done = await replicas[0].generate(list(range(1000)), max_tokens=100)
    run_virtual(bench())
"""

from .clock import LoopClock, ManualClock, VirtualTimeLoop, run_virtual
from .config import EngineConfig, FaultConfig, FleetConfig, ReplicaConfig, fleet_config_from_dict, load_fleet_config
from .engine import Engine, RequestTooLong, SimRequest, StepResult, TokenEvent
from .exposition import make_registry, render_metrics
from .fleet import Fleet, FleetThread, ReplicaHandle, fleet_config, serve_fleet, start_fleet, start_replicas
from .kv_cache import HashedPrompt
from .metrics_spec import Flavor, exposed_names, metric_specs
from .openai_api import ApiError
from .quirks import BEHAVIOURS, INDEPENDENT_ENGINE, LLM_D_SIM, Quirks
from .replica import Replica
from .runner import Completion, EngineRunner
from .server import ReplicaServer
from .stats import EngineStats, Histogram
from .tokenizer import ChatTokenizer, tokenize_text

__all__ = [
    "ApiError",
    "BEHAVIOURS",
    "ChatTokenizer",
    "Completion",
    "Engine",
    "EngineConfig",
    "EngineRunner",
    "EngineStats",
    "FaultConfig",
    "Flavor",
    "Fleet",
    "FleetConfig",
    "FleetThread",
    "HashedPrompt",
    "Histogram",
    "INDEPENDENT_ENGINE",
    "LLM_D_SIM",
    "LoopClock",
    "ManualClock",
    "Quirks",
    "Replica",
    "ReplicaConfig",
    "ReplicaHandle",
    "ReplicaServer",
    "RequestTooLong",
    "SimRequest",
    "StepResult",
    "TokenEvent",
    "VirtualTimeLoop",
    "exposed_names",
    "fleet_config",
    "fleet_config_from_dict",
    "load_fleet_config",
    "make_registry",
    "metric_specs",
    "render_metrics",
    "run_virtual",
    "serve_fleet",
    "start_fleet",
    "start_replicas",
    "tokenize_text",
]
