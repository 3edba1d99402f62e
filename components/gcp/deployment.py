"""What a GCP stack declares: ``build`` (see the package docstring for the resources and why)."""

from __future__ import annotations

import pulumi
import pulumi_gcp

from components import vm
from components.gcp.apis import ProjectApis, ProjectApisArgs
from components.gcp.backend import settings
from components.gcp.identity import ServiceIdentity, ServiceIdentityArgs
from components.gcp.load_balancer import LoadBalancer, LoadBalancerArgs
from components.gcp.machine import check_rollout_budget
from components.gcp.network import Network, NetworkArgs
from components.gcp.ray_replica import RayReplica, RayReplicaArgs
from components.gcp.registry import ImageMirror, ImageMirrorArgs, docker_hub_path
from components.gcp.replica_group import ReplicaGroup, ReplicaGroupArgs
from components.launch import launch_spec
from components.service import Deployment, Secrets
from components.spec import ServiceSpec


def serving_zones(spec: ServiceSpec) -> tuple[str, ...]:
    """The pinned ``gcp:zone``, else every zone of the region that sells the machine (spec.py checks both)."""
    zone = settings(spec).zone
    return (zone,) if zone is not None else tuple(vm.vm_offering(spec).zones[vm.vm_region(spec)])


def check(spec: ServiceSpec) -> None:
    """GCP's own limits on a spec, checked before any resource is declared (spec.load_spec calls it)."""
    check_rollout_budget(spec, launch_spec(spec, has_hf_token=False))


def build(spec: ServiceSpec, secrets: Secrets, parent: pulumi.ComponentResource) -> Deployment:
    zones = serving_zones(spec)
    launch = launch_spec(spec, has_hf_token=secrets.hf_token is not None)
    # The APIs are enabled through a provider of their own, and the stack's provider depends on them: every
    # resource of the stack waits for its APIs on a fresh project (children do not inherit depends_on).
    apis_provider = pulumi_gcp.Provider(
        "gcp-apis",
        project=settings(spec).project,
        region=spec.region,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    apis = ProjectApis(
        spec.name, ProjectApisArgs(spec=spec), pulumi.ResourceOptions(parent=parent, provider=apis_provider)
    )
    provider = pulumi_gcp.Provider(
        "gcp",
        project=settings(spec).project,
        region=spec.region,
        zone=settings(spec).zone,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(apis.services.values())),
    )
    # Each component passes the provider on to its children (and its lookups), which name none themselves.
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    network = Network(spec.name, NetworkArgs(spec=spec), opts)
    identity = ServiceIdentity(
        spec.name,
        ServiceIdentityArgs(spec=spec, api_key=secrets.api_key, hf_token=secrets.hf_token),
        opts,
    )
    mirror = None
    if docker_hub_path(spec.image) is not None:
        mirror = ImageMirror(spec.name, ImageMirrorArgs(spec=spec, identity=identity), opts)
    replicas: list[ReplicaGroup] | list[RayReplica] = []
    if spec.nodes == 1:
        replicas = [
            ReplicaGroup(
                spec.name,
                ReplicaGroupArgs(
                    spec=spec,
                    launch=launch,
                    network=network,
                    identity=identity,
                    zones=zones,
                    mirror=mirror,
                ),
                opts,
            )
        ]
    else:
        # Replicas take the region's zones in turn, so they do not share one zone's fate.
        for index in range(spec.replicas):
            previous = replicas[-1] if replicas else None
            replicas.append(
                RayReplica(
                    f"{spec.name}-r{index}",
                    RayReplicaArgs(
                        spec=spec,
                        launch=launch,
                        network=network,
                        identity=identity,
                        index=index,
                        zone=zones[index % len(zones)],
                        previous=previous,
                        mirror=mirror,
                    ),
                    opts,
                )
            )
    load_balancer = LoadBalancer(
        spec.name,
        LoadBalancerArgs(
            spec=spec, launch=launch, instance_groups=[replica.instance_group for replica in replicas]
        ),
        opts,
    )
    return Deployment(
        endpoint=load_balancer.endpoint, load_balancer=load_balancer, replicas=replicas, network=network
    )
