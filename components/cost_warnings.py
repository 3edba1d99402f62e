"""Warnings where a stack's values are legal but costly: the spec accepts them, and says what they cost.

- A top cost (every replica up to ``vllm:maxReplicas``, or the fixed ``vllm:replicas``) above
  ``TOP_COST_WARN_HOURLY``: a typo such as ``maxReplicas: 1000`` of H100:8 machines is a bill of tens of
  thousands of dollars an hour once the load arrives.
- A replica whose GPU memory is many times the model's weights (``OVERSIZE_FACTOR``): a 0.6B model on
  H100:8 machines pays for GPUs it cannot use.
- Spot capacity on a machine the catalog has no spot price for: the plan's total is ``$-``, the cost unknown.

Prices are the catalog's (components/catalog.py says where each comes from, with its date).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from components import replica_shares

if TYPE_CHECKING:
    from components.service_spec import ServiceSpec

#: The top hourly cost above which the spec warns: more than the costliest preset at its own size
#: (2 replicas of H100:8 on GCP, about $176/h by the catalog), by a margin.
TOP_COST_WARN_HOURLY = 500.0
#: A replica whose GPU memory is this many times the model's weights holds it with room to spare for
#: any KV cache: fewer or smaller GPUs serve it.
OVERSIZE_FACTOR = 8
HOURS_PER_MONTH = 730


def warn_costly(spec: ServiceSpec, weights_gb: int | None, warn: Callable[[str], None]) -> None:
    """Warn (``warn``, pulumi.log.warn in the program) about each costly choice in ``spec``; ``weights_gb``
    is the model's size where known."""
    offering = spec.offering
    if offering is None or spec.gpu is None:
        return
    top = replica_shares.cost_per_hour(replace(spec, replicas=spec.max_replicas))
    if top is not None and top > TOP_COST_WARN_HOURLY:
        key = "maxReplicas" if spec.autoscaling is not None else "replicas"
        warn(
            f"{spec.max_replicas} replica(s) of {spec.nodes} x {offering.machine_type} ({spec.gpu}) cost "
            f"up to ${top:,.0f}/h (${top * HOURS_PER_MONTH:,.0f} a month) at the catalog's prices: check "
            f"vllm:{key}"
        )
    memory = offering.gpu_memory_gb * spec.nodes
    if weights_gb and spec.gpus_per_replica > 1 and memory >= OVERSIZE_FACTOR * weights_gb:
        warn(
            f"{spec.model}'s {weights_gb} GB of weights use {weights_gb / memory:.1%} of a replica's "
            f"{memory} GB of GPU memory ({spec.nodes} x {spec.gpu}): fewer or smaller GPUs in vllm:gpu "
            "serve it for less"
        )
    if spec.spot:
        unpriced = [
            share.region or "its region"
            for share in replica_shares.shares(spec)
            if share.spot and offering.hourly(True, share.region) is None
        ]
        if unpriced:
            warn(
                f"vllm:spot true: the catalog has no spot price for {offering.machine_type} in "
                f"{', '.join(unpriced)}, so the stack's cost is unknown (the plan shows $-); spot prices "
                "move daily, check the cloud's console"
            )
