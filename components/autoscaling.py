"""Autoscaling on load: SkyServe's ``replica_policy``, read once and handed to each platform's own autoscaler.

SkyServe's service spec scales between ``min_replicas`` and ``max_replicas`` so that each replica gets
``target_qps_per_replica`` requests per second (replicas = ceil(qps / target), qps over 60 s), after
``upscale_delay_seconds`` (300) of high load and ``downscale_delay_seconds`` (1200) of low load
(sky/serve/autoscalers.py, sky/serve/constants.py). Here the same keys drive the platform's autoscaler:
no controller of ours. Autoscaling is on when ``vllm:maxReplicas`` is set. What each platform makes of
each key is in docs/autoscaling.md; what it cannot honour, its platform refuses
(``platforms.Feature.SCALE_TO_ZERO``, ``AUTOSCALING_MULTI_NODE``, ``UPSCALE_DELAY``, ``DOWNSCALE_DELAY``,
``QUEUE_SCALING``).

Beside arrivals, ``vllm:targetQueuePerReplica`` scales on queue depth: the requests a replica holds, running
plus waiting (``vllm:num_requests_running + vllm:num_requests_waiting``), replicas = ceil(queue / target).
Finished requests saturate at a replica's capacity, so an overloaded replica never asks for help on them;
its queue goes on growing. Running is counted too: waiting alone drops to 0 as soon as the replicas keep up,
which would scale in the replicas that keep up, and it is the knee's concurrency that ``tools.bench``
measures per replica. vLLM production-stack and llm-d scale on queue depth. With both targets, each
platform runs the larger of the two counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from components import platforms, replica_shares
from components.config import PROJECT, ConfigReader, SpecError
from components.service_spec import Autoscaling, ServiceSpec

KEYS = (
    "minReplicas",
    "maxReplicas",
    "targetQpsPerReplica",
    "targetQueuePerReplica",
    "upscaleDelaySeconds",
    "downscaleDelaySeconds",
)
DEFAULT_MIN_REPLICAS = 1
#: The most replicas a stack may ask for, as for ``vllm:replicas``.
MAX_REPLICAS = 1000
#: The longest delay any platform's autoscaler can wait: the Kubernetes HPA's stabilizationWindowSeconds
#: (HPAScalingRules: 0 to 3600) and GCP's scale-in control time window, both one hour.
MAX_DELAY_SECONDS = 3600
#: What a VM cloud (GCP, AWS) says instead of autoscaling a multi-node replica, and where it can be had.
MULTI_NODE_ON_VMS = (
    "unset with vllm:nodes > 1 on a VM cloud (use vllm:replicas): a replica is a Ray head and its workers in "
    "groups of their own, which the cloud's group autoscaler cannot add or remove as one unit; on "
    "Kubernetes (vllm:cloud kubernetes) KEDA scales the LeaderWorkerSet by whole groups"
)


def read_autoscaling(read: ConfigReader, platform: platforms.Platform, nodes: int) -> Autoscaling | None:
    """The stack's ``replica_policy``, or None for a fixed ``vllm:replicas``; SpecError on a bad value or a
    bound the platform cannot honour."""
    maximum = read.integer("maxReplicas", None, minimum=1, maximum=MAX_REPLICAS)
    if maximum is None:
        for key in KEYS:
            if read.raw(key) is not None:
                raise SpecError(
                    f"{PROJECT}:{key}",
                    read.raw(key),
                    "set with vllm:maxReplicas (autoscaling is on when it is)",
                )
        return None
    if read.raw("replicas") is not None:
        raise SpecError(
            f"{PROJECT}:replicas",
            read.raw("replicas"),
            "unset with vllm:maxReplicas (the autoscaler owns the count between vllm:minReplicas and "
            "vllm:maxReplicas): pulumi config rm vllm:replicas",
        )
    minimum = read.integer("minReplicas", DEFAULT_MIN_REPLICAS, minimum=0, maximum=MAX_REPLICAS)
    if maximum < minimum:
        raise SpecError(f"{PROJECT}:maxReplicas", maximum, f">= vllm:minReplicas ({minimum})")
    target = read.number("targetQpsPerReplica", 0)
    queue = read.number("targetQueuePerReplica", 0)
    if target is None and queue is None:
        raise SpecError(
            f"{PROJECT}:targetQpsPerReplica",
            "",
            "a number > 0 with vllm:maxReplicas: the requests per second one replica should serve (or set "
            "vllm:targetQueuePerReplica, the requests running + waiting one replica should hold)",
        )
    if queue is not None and (instead := platform.refuse_unsupported(platforms.Feature.QUEUE_SCALING)):
        raise SpecError(f"{PROJECT}:targetQueuePerReplica", read.raw("targetQueuePerReplica"), instead)
    delays = {}
    for key in ("upscaleDelaySeconds", "downscaleDelaySeconds"):
        value = read.raw(key)
        delays[key] = read.integer(key, None, minimum=0, maximum=MAX_DELAY_SECONDS)
        if value is not None and (instead := platform.refuse_unsupported(_DELAY_FEATURES[key])) is not None:
            raise SpecError(f"{PROJECT}:{key}", value, instead)
    if nodes > 1 and (instead := platform.refuse_unsupported(platforms.Feature.AUTOSCALING_MULTI_NODE)):
        raise SpecError(f"{PROJECT}:maxReplicas", maximum, instead)
    if minimum == 0 and (instead := platform.refuse_unsupported(platforms.Feature.SCALE_TO_ZERO)) is not None:
        raise SpecError(f"{PROJECT}:minReplicas", minimum, instead)
    return Autoscaling(
        min_replicas=minimum,
        max_replicas=maximum,
        target_qps_per_replica=target,
        target_queue_per_replica=queue,
        upscale_delay=delays["upscaleDelaySeconds"],
        downscale_delay=delays["downscaleDelaySeconds"],
    )


def replaced_scaling_keys(stack_keys: set[str]) -> tuple[str, ...]:
    """Preset keys a stack's own choice of scaling replaces: its ``vllm:maxReplicas`` drops a preset's
    fixed ``vllm:replicas``, its ``vllm:replicas`` drops a preset's replica policy (both set by the stack
    itself are refused)."""
    fixed, bounded = "vllm:replicas", "vllm:maxReplicas"
    if bounded in stack_keys and fixed not in stack_keys:
        return (fixed,)
    if fixed in stack_keys and bounded not in stack_keys:
        return tuple(f"vllm:{key}" for key in KEYS if f"vllm:{key}" not in stack_keys)
    return ()


_DELAY_FEATURES = {
    "upscaleDelaySeconds": platforms.Feature.UPSCALE_DELAY,
    "downscaleDelaySeconds": platforms.Feature.DOWNSCALE_DELAY,
}


def replicas_output(spec: ServiceSpec) -> int | dict[str, int]:
    """The ``replicas`` stack output: the fixed count, or the autoscaler's bounds."""
    if spec.autoscaling is None:
        return spec.replicas
    return {"min": spec.autoscaling.min_replicas, "max": spec.autoscaling.max_replicas}


