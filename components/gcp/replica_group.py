"""Single-node replicas: one regional managed instance group of identical GPU VMs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as compute

from components.gcp.identity import ServiceIdentity
from components.gcp.load_balancer import CONNECTION_DRAINING_SECONDS
from components.gcp.machine import (
    PORT_NAME,
    VmRole,
    autohealing_check,
    autohealing_policy,
    instance_template,
    reservation_affinity,
    roll_timings,
    rollout_timeout,
)
from components.gcp.names import autoname
from components.gcp.network import Network
from components.gcp.registry import ImageMirror
from components.gcp.weight_cache import WeightCache
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: This component's type token before it was renamed for what it is: the alias keeps the URNs of
#: existing stacks' resources (this component's and, through it, its children's), so nothing is replaced.
FORMER_TYPE = "vllm:gcp:VllmReplica"


def update_policy(
    zone_count: int, launch: LaunchSpec, reserved: bool = False
) -> compute.RegionInstanceGroupManagerUpdatePolicyArgsDict:
    """Replace VMs proactively, adding the new one before removing the old (never below ``replicas``),
    and removing an old VM only once its replacement had the load budget (minReadySec) to load.

    A regional group's fixed surge must be 0 or at least its number of zones, so the smallest safe surge
    is one VM per zone. Proactive redistribution stays off: it would delete healthy GPU VMs to even out
    zones, and GPU capacity is zone-scarce.

    A group whose VMs consume a specific reservation (``reserved``) rolls without surge instead: such a VM
    fails rather than falling back to other capacity when the reservation is full (compute API,
    ReservationAffinity SPECIFIC_RESERVATION; GCP "Consume reserved instances"), so a surge VM would need a
    free reserved slot, and with a reservation sized to the group every roll would stall until ``up`` timed
    out. It removes one old VM first (the group is in the reservation's one zone, so 1 is a valid fixed
    maxUnavailable) and creates its replacement in the slot it freed: one replica fewer serves meanwhile.
    """
    return {
        "type": "PROACTIVE",
        "minimal_action": "REPLACE",
        "max_surge_fixed": 0 if reserved else zone_count,
        "max_unavailable_fixed": 1 if reserved else 0,
        "replacement_method": "SUBSTITUTE",
        "instance_redistribution_type": "NONE",
        "min_ready_sec": roll_timings(launch).min_ready_seconds,
    }


def rollout_steps(replicas: int, zone_count: int) -> int:
    """Waves of a roll that replaces one VM per zone at a time (a reserved group is in one zone)."""
    return math.ceil(replicas / zone_count)


@dataclass(frozen=True, kw_only=True)
class ReplicaGroupArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    network: Network
    identity: ServiceIdentity
    zones: Sequence[str]  # zones of spec.region that sell the machine (or the pinned gcp:zone)
    mirror: ImageMirror | None = None  # where the VMs pull a Docker Hub image from
    subnetwork: pulumi.Input[str] | None = None  # the region's subnet when not the stack's own
    base_instance_name: str | None = None  # VM name prefix when several groups share a zone
    weight_cache: WeightCache | None = None  # the stack's bucket of the model's files (vllm:weightCache)


class ReplicaGroup(pulumi.ComponentResource):
    """``spec.replicas`` VMs, each a whole vLLM server, spread over the zones that sell the machine and
    recreated when ``/health`` fails after the model's load budget.

    Attributes:
        template: the instance template of every VM of the group.
        health_check: the autohealing check on each VM.
        group_manager: the regional MIG of ``spec.replicas`` VMs.
        instance_group: its instance group, the load balancer's backend.
    """

    template: compute.InstanceTemplate
    health_check: compute.HealthCheck
    group_manager: compute.RegionInstanceGroupManager
    instance_group: pulumi.Output[str]

    def __init__(self, name: str, args: ReplicaGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=FORMER_TYPE)])
        super().__init__("vllm:gcp:ReplicaGroup", name, None, pulumi.ResourceOptions.merge(opts, renamed))
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        self.health_check = autohealing_check(autoname(name, "autoheal"), args.launch, child)
        steps = rollout_steps(spec.max_replicas, len(args.zones))
        timeout = rollout_timeout(args.launch, steps, CONNECTION_DRAINING_SECONDS)
        self.template = instance_template(
            autoname(name, "template"),
            spec,
            args.launch,
            VmRole(role="serve", tags=[args.network.serving_tag, args.network.health_tag]),
            args.network,
            args.identity,
            args.mirror,
            child,
            subnetwork=args.subnetwork,
            weight_cache=args.weight_cache,
        )
        self.group_manager = compute.RegionInstanceGroupManager(
            autoname(name, "mig"),
            base_instance_name=args.base_instance_name or spec.name,
            region=spec.region,
            versions=[{"name": "vllm", "instance_template": self.template.self_link_unique}],
            target_size=spec.replicas,
            distribution_policy_zones=list(args.zones),
            # Place VMs where capacity is, as evenly as it allows (needs redistribution NONE).
            distribution_policy_target_shape="BALANCED",
            named_ports=[{"name": PORT_NAME, "port": args.launch.port}],
            auto_healing_policies=autohealing_policy(self.health_check, args.launch),
            update_policy=update_policy(
                len(args.zones), args.launch, reserved=reservation_affinity(spec) is not None
            ),
            # `pulumi up` returns once the roll is done, so the old template it then deletes is no longer in
            # use (GCP refuses to delete a template a group uses), and a roll that fails fails `up`.
            wait_for_instances=True,
            wait_for_instances_status="UPDATED",
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout, delete=timeout),
                    # With an autoscaler the size is its own: targetSize "will fight with autoscaler settings
                    # when set" and defaults to 0 (the SDK's docstring), so it is set once, on create.
                    ignore_changes=["targetSize"] if spec.autoscaling is not None else None,
                ),
            ),
        )
        self.instance_group = self.group_manager.instance_group
        self.register_outputs({"instanceGroup": self.instance_group})
