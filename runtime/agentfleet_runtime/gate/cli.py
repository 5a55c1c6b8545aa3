"""``python -m agentfleet_runtime gate``: the arguments the operator renders into the gate's Job,
the two runtime documents read and checked, and the run. Exit 0: the sample is done or a budget
stopped it (the operator decides); 2: an argument or document is wrong (a retry cannot help); 1:
the Kubernetes API or Redis failed (the Job's retry resumes from the results ConfigMap)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping

from agentfleet_contract.gate import (
    BASELINE_FLEET_SUFFIX,
    CANDIDATE_FLEET_SUFFIX,
    GATE_KEY_ENV,
    GateResultsError,
    Version,
    pending,
)
from agentfleet_contract.runtime_config import RuntimeConfig
from agentfleet_eval.taskset import TaskSetError, load_taskset
from pydantic import ValidationError

from agentfleet_runtime.core.config import load_config
from agentfleet_runtime.gate.results import KubeError, ResultsMap
from agentfleet_runtime.gate.run import (
    Budget,
    GateError,
    Runner,
    deadline_of,
    judge_of,
    settle_sample,
    tasks_of,
    write_judge,
)
from agentfleet_runtime.gate.tasks import Side

log = logging.getLogger("agentfleet_runtime.gate")


def check_args(args: argparse.Namespace) -> None:
    for name in ("sample", "seed", "max_tokens"):
        if getattr(args, name) < 0:
            raise GateError(f"--{name.replace('_', '-')} must be 0 or more")
    if args.concurrency < 1:
        raise GateError("--concurrency must be 1 or more")
    if args.timeout_seconds <= 0:
        raise GateError("--timeout-seconds must be more than 0")


def load_versions(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> dict[Version, RuntimeConfig]:
    """Both runtime documents, with the environment's overrides (the Redis password) but never
    AGENTFLEET_FLEET: each document's fleet name is what keeps the versions' streams apart."""
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "AGENTFLEET_FLEET"}
    want: dict[Version, tuple[str, str]] = {
        "current": (args.current_config, args.fleet + BASELINE_FLEET_SUFFIX),
        "candidate": (args.candidate_config, args.fleet + CANDIDATE_FLEET_SUFFIX),
    }
    out: dict[Version, RuntimeConfig] = {}
    for version, (path, fleet) in want.items():
        flag = f"--{version}-config"
        try:
            config = load_config(path, env=env)
        except (OSError, ValueError, ValidationError) as e:
            raise GateError(f"{flag} {path}: {e}") from e
        if config.fleet != fleet:
            raise GateError(
                f"{flag} {path} names the fleet {config.fleet!r}; the {version} version of --fleet {args.fleet} is "
                f"{fleet!r} (each version's keys and task stream must be its own, apart from the serving workers')"
            )
        out[version] = config
    return out


def gate_key(env: Mapping[str, str] | None = None) -> bytes:
    """The gate's key, from the Secret the operator made for this gate (GATE_KEY_ENV): every
    result is written signed with it, and only what verifies under it is read back."""
    value = (os.environ if env is None else env).get(GATE_KEY_ENV, "")
    if not value:
        raise GateError(
            f"{GATE_KEY_ENV} is not set: the Job takes the gate's key from the Secret the operator creates with "
            "its results ConfigMap (same name); a gate without it cannot sign its results"
        )
    return value.encode()


async def run(args: argparse.Namespace) -> int:
    try:
        check_args(args)
        key = gate_key()
        configs = load_versions(args)
        taskset = load_taskset(args.task_set)
        judge = judge_of(args.task_set)
    except (GateError, TaskSetError, OSError) as e:
        log.error("the gate cannot run: %s", e)
        return 2
    results = ResultsMap(args.kube_api, args.namespace, args.results_configmap, args.kube_token_file, args.kube_ca)
    sides = {version: Side.open(version, config, args.side_effects) for version, config in configs.items()}
    started = time.monotonic()
    try:
        async with results:
            sample, done, created = await settle_sample(results, taskset, args.part, args.sample, args.seed, key)
            await write_judge(results, key, judge)
            tasks = tasks_of(taskset, sample)
            missing = pending(sample, done)
            budget = Budget(deadline_of(created, args.timeout_seconds, time.time()), args.max_tokens)
            runner = Runner(sides, results, args.results_configmap, budget, key)
            runner.spent = sum(r.tokens for r in done)
            log.info(
                "gate starts",
                extra={"sample": len(sample), "done": len(done), "missing": len(missing), "tokens": runner.spent},
            )
            await runner.run(tasks, missing, args.concurrency)
            log.info(
                "gate stops",
                extra={
                    "written": runner.written,
                    "missing": len(missing) - runner.written,
                    "tokens": runner.spent,
                    "seconds": round(time.monotonic() - started, 1),
                },
            )
            return 0
    except (GateError, GateResultsError) as e:
        log.error("the gate cannot run: %s", e)
        return 2
    except KubeError as e:
        log.error("the gate stopped: %s", e)
        return 1
    except Exception:  # Redis gone past its retries, ...: the Job's next try resumes
        log.exception("the gate stopped")
        return 1
    finally:
        for side in sides.values():
            await side.close()


async def main(args: argparse.Namespace) -> int:
    """``run`` until it ends or SIGTERM: a stopped Job leaves its tasks running (not cancelled), so
    the next start finds them by their Idempotency-Keys."""
    work = asyncio.ensure_future(run(args))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, work.cancel)
    try:
        return await work
    except asyncio.CancelledError:
        log.info("gate stopped by a signal; a restart resumes it")
        return 143
