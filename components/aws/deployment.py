"""What a AWS stack declares: ``build`` (see the package docstring for the resources and why)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pulumi
from pulumi_aws import Provider, ProviderDefaultTagsArgsDict

from components import autoscaling, platforms, replica_shares, vm
from components.autoscaling import autoscaled_groups
from components.aws.autoscaler import Autoscaler, AutoscalerArgs
from components.aws.identity import ServiceIdentity, ServiceIdentityArgs
from components.aws.load_balancer import LoadBalancer, LoadBalancerArgs
from components.aws.machines import machine_image, quota_preflight, stack_tags
from components.aws.monitoring import ServiceDashboard, ServiceDashboardArgs
from components.aws.network import Network, NetworkArgs
from components.aws.ray_replica import RayReplica, RayReplicaArgs
from components.aws.replica_group import ReplicaGroup, ReplicaGroupArgs
from components.aws.weight_cache import WeightCache, WeightCacheArgs
from components.domain import warn_without_domain
from components.launch import LaunchSpec, launch_spec
from components.observe import RAY_HEAD, RAY_WORKER, SERVE, Group, ReplicaSource
from components.service import Deployment, Secrets
from components.service_spec import ServiceSpec
from components.spec import stack_provider_args


def build(spec: ServiceSpec, secrets: Secrets, parent: pulumi.ComponentResource) -> Deployment:
    launch = launch_spec(spec, has_hf_token=secrets.hf_token is not None)
    # Every other aws:* key the stack sets (profile, assumeRoles...) reaches the provider too: Pulumi passes
    # stack config to default providers only (components/provider_config.py). The stack's tags join any
    # aws:defaultTags it sets, and win for a key both name.
    stack_args = stack_provider_args(platforms.get(spec.cloud), spec.stack)

    def with_stack_tags(theirs: dict[str, Any]) -> ProviderDefaultTagsArgsDict:
        return cast(
            ProviderDefaultTagsArgsDict,
            {**theirs, "tags": {**(theirs.get("tags") or {}), **stack_tags(spec)}},
        )

    default_tags = pulumi.Output.from_input(stack_args.pop("default_tags", None) or {}).apply(with_stack_tags)
    provider = Provider(
        "aws",
        **stack_args,
        region=spec.region,
        default_tags=default_tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # Each component passes the provider on to its children (and its lookups), which name none themselves.
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    network = Network(spec.name, NetworkArgs(spec=spec), opts)
    weight_cache = None
    if spec.bucket_weight_cache:
        weight_cache = WeightCache(spec.name, WeightCacheArgs(spec=spec), opts)
    canary_launch = None
    if spec.canary is not None:
        canary_launch = launch_spec(spec.canary.spec, has_hf_token=secrets.hf_token is not None)
    load_balancer = LoadBalancer(
        spec.name,
        LoadBalancerArgs(spec=spec, launch=launch, network=network, canary_launch=canary_launch),
        opts,
    )
    canary_target_group = load_balancer.canary_target_group
    drained: pulumi.Input[str] | pulumi.Input[list[str]] = load_balancer.target_group.arn
    if canary_target_group is not None:
        drained = pulumi.Output.all(load_balancer.target_group.arn, canary_target_group.arn)
    identity = ServiceIdentity(
        spec.name,
        ServiceIdentityArgs(
            spec=spec,
            api_key=secrets.api_key,
            hf_token=secrets.hf_token,
            weight_cache_arn=weight_cache.bucket.arn if weight_cache is not None else None,
            target_group_arn=drained,
        ),
        opts,
    )
    invoke = pulumi.InvokeOptions(parent=parent, provider=provider)
    image = machine_image(spec, invoke)
    # Every group joins the target group: they wait on the quota check, whose refusal stops up at preview.
    serving = pulumi.Output.all(load_balancer.target_group.arn, quota_preflight(spec, invoke)).apply(
        lambda found: found[0]
    )
    # Each revision (vllm:canary) its own group or Ray replicas, named by its slot, in its own target group.
    built: dict[str, list[ReplicaGroup] | list[RayReplica]] = {}
    autoscalers: list[Autoscaler] = []
    for revision, revision_launch, target_group in (
        (spec, launch, load_balancer.target_group),
        *(
            ((spec.canary.spec, canary_launch, canary_target_group),)
            if spec.canary is not None and canary_launch is not None and canary_target_group is not None
            else ()
        ),
    ):
        joined = serving
        if target_group is not load_balancer.target_group:
            joined = pulumi.Output.all(target_group.arn, serving).apply(lambda found: found[0])
        if revision.nodes > 1:
            built[revision.revision] = [
                RayReplica(
                    f"{spec.name}{revision.revision_suffix}-r{index}",
                    RayReplicaArgs(
                        spec=replica_shares.ray_replica_spec(revision, index),
                        launch=revision_launch,
                        network=network,
                        identity=identity,
                        image=image,
                        target_group_arn=joined,
                        index=index,
                        weight_cache=weight_cache,
                        beside_a_canary=spec.canary is not None,
                        is_canary=revision is not spec,
                    ),
                    opts,
                )
                for index in range(revision.replicas)
            ]
            continue
        group = ReplicaGroup(
            spec.name + revision.revision_suffix,
            ReplicaGroupArgs(
                spec=revision,
                launch=revision_launch,
                network=network,
                identity=identity,
                image=image,
                target_group_arn=joined,
                weight_cache=weight_cache,
                beside_a_canary=spec.canary is not None,
                is_canary=revision is not spec,
            ),
            opts,
        )
        built[revision.revision] = [group]
        if revision.autoscaling is not None:
            # One group: its mixed instances policy keeps the on-demand base inside the bounds.
            autoscalers.append(
                Autoscaler(
                    spec.name + revision.revision_suffix,
                    AutoscalerArgs(
                        spec=revision,
                        launch=revision_launch,
                        group=group.auto_scaling_group,
                        load_balancer=load_balancer,
                        target_group=target_group,
                    ),
                    opts,
                )
            )
    replicas = built[spec.revision]
    canary_replicas = built[spec.canary.spec.revision] if spec.canary is not None else []
    # Traffic reaches the canary revision only once its groups' creates have seen it serve.
    load_balancer.route(
        after=[
            replica.auto_scaling_group if isinstance(replica, ReplicaGroup) else replica.head_group
            for replica in canary_replicas
        ]
    )
    if spec.autoscaling is not None:
        autoscaled_groups(spec, replicas, ReplicaGroup)  # one group of single-node replicas, checked
    warn_without_domain(spec.domain)
    service_dashboard = ServiceDashboard(
        spec.name, ServiceDashboardArgs(spec=spec, load_balancer=load_balancer), opts
    )
    return Deployment(
        endpoint=load_balancer.endpoint,
        load_balancer=load_balancer,
        replicas=replicas,
        network=network,
        autoscaler=autoscalers[0] if autoscalers else None,
        dns_records=load_balancer.dns_records,
        replica_source=replica_source(spec, launch, replicas, load_balancer, identity, canary_replicas),
        dashboard_url=service_dashboard.url,
    )


def _groups(
    replicas: Sequence[ReplicaGroup] | Sequence[RayReplica],
) -> list[tuple[str, int | None, pulumi.Output[str]]]:
    """One revision's Auto Scaling groups: (role, Ray replica index, name once known) each."""
    groups: list[tuple[str, int | None, pulumi.Output[str]]] = []
    for index, replica in enumerate(replicas):
        if isinstance(replica, ReplicaGroup):
            groups.append((SERVE, None, replica.auto_scaling_group.name))
        else:
            groups += [
                (RAY_HEAD, index, replica.head_group.name),
                (RAY_WORKER, index, replica.worker_group.name),
            ]
    return groups