def bounds(spec: ServiceSpec) -> tuple[int, int] | None:
    """(min, max) replicas when the platform's autoscaler owns the count, for the operator tools."""
    if spec.autoscaling is None:
        return None
    return spec.autoscaling.min_replicas, spec.autoscaling.max_replicas


def cost_output(spec: ServiceSpec) -> float | dict[str, float] | None:
    """The ``costPerHour`` stack output: the catalog estimate, a ``{min, max}`` range when autoscaling
    (the max with the replicas the platform's autoscaler may run above ``vllm:maxReplicas``), None when
    unpriced; with a canary, both revisions' replicas."""
    if spec.canary is None:
        return _revision_cost(spec)
    costs = [_revision_cost(revision) for revision in spec.revisions]
    if any(cost is None for cost in costs):
        return None
    if spec.autoscaling is None:
        return round(sum(cost for cost in costs if isinstance(cost, float)), 2)
    ranges = [cost for cost in costs if isinstance(cost, dict)]
    return {bound: round(sum(cost[bound] for cost in ranges), 2) for bound in ("min", "max")}


def _revision_cost(spec: ServiceSpec) -> float | dict[str, float] | None:
    if spec.autoscaling is None:
        return replica_shares.cost_per_hour(spec)
    # At each bound every region's share on its market (components/replica_shares.py): the on-demand base at
    # on-demand prices, the rest at spot prices with spot, each at its region's price.
    at_least = replica_shares.cost_per_hour(replace(spec, replicas=spec.autoscaling.min_replicas))
    most = spec.autoscaling.max_replicas + platforms.get(spec.cloud).scale_out_surge(spec)
    at_most = replica_shares.cost_per_hour(replace(spec, replicas=most))
    if at_least is None or at_most is None:
        return None
    return {"min": at_least, "max": at_most}


Group = TypeVar("Group")


def autoscaled_groups(spec: ServiceSpec, replicas: Sequence[object], group_type: type[Group]) -> list[Group]:
    """Every group of a VM platform's autoscaled stack, checked to be a group of single-node replicas (the
    autoscalers scale them all, but for GCP's fixed on-demand base groups). The spec refuses autoscaling of
    multi-node replicas on VMs (``Feature.AUTOSCALING_MULTI_NODE``), so anything else is a bug."""
    groups = [group for group in replicas if isinstance(group, group_type)]
    if len(groups) != len(replicas) or not groups:
        raise ValueError(
            f"stack {spec.stack}: the spec refuses autoscaling of {spec.nodes}-node replicas on VMs "
            "(Feature.AUTOSCALING_MULTI_NODE), yet it reached the deployment"
        )
    return groups
