"""Autoscaling on load (``vllm:maxReplicas``): a regional autoscaler on each scaled managed group.

The scaled groups are the stack's groups (one per region with ``vllm:regions``) but for the fixed
on-demand base of a spot stack, whose groups keep their size (components/replica_shares.py): each has an
autoscaler between its region's share of the bounds. Every backend of the backend service, base groups
included, is in ``RATE`` mode at the same ``maxRatePerInstance``, so the load balancer fills base and
scaled VMs alike and a scaled group's utilization is what its own VMs get.

GCP's autoscaler scales a group on the load balancer's serving capacity: the backend service holds the
group in ``RATE`` balancing mode with ``maxRatePerInstance = vllm:targetQpsPerReplica`` (requests per second
a VM is meant to serve), and the autoscaler keeps the group's utilization (requests / capacity) at its
target. SkyServe's rule, replicas = ceil(qps / target), is a utilization target of 1.0; GCP's default 0.8
would run a quarter more replicas than asked for.

Queue depth (``vllm:targetQueuePerReplica``) is refused on GCP (``Feature.QUEUE_SCALING``). The Ops Agent
writes vLLM's Prometheus metrics with the ``prometheus_target`` monitored resource ("Collect Prometheus
metrics", cloud.google.com/stackdriver/docs/solutions/agents/ops-agent/prometheus: ingested as
prometheus.googleapis.com metrics). The autoscaler reads a metric per instance only from ``gce_instance``;
any other resource type is a per-group metric (compute API, AutoscalingPolicyCustomMetricUtilization
``filter``), and "regional MIGs don't support autoscaling using per-group metrics" ("Distributing instances
by using regional MIGs", Limitations; both read 2026-12); this program's groups are regional.

How the other keys map (docs/autoscaling.md):

- ``upscaleDelaySeconds``: none. GCP adds VMs as soon as utilization is over target (refused when set,
  ``Feature.UPSCALE_DELAY``).
- ``downscaleDelaySeconds``: scale-in controls. ``maxScaledInReplicas`` is how far the group may fall below
  the peak recommendation of the trailing ``timeWindowSec`` (compute API, AutoscalingPolicyScaleInControl).
  0 of it would be SkyServe's downscale delay (shrink only once the load has been lower for the whole
  window), but terraform-provider-google drops a 0 (``tpgresource.IsEmptyValue``: the expander of
  ``max_scaled_in_replicas.percent`` and ``.fixed`` skips an empty value, and then the empty
  ``maxScaledInReplicas`` itself), so 0 never reaches the API. The smallest limit it sends is ``fixed: 1``:
  one VM may leave as soon as the load falls, the rest only once it has been lower for the whole window.
  GCP's own stabilization (the peak of the last 10 minutes, "Understanding autoscaler decisions") still
  applies under it, so a delay shorter than 600 s acts as 600 s; a delay of 0 asks for no control at all.
- The initialization period (``coolDownPeriodSec``) is the replica's load budget: the autoscaler ignores a
  VM's usage while it is initializing, and a VM that is still loading serves nothing. The program keeps it
  within 3600 s, so a stack whose budget is longer is refused autoscaling (``check_initialization``)
  rather than letting a VM that still loads count as initialized, which would over-scale the group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as compute

from components.config import PROJECT, SpecError
from components.gcp.names import autoname
from components.launch import LaunchSpec
from components.service_spec import Autoscaling, ServiceSpec

#: Utilization of the serving capacity (RATE: maxRatePerInstance per VM) the autoscaler holds the group at.
UTILIZATION_TARGET = 1.0
#: The initialization period is kept within the 3600 s GCP allows for the group's other per-VM waits
#: (autohealing initialDelaySec, minReadySec; components/gcp/machine.py): its reference documents the field
#: (default 60 s) without a bound of its own, and terraform-provider-google validates none either
#: (resource_compute_region_autoscaler.go, ``cooldown_period``), so no larger value is known to be accepted.
MAX_INITIALIZATION_SECONDS = 3600
#: The scale-in limit under the downscale delay: the smallest terraform-provider-google sends (module
#: docstring: a 0 is dropped as empty). "fixed" must be positive (the SDK's docstring).
MAX_SCALED_IN_REPLICAS = 1


def initialization_seconds(launch: LaunchSpec) -> int:
    """From a new VM's creation until it is expected to serve: the launch spec's estimate
    (``check_initialization`` refuses autoscaling where it exceeds what the initialization period can
    hold). Not the budget: a slower start is not killed for it, the autoscaler only reads it sooner."""
    return launch.probes.expected_startup_seconds


def check_initialization(spec: ServiceSpec, launch: LaunchSpec) -> None:
    """Refuse to autoscale a replica whose estimated load exceeds the initialization period: the autoscaler
    would read a VM that still loads (and serves nothing) as initialized, find the group's utilization
    high, and add VMs the load does not need, each of which again loads as long."""
    budget = launch.probes.expected_startup_seconds
    if spec.autoscaling is None or budget <= MAX_INITIALIZATION_SECONDS:
        return
    raise SpecError(
        f"{PROJECT}:maxReplicas",
        spec.autoscaling.max_replicas,
        f"unset on GCP for a replica whose estimated load is {budget} s: GCP's autoscaler ignores a new VM "
        f"for its initialization period, which this program keeps within {MAX_INITIALIZATION_SECONDS} s, so "
        "a VM still loading would count as serving and the group would over-scale; use a fixed vllm:replicas "
        "or a model that loads within that",
    )


def serving_backend(spec: ServiceSpec, group: pulumi.Input[str]) -> compute.BackendServiceBackendArgsDict:
    """One serving group behind the backend service, filled by request rate when the stack autoscales (its
    serving capacity is what the autoscaler scales on), else by utilization, which needs no rate. Every
    backend of an autoscaled stack, a fixed base group's too, takes the same mode and rate. The compute
    API's Platform.balancingMode says "Backends must use compatible balancing modes" (its later revisions
    add that a backend service's backends may use different ones); one mode is compatible under either
    reading, and one rate per VM gives base and scaled VMs the same share of the load, so the scaled
    groups' utilization is the stack's load per VM."""
    if spec.autoscaling is None:
        return {"group": group, "balancing_mode": "UTILIZATION", "capacity_scaler": 1.0}
    return {
        "group": group,
        "balancing_mode": "RATE",
        "max_rate_per_instance": spec.autoscaling.target_qps_per_replica,
        "capacity_scaler": 1.0,
    }


def autoscaling_policy(
    policy: Autoscaling, launch: LaunchSpec
) -> compute.RegionAutoscalerAutoscalingPolicyArgsDict:
    args: compute.RegionAutoscalerAutoscalingPolicyArgsDict = {
        "mode": "ON",
        "min_replicas": policy.min_replicas,
        "max_replicas": policy.max_replicas,
        "cooldown_period": initialization_seconds(launch),
        "load_balancing_utilization": {"target": UTILIZATION_TARGET},
    }
    # The downscale delay as scale-in controls (module docstring); a delay of 0 asks for none, and the
    # provider would drop its timeWindowSec of 0 as empty anyway.
    if policy.downscale_delay_seconds:
        args["scale_in_control"] = {
            "max_scaled_in_replicas": {"fixed": MAX_SCALED_IN_REPLICAS},
            "time_window_sec": policy.downscale_delay_seconds,
        }
    return args


@dataclass(frozen=True, kw_only=True)
class ScaledGroup:
    """A managed group an autoscaler owns the size of."""

    name: str  # the group's component name; its autoscaler is ``<name>-autoscaler``, unique per group
    spec: ServiceSpec  # the stack's spec as the group sees it: its region and its own bounds
    group_manager: compute.RegionInstanceGroupManager


@dataclass(frozen=True, kw_only=True)
class AutoscalerArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    groups: Sequence[ScaledGroup]


class Autoscaler(pulumi.ComponentResource):
    """Each scaled group's size between its bounds (its region's share of ``vllm:minReplicas`` and
    ``vllm:maxReplicas``), owned by GCP's autoscaler.

    Attributes:
        autoscalers: one regional autoscaler per scaled group, in the groups' order.
    """

    autoscalers: list[compute.RegionAutoscaler]

    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:gcp:Autoscaler", name, None, opts)
        spec = args.spec
        if spec.autoscaling is None:
            raise ValueError(f"stack {spec.stack} does not autoscale")
        self.autoscalers = []
        for group in args.groups:
            policy = group.spec.autoscaling
            if policy is None:
                raise ValueError(f"stack {spec.stack}: group {group.name} has a fixed size")
            self.autoscalers.append(
                compute.RegionAutoscaler(
                    autoname(group.name, "autoscaler"),
                    region=group.spec.region,
                    target=group.group_manager.id,
                    description=(
                        f"vLLM stack {spec.stack}: {policy.target_qps_per_replica:g} requests/s per VM"
                    ),
                    autoscaling_policy=autoscaling_policy(policy, args.launch),
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        self.register_outputs({"autoscalers": [autoscaler.self_link for autoscaler in self.autoscalers]})
