"""What a AWS stack declares: ``build`` (see the package docstring for the resources and why)."""

from __future__ import annotations

import pulumi
from pulumi_aws import Provider

from components.aws.identity import ServiceIdentity, ServiceIdentityArgs
from components.aws.load_balancer import LoadBalancer, LoadBalancerArgs
from components.aws.machines import machine_image, stack_tags
from components.aws.network import Network, NetworkArgs
from components.aws.ray_group import RayGroup, RayGroupArgs
from components.aws.replica import VllmReplica, VllmReplicaArgs
from components.aws.weight_cache import WeightCache, WeightCacheArgs
from components.launch import launch_spec
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
    weight_cache = None
    if spec.weight_cache == "bucket":
        weight_cache = WeightCache(spec.name, WeightCacheArgs(spec=spec, provider=provider), opts)
    identity = ServiceIdentity(
        spec.name,
        ServiceIdentityArgs(
            spec=spec,
            api_key=secrets.api_key,
            hf_token=secrets.hf_token,
            provider=provider,
            weight_cache_arn=weight_cache.bucket.arn if weight_cache is not None else None,
        ),
        opts,
    )
    load_balancer = LoadBalancer(spec.name, LoadBalancerArgs(spec, launch, network, provider), opts)
    image = machine_image(spec, pulumi.InvokeOptions(parent=parent, provider=provider))
    serving = load_balancer.target_group.arn
    replicas: list[VllmReplica] | list[RayGroup]
    if spec.nodes == 1:
        replicas = [
            VllmReplica(
                spec.name,
                VllmReplicaArgs(spec, launch, network, identity, image, serving, provider, weight_cache),
                opts,
            )
        ]
    else:
        replicas = [
            RayGroup(
                f"{spec.name}-r{index}",
                RayGroupArgs(spec, launch, network, identity, image, serving, index, provider, weight_cache),
                opts,
            )
            for index in range(spec.replicas)
        ]
    return Deployment(
        endpoint=load_balancer.endpoint, load_balancer=load_balancer, replicas=replicas, network=network
    )
