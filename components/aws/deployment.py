"""What a AWS stack declares: ``build`` (see the package docstring for the resources and why)."""

from __future__ import annotations

import pulumi
from pulumi_aws import Provider

from components.aws.identity import ServiceIdentity, ServiceIdentityArgs
from components.aws.load_balancer import LoadBalancer, LoadBalancerArgs
from components.aws.machines import machine_image, stack_tags
from components.aws.monitoring import ServiceDashboard, ServiceDashboardArgs
from components.aws.network import Network, NetworkArgs
from components.aws.ray_group import RayGroup, RayGroupArgs
from components.aws.replica import VllmReplica, VllmReplicaArgs
from components.launch import LaunchSpec, launch_spec
from components.observe import RAY_HEAD, RAY_WORKER, SERVE, Group, ReplicaSource
from components.service import Deployment, Secrets
from components.spec import ServiceSpec


def build(spec: ServiceSpec, secrets: Secrets, parent: pulumi.ComponentResource) -> Deployment:
    launch = launch_spec(spec, has_hf_token=secrets.hf_token is not None)
    provider = Provider(
        "aws",
        region=spec.region,
        default_tags={"tags": stack_tags(spec)},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    network = Network(spec.name, NetworkArgs(spec=spec, provider=provider), opts)
    identity = ServiceIdentity(
        spec.name,
        ServiceIdentityArgs(spec=spec, api_key=secrets.api_key, hf_token=secrets.hf_token, provider=provider),
        opts,
    )
    load_balancer = LoadBalancer(spec.name, LoadBalancerArgs(spec, launch, network, provider), opts)
    image = machine_image(spec, pulumi.InvokeOptions(parent=parent, provider=provider))
    serving = load_balancer.target_group.arn
    replicas: list[VllmReplica] | list[RayGroup]
    if spec.nodes == 1:
        replicas = [
            VllmReplica(
                spec.name, VllmReplicaArgs(spec, launch, network, identity, image, serving, provider), opts
            )
        ]
    else:
        replicas = [
            RayGroup(
                f"{spec.name}-r{index}",
                RayGroupArgs(spec, launch, network, identity, image, serving, index, provider),
                opts,
            )
            for index in range(spec.replicas)
        ]
    service_dashboard = ServiceDashboard(
        spec.name, ServiceDashboardArgs(spec=spec, load_balancer=load_balancer), opts
    )
    return Deployment(
        endpoint=load_balancer.endpoint,
        load_balancer=load_balancer,
        replicas=replicas,
        network=network,
        replica_source=replica_source(spec, launch, replicas, load_balancer, identity),
        dashboard_url=service_dashboard.url,
    )


def replica_source(
    spec: ServiceSpec,
    launch: LaunchSpec,
    replicas: list[VllmReplica] | list[RayGroup],
    load_balancer: LoadBalancer,
    identity: ServiceIdentity,
) -> pulumi.Output[dict]:
    """The Auto Scaling groups, the target group whose health says READY, the containers' log group."""
    groups: list[tuple[str, int | None, pulumi.Output[str]]] = []
    for index, replica in enumerate(replicas):
        if isinstance(replica, VllmReplica):
            groups.append((SERVE, None, replica.group.name))
        else:
            groups += [(RAY_HEAD, index, replica.head.name), (RAY_WORKER, index, replica.workers.name)]

    def source(values: list) -> dict:
        balancer, *names = values
        return ReplicaSource(
            platform="aws",
            location=spec.region,
            scope="",
            replicas=spec.replicas,
            startup_seconds=launch.probes.startup_seconds,
            groups=[
                Group(kind="autoScalingGroup", name=name, role=role, replica=index)
                for (role, index, _), name in zip(groups, names, strict=True)
            ],
            balancer=balancer,
            logs=identity.log_group_name,
        ).as_output()

    return pulumi.Output.all(load_balancer.target_group.arn, *(group[-1] for group in groups)).apply(source)
