"""Multi-node replicas: one Ray cluster (a head and ``nodes - 1`` workers) per replica, in one zone.

The head's address must be known when the boot scripts are rendered (they are plain text, never Outputs)
and must survive the head's replacement. Each group therefore reserves a fixed internal IP, chosen from
the top of the stack's own subnet (away from the low addresses GCP hands out first), and the head's
managed group pins it to its one VM with a per-instance config: autohealing and updates recreate the head
under the same name with the same IP, and workers keep re-joining ``RAY_HEAD_ADDRESS`` until it answers.

With ``vllm:canary`` each revision slot has its own groups, names, network tags and head addresses, so
promoting a canary (swapping the slots' roles) changes none of them; the first slot's are the names and
addresses every stack had.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as compute

from components import vm
from components.autoscaling import MAX_REPLICAS
from components.gcp.identity import ServiceIdentity
from components.gcp.load_balancer import CONNECTION_DRAINING_SECONDS
from components.gcp.machine import (
    COMPACT_PLACEMENT_SERIES,
    PORT_NAME,
    VmRole,
    autohealing_check,
    autohealing_policy,
    instance_template,
    roll_timings,
    rollout_timeout,
)
from components.gcp.machine import machine_series as series_of
from components.gcp.names import autoname
from components.gcp.network import SUBNET_CIDR, Network
from components.gcp.registry import ImageMirror
from components.gcp.weight_cache import WeightCache
from components.launch import LaunchSpec
from components.service_spec import REVISIONS, ServiceSpec

#: This component's type token before it was renamed for what it is: the alias keeps the URNs of
#: existing stacks' resources (this component's and, through it, its children's), so nothing is replaced.
FORMER_TYPE = "vllm:gcp:RayGroup"


def head_address(index: int, revision: str = REVISIONS[0]) -> str:
    """The reserved internal IP of group ``index``'s head in revision slot ``revision``: counted down from
    the subnet's last usable address (GCP reserves the last two of every subnet), each slot in a block of
    its own of ``MAX_REPLICAS`` addresses (the first slot's on top), so two revisions' heads never collide
    and a promoted canary keeps its heads' addresses. Below both blocks, the subnet still holds a whole
    revision's workers (1000 replicas of 64 nodes) from the low addresses GCP hands out first."""
    return str(SUBNET_CIDR.broadcast_address - 2 - REVISIONS.index(revision) * MAX_REPLICAS - index)


@dataclass(frozen=True, kw_only=True)
class RayReplicaArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    network: Network
    identity: ServiceIdentity
    index: int  # which replica of its revision this group is
    zone: str
    previous: RayReplica | None = None  # the replica that rolls before this one
    mirror: ImageMirror | None = None  # where the VMs pull a Docker Hub image from
    weight_cache: WeightCache | None = None  # the stack's bucket of the model's files (vllm:weightCache)


class RayReplica(pulumi.ComponentResource):
    """One multi-node replica: a head MIG of one VM (the LB backend, autohealed on ``/health``) and a
    worker MIG of ``nodes - 1`` VMs, compactly placed in one zone, with Ray traffic open only inside the
    group.

    Both groups autoheal on the host health agent (Ray's ports stay closed to Google's checkers; only the
    agent's port is open to them). The head's agent mirrors vLLM's /health once it served; a worker's
    agent judges its Ray membership (a connection to the head's GCS port), allowing the load budget to
    join or re-join while a head is rebuilt. A worker that hangs or leaves the group is recreated; its
    loss also breaks the pipeline, so the head's /health fails and the head is rebuilt too.

    Attributes:
        tag: the network tag of this replica's VMs, which the firewall opens Ray traffic between.
        firewall: all protocols between this replica's own VMs, nothing from elsewhere.
        placement_policy: compact placement of its VMs (None on series without compact placement).
        head_ip: the head's reserved internal address (``RAY_HEAD_ADDRESS``), kept across head replacements.
        head_template, worker_template: the head's and the workers' instance templates.
        health_check: the health-agent check that autoheals both groups.
        head_group_manager: the zonal MIG of the one head VM; its instance group is the LB backend.
        head_instance: the per-instance config that pins ``head_ip`` to the head VM.
        worker_group_manager: the zonal MIG of the ``nodes - 1`` workers.
        instance_group: the head's instance group, for the load balancer's backend service.
        zone: the one zone of the replica's VMs.
    """

    tag: str
    firewall: compute.Firewall
    placement_policy: compute.ResourcePolicy | None
    head_ip: compute.Address
    head_template: compute.InstanceTemplate
    worker_template: compute.InstanceTemplate
    health_check: compute.HealthCheck
    head_group_manager: compute.InstanceGroupManager
    head_instance: compute.PerInstanceConfig
    worker_group_manager: compute.InstanceGroupManager
    instance_group: pulumi.Output[str]
    zone: str

    def __init__(self, name: str, args: RayReplicaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=FORMER_TYPE)])
        super().__init__("vllm:gcp:RayReplica", name, None, pulumi.ResourceOptions.merge(opts, renamed))
        spec, launch, index = args.spec, args.launch, args.index
        child = pulumi.ResourceOptions(parent=self)
        self.zone = args.zone
        # Named by the revision's slot (nothing in the first), like the group's component.
        base, address = spec.name + spec.revision_suffix, head_address(index, spec.revision)
        group = f"group {index}" + (f" of revision {spec.revision}" if spec.revision_suffix else "")
        self.tag = f"{base}-ray{index}"
        # Ray is unauthenticated and unencrypted: every port, but only between this group's own VMs.
        self.firewall = compute.Firewall(
            autoname(name, "ray"),
            network=args.network.network.id,
            direction="INGRESS",
            description=f"Ray and NCCL traffic inside {group} of vLLM stack {spec.stack} only",
            allows=[{"protocol": "tcp"}, {"protocol": "udp"}, {"protocol": "icmp"}],
            source_tags=[self.tag],
            target_tags=[self.tag],
            opts=child,
        )
        # Compact placement puts the group's VMs on one low-latency network block. No vm_count: GCP then
        # applies the policy to VMs created over time by two groups (head and workers) and on recreation.
        self.placement_policy = None
        if series_of(spec) in COMPACT_PLACEMENT_SERIES:
            self.placement_policy = compute.ResourcePolicy(
                autoname(name, "compact"),
                region=spec.region,
                description=f"Compact placement of Ray {group} of vLLM stack {spec.stack}",
                group_placement_policy={"collocation": "COLLOCATED"},
                opts=child,
            )
        placement = self.placement_policy.self_link if self.placement_policy is not None else None
        self.head_ip = compute.Address(
            autoname(name, "head-ip"),
            address_type="INTERNAL",
            purpose="GCE_ENDPOINT",
            region=spec.region,
            subnetwork=args.network.subnetwork.id,
            address=address,
            description=f"RAY_HEAD_ADDRESS of {group}: kept across head replacements",
            opts=child,
        )
        env = vm.ray_env(spec, address)
        self.head_template = instance_template(
            autoname(name, "head"),
            spec,
            launch,
            VmRole(
                role="ray-head",
                tags=[args.network.serving_tag, args.network.health_tag, self.tag],
                ray_env=env,
                placement_policy=placement,
            ),
            args.network,
            args.identity,
            args.mirror,
            child,
            weight_cache=args.weight_cache,
        )
        self.worker_template = instance_template(
            autoname(name, "worker"),
            spec,
            launch,
            VmRole(
                role="ray-worker",
                tags=[args.network.health_tag, self.tag],
                ray_env=env,
                placement_policy=placement,
            ),
            args.network,
            args.identity,
            args.mirror,
            child,
            weight_cache=args.weight_cache,
        )
        self.health_check = autohealing_check(autoname(name, "autoheal"), launch, child)
        head_name = f"{base}-r{index}-head"
        # Groups roll one after another: each waits for the previous group's roll (its head loaded, as far as
        # minReadySec allows), so an update never takes every replica down at once. `pulumi up` waits for
        # each roll, so the old templates it deletes afterwards are no longer in use.
        timeout = rollout_timeout(launch, 1, CONNECTION_DRAINING_SECONDS)
        rolling = pulumi.ResourceOptions.merge(
            child,
            pulumi.ResourceOptions(
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout, delete=timeout),
                depends_on=(
                    [args.previous.head_group_manager, args.previous.worker_group_manager]
                    if args.previous is not None
                    else []
                ),
            ),
        )
        # No target_size: the per-instance config below creates the one head (createInstances), and an
        # unset size is not reset by later updates.
        self.head_group_manager = compute.InstanceGroupManager(
            autoname(name, "head"),
            base_instance_name=head_name,
            zone=args.zone,
            versions=[{"name": "ray-head", "instance_template": self.head_template.self_link_unique}],
            named_ports=[{"name": PORT_NAME, "port": launch.port}],
            auto_healing_policies=autohealing_policy(self.health_check, launch),
            # A VM with a preserved IP can only be recreated in place, one down at a time.
            update_policy={
                "type": "PROACTIVE",
                "minimal_action": "REPLACE",
                "replacement_method": "RECREATE",
                "max_surge_fixed": 0,
                "max_unavailable_fixed": 1,
                "min_ready_sec": roll_timings(launch).min_ready_seconds,
            },
            wait_for_instances=True,
            wait_for_instances_status="UPDATED",
            opts=rolling,
        )
        self.head_instance = compute.PerInstanceConfig(
            f"{name}-head-instance",
            zone=args.zone,
            instance_group_manager=self.head_group_manager.name,
            name=head_name,
            preserved_state={
                "internal_ips": [
                    {
                        "interface_name": "nic0",
                        "auto_delete": "NEVER",
                        "ip_address": {"address": self.head_ip.id},
                    }
                ]
            },
            minimal_action="REPLACE",
            most_disruptive_allowed_action="REPLACE",
            remove_instance_on_destroy=True,
            opts=child,
        )
        workers = spec.nodes - 1
        self.worker_group_manager = compute.InstanceGroupManager(
            autoname(name, "workers"),
            base_instance_name=f"{base}-r{index}-worker",
            zone=args.zone,
            versions=[{"name": "ray-worker", "instance_template": self.worker_template.self_link_unique}],
            target_size=workers,
            auto_healing_policies=autohealing_policy(self.health_check, launch),
            # A Ray cluster cannot roll node by node across template versions: replace the workers together.
            update_policy={
                "type": "PROACTIVE",
                "minimal_action": "REPLACE",
                "max_surge_fixed": 0,
                "max_unavailable_fixed": workers,
            },
            wait_for_instances=True,
            wait_for_instances_status="UPDATED",
            opts=rolling,
        )
        self.instance_group = self.head_group_manager.instance_group
        self.register_outputs({"instanceGroup": self.instance_group, "headAddress": address})