def replica_source(
    spec: ServiceSpec,
    launch: LaunchSpec,
    replicas: Sequence[ReplicaGroup] | Sequence[RayReplica],
    load_balancer: LoadBalancer,
    identity: ServiceIdentity,
    canary_replicas: Sequence[ReplicaGroup] | Sequence[RayReplica] = (),
) -> pulumi.Output[dict]:
    """The Auto Scaling groups, the target group whose health says READY, the containers' log group; with
    vllm:canary each group says its revision, and the canary's its own target group."""
    groups, canaries = _groups(replicas), _groups(canary_replicas)
    canary_group = load_balancer.canary_target_group
    stable_revision = spec.revision if spec.canary is not None else ""
    canary_revision = spec.canary.spec.revision if spec.canary is not None else ""
    startup = [launch.probes.startup_seconds]
    if spec.canary is not None:
        startup.append(launch_spec(spec.canary.spec, has_hf_token=False).probes.startup_seconds)

    def source(values: list) -> dict:
        balancer, canary_balancer, *names = values
        stable_names, canary_names = names[: len(groups)], names[len(groups) :]
        found = [
            Group(kind="autoScalingGroup", name=name, role=role, replica=index, revision=stable_revision)
            for (role, index, _), name in zip(groups, stable_names, strict=True)
        ]
        found += [
            Group(
                kind="autoScalingGroup",
                name=name,
                role=role,
                replica=index,
                revision=canary_revision,
                balancer=canary_balancer,
            )
            for (role, index, _), name in zip(canaries, canary_names, strict=True)
        ]
        return ReplicaSource(
            platform="aws",
            location=vm.vm_region(spec),
            scope="",
            replicas=sum(revision.replicas for revision in spec.revisions),
            bounds=autoscaling.bounds(spec),
            startup_seconds=max(startup),
            groups=found,
            balancer=balancer,
            logs=identity.log_group_name,
        ).as_output()

    canary_arn = canary_group.arn if canary_group is not None else ""
    return pulumi.Output.all(
        load_balancer.target_group.arn,
        canary_arn,
        *(group[-1] for group in groups),
        *(group[-1] for group in canaries),
    ).apply(source)
