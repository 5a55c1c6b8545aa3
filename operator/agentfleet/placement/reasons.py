"""Why a replica stays unplaced: the condition reason (NoEligibleNodes, NoTopologyBlock,
InsufficientGPUs, SpreadConstraint) and a message that names the numbers a user can act on."""

from __future__ import annotations

from agentfleet.placement.eligibility import Pool
from agentfleet.placement.inventory import Ledger
from agentfleet.placement.spread import Spread
from agentfleet.placement.types import ReplicaNeeds


def largest_free(lg: Ledger, p: Pool) -> tuple[int, str | None]:
    best, where = 0, None
    for i in p.nodes:
        if lg.free[i] > best or (lg.free[i] == best and where is not None and lg.nodes[i].name < where):
            best, where = lg.free[i], lg.nodes[i].name
    return best, where


def why_not(
    lg: Ledger, spread: Spread, d: ReplicaNeeds, p: Pool, shape: tuple[int, int, bool] | None
) -> tuple[str, str]:
    """(reason, message) for a replica needing d that no node set of pool p can take."""
    keys = lg.keys or d.keys
    excluded = ", ".join(f"{n} {why}" for why, n in sorted(p.excluded.items(), key=lambda kv: (-kv[1], kv[0])))
    if not p.nodes:
        return (
            "NoEligibleNodes",
            f"needs {d.what()} but no node qualifies: of {len(lg.nodes)} nodes, {excluded or 'none exist'}",
        )
    if shape is None:
        return "NoEligibleNodes", f"needs {d.what()} but no eligible node has any"
    pods, per, nvlink = shape
    big, where = largest_free(lg, p)
    free_total = sum(lg.free[i] for i in p.nodes)
    tail = f" ({p.total} eligible nodes, {free_total} free GPUs in all"
    tail += f"; excluded: {excluded})" if excluded else ")"
    if pods == 1:
        head = f"needs {d.what()} in one nvlink domain (one node)"
        if d.spread_mode == "Required" and d.spread_across != "None" and big >= per:
            spread_msg = (
                f"spread Required across {d.spread_across} leaves no allowed domain with room: "
                f"{spread_text(lg, spread, d, p, per)}"
            )
            return "SpreadConstraint", f"{head}; {spread_msg}{tail}"
        room = f"the largest free block is {big} on node {where}" if where else "no eligible node has a free GPU"
        return "InsufficientGPUs", f"{head}; {room}{tail}"
    unit = f"one {keys.nvlink} domain of one {keys.block} block" if nvlink else f"one topology block ({keys.block})"
    head = (
        f"needs {pods} nodes x {d.what(per)} ({d.gpus} GPUs, TP {d.tensor_parallel} x PP {d.pipeline_parallel}) in "
        f"{unit}"
    )
    if not p.block_nodes:
        return "NoTopologyBlock", f"{head}; no eligible node carries the {keys.block} label" + tail
    bb, bn = None, -1
    for b, members in sorted(p.block_nodes.items()):
        n = sum(1 for i in members if lg.free[i] >= per)
        if n > bn:
            bb, bn = b, n
    msg = f"{head}; the best block is {bb} with {bn} of {pods} nodes having >= {per} free GPUs"
    msg += f"; the largest free block is {big} on node {where}" if where else ""
    if bn >= pods and d.spread_mode == "Required" and d.spread_across != "None":
        return (
            "SpreadConstraint",
            (
                f"{head}; spread Required across {d.spread_across} leaves no allowed domain with room: "
                f"{spread_text(lg, spread, d, p, per)}"
            )
            + tail,
        )
    return "InsufficientGPUs", msg + tail


def spread_text(lg: Ledger, spread: Spread, d: ReplicaNeeds, p: Pool, per: int) -> str:
    if d.spread_across == "Zone":
        counts = spread.zone_count[d.owner]
        zones = sorted({lg.zone_of[i] for i in p.nodes if lg.cap[i] >= per})
        return ", ".join(f"{z or '(no zone)'} holds {counts[z]}" for z in zones)
    counts_n = spread.node_count[d.owner]
    full = sum(1 for i in p.nodes if counts_n[i])
    return f"{full} of {p.total} eligible nodes already hold a replica of {d.owner}"
