"""What a GCP stack declares: ``build`` (see the package docstring for the resources and why)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp

from components import autoscaling, platforms, replica_shares, vm
from components.autoscaling import autoscaled_groups
from components.domain import warn_without_domain
from components.gcp.apis import ProjectApis, ProjectApisArgs
from components.gcp.autoscaler import Autoscaler, AutoscalerArgs, ScaledGroup, check_initialization
from components.gcp.identity import ServiceIdentity, ServiceIdentityArgs
from components.gcp.load_balancer import LoadBalancer, LoadBalancerArgs
from components.gcp.machine import check_rollout_budget
from components.gcp.monitoring import ServiceDashboard, ServiceDashboardArgs
from components.gcp.network import Network, NetworkArgs
from components.gcp.platform import settings
from components.gcp.quota import check_quotas, describe, gpu_quota_needs
from components.gcp.ray_replica import RayReplica, RayReplicaArgs
from components.gcp.regions import (
    RegionNetwork,
    RegionNetworkArgs,
    ServingGroup,
    serving_groups,
    serving_zones,
)
from components.gcp.registry import ImageMirror, ImageMirrorArgs, docker_hub_path
from components.gcp.replica_group import ReplicaGroup, ReplicaGroupArgs
from components.gcp.weight_cache import WeightCache, WeightCacheArgs
from components.launch import LaunchSpec, launch_spec
from components.observe import RAY_HEAD, RAY_WORKER, SERVE, Group, ReplicaSource
from components.service import Deployment, Secrets
from components.service_spec import ServiceSpec
from components.spec import stack_provider_args


def _autoscaler(
    spec: ServiceSpec,
    launch: LaunchSpec,
    groups: Sequence[ServingGroup],
    replicas: Sequence[ReplicaGroup],
    opts: pulumi.ResourceOptions,
) -> Autoscaler:
    """A revision's autoscaler over every group but the fixed on-demand base of a spot stack
    (components/replica_shares.py); the first slot's keeps the name every stack had."""
    scaled = []
    for group, replica in zip(groups, autoscaled_groups(spec, replicas, ReplicaGroup), strict=True):
        group_spec = group.spec(spec)
        if group_spec.autoscaling is not None:
            scaled.append(ScaledGroup(name=group.name, spec=group_spec, group_manager=replica.group_manager))
    return Autoscaler(
        spec.name + spec.revision_suffix, AutoscalerArgs(spec=spec, launch=launch, groups=scaled), opts
    )


def check_deployment(spec: ServiceSpec) -> None:
    """What the resources below can hold of an otherwise valid spec (a rolling update's wait, the
    autoscaler's initialization period), checked before any resource is declared (spec.load_spec calls
    it); the platform's rules on the spec alone are its platform.py's ``check_spec``."""
    launch = launch_spec(spec, has_hf_token=False)
    check_rollout_budget(spec, launch)
    check_initialization(spec, launch)


def quota_checks(spec: ServiceSpec) -> list[str]:
    """The quotas ``up`` reads before any VM, one line each (``tools.plan`` shows them offline)."""
    return describe(gpu_quota_needs(spec))


def _ray_replicas(
    spec: ServiceSpec,
    launch: LaunchSpec,
    network: Network,
    identity: ServiceIdentity,
    mirror: ImageMirror | None,
    weight_cache: WeightCache | None,
    opts: pulumi.ResourceOptions,
) -> list[RayReplica]:
    """A revision's multi-node replicas, named by its slot (the first slot's keep the names every stack
    had). They take the region's zones in turn, so they do not share one zone's fate, and roll one after
    another within the revision."""
    zones = serving_zones(spec)
    replicas: list[RayReplica] = []
    for index in range(spec.replicas):
        replicas.append(
            RayReplica(
                f"{spec.name}{spec.revision_suffix}-r{index}",
                RayReplicaArgs(
                    spec=replica_shares.ray_replica_spec(spec, index),
                    launch=launch,
                    network=network,
                    identity=identity,
                    index=index,
                    zone=zones[index % len(zones)],
                    previous=replicas[-1] if replicas else None,
                    mirror=mirror,
                    weight_cache=weight_cache,
                ),
                opts,
            )
        )
    return replicas


def build(spec: ServiceSpec, secrets: Secrets, parent: pulumi.ComponentResource) -> Deployment:
    launch = launch_spec(spec, has_hf_token=secrets.hf_token is not None)
    # The APIs are enabled through a provider of their own, and the stack's provider depends on them: every
    # resource of the stack waits for its APIs on a fresh project (children do not inherit depends_on).
    # Both providers also take every other gcp:* key the stack sets (credentials, impersonation, billing
    # project, default labels...): Pulumi passes stack config to default providers only (provider_config).
    stack_args = stack_provider_args(platforms.get(spec.cloud), spec.stack)
    apis_provider = pulumi_gcp.Provider(
        "gcp-apis",
        **stack_args,
        project=settings(spec).project,
        region=spec.region,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    apis = ProjectApis(
        spec.name, ProjectApisArgs(spec=spec), pulumi.ResourceOptions(parent=parent, provider=apis_provider)
    )
    # Quota preflight (components/gcp/quota.py): the stack's provider waits for it, so a project whose GPU
    # quota cannot hold the stack fails `up` in one line with nothing declared but its APIs.
    invoke = pulumi.InvokeOutputOptions(provider=apis_provider, depends_on=list(apis.services.values()))
    client = pulumi_gcp.organizations.get_client_config_output(opts=invoke)
    quota_infos = pulumi_gcp.cloudquota.get_s_quota_infos_output(
        parent=client.project.apply(lambda project: f"projects/{project}"),
        service="compute.googleapis.com",
        opts=invoke,
    ).quota_infos
    needs = gpu_quota_needs(spec)

    def preflighted(values: list) -> str | None:
        project, infos = values
        check_quotas(needs, infos, project)
        return spec.region

    provider = pulumi_gcp.Provider(
        "gcp",
        **stack_args,
        project=settings(spec).project,
        region=pulumi.Output.all(client.project, quota_infos).apply(preflighted),
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
    if any(docker_hub_path(revision.image) is not None for revision in spec.revisions):
        mirror = ImageMirror(spec.name, ImageMirrorArgs(spec=spec, identity=identity), opts)
    weight_cache = None
    if spec.bucket_weight_cache:
        weight_cache = WeightCache(spec.name, WeightCacheArgs(spec=spec, identity=identity), opts)
    # One group per region and purchase option (components/replica_shares.py), all behind the one LB.
    subnets: dict[str | None, pulumi.Input[str]] = {spec.region: network.subnetwork.id}
    for index, region in enumerate(spec.regions[1:], start=1):
        regional = RegionNetwork(
            f"{spec.name}-{region}",
            RegionNetworkArgs(spec=spec, network=network, region=region, index=index),
            opts,
        )
        subnets[region] = regional.subnetwork.id
    # Each revision (vllm:canary) its own groups or Ray replicas, named by its slot, and its own autoscaler.
    built: dict[str, list[ReplicaGroup] | list[RayReplica]] = {}
    autoscalers: list[Autoscaler] = []
    for revision in spec.revisions:
        revision_launch = launch if revision is spec else launch_spec(revision, secrets.hf_token is not None)
        revision_mirror = mirror if docker_hub_path(revision.image) is not None else None
        if revision.nodes > 1:
            built[revision.revision] = _ray_replicas(
                revision, revision_launch, network, identity, revision_mirror, weight_cache, opts
            )
            continue
        groups = serving_groups(revision)
        serving = [
            ReplicaGroup(
                group.name,
                ReplicaGroupArgs(
                    spec=group.spec(revision),
                    launch=revision_launch,
                    network=network,
                    identity=identity,
                    zones=serving_zones(revision, group.share.region),
                    mirror=revision_mirror,
                    subnetwork=subnets[group.share.region] if group.share.region != spec.region else None,
                    base_instance_name=group.base_instance_name,
                    weight_cache=weight_cache,
                ),
                opts,
            )
            for group in groups
        ]
        built[revision.revision] = serving
        if revision.autoscaling is not None:
            autoscalers.append(_autoscaler(revision, revision_launch, groups, serving, opts))
    replicas = built[spec.revision]
    canary_replicas = built[spec.canary.spec.revision] if spec.canary is not None else []
    load_balancer = LoadBalancer(
        spec.name,
        LoadBalancerArgs(
            spec=spec,
            launch=launch,
            instance_groups=[replica.instance_group for replica in replicas],
            canary_groups=[replica.instance_group for replica in canary_replicas],
        ),
        opts,
    )
    warn_without_domain(spec.domain)
    service_dashboard = ServiceDashboard(spec.name, ServiceDashboardArgs(spec=spec), opts)
    return Deployment(
        endpoint=load_balancer.endpoint,
        load_balancer=load_balancer,
        replicas=replicas,
        network=network,
        autoscaler=autoscalers[0] if autoscalers else None,
        dns_records=load_balancer.dns_records,
        replica_source=replica_source(spec, launch, replicas, load_balancer, canary_replicas),
        dashboard_url=service_dashboard.url,
    )


#: The log Docker's ``gcplogs`` driver writes every container's output to (docs.docker.com, "Google Cloud
#: Logging driver": entries go to ``projects/<project>/logs/gcplogs-docker-driver``).
CONTAINER_LOG_NAME = "gcplogs-docker-driver"


#: A group for replicaSource: kind, role, Ray replica index, zone, and its name and region once known.
_Managed = tuple[str, str, int | None, str, pulumi.Output[str], pulumi.Output[str] | str]


def _managed(replicas: Sequence[ReplicaGroup] | Sequence[RayReplica]) -> list[_Managed]:
    """One revision's managed groups: a regional group per share, or each Ray replica's head and workers."""
    managers: list[_Managed] = []
    for index, replica in enumerate(replicas):
        if isinstance(replica, ReplicaGroup):
            manager = replica.group_manager
            managers.append(("regionInstanceGroupManager", SERVE, None, "", manager.name, manager.region))
        else:
            head, workers = replica.head_group_manager, replica.worker_group_manager
            managers.append(("instanceGroupManager", RAY_HEAD, index, replica.zone, head.name, ""))
            managers.append(("instanceGroupManager", RAY_WORKER, index, replica.zone, workers.name, ""))
    return managers


def replica_source(
    spec: ServiceSpec,
    launch: LaunchSpec,
    replicas: Sequence[ReplicaGroup] | Sequence[RayReplica],
    load_balancer: LoadBalancer,
    canary_replicas: Sequence[ReplicaGroup] | Sequence[RayReplica] = (),
) -> pulumi.Output[dict]:
    """The managed instance groups (each regional one with its region: with ``vllm:regions`` they are not
    all in the stack's first), the backend service whose health says READY, the project they are in; with
    vllm:canary each group says its revision, and the canary's its own backend service."""
    managers, canaries = _managed(replicas), _managed(canary_replicas)
    first = replicas[0]
    project = (
        first.group_manager.project if isinstance(first, ReplicaGroup) else first.head_group_manager.project
    )
    canary_backend = load_balancer.canary_backend_service
    stable_revision = spec.revision if spec.canary is not None else ""
    canary_revision = spec.canary.spec.revision if spec.canary is not None else ""

    def source(values: list) -> dict:
        project_id, balancer, canary_balancer, *names_and_regions = values
        every = [*managers, *canaries]
        names, regions = names_and_regions[: len(every)], names_and_regions[len(every) :]
        groups = [
            Group(
                kind=kind,
                name=name,
                role=role,
                replica=index,
                zone=zone,
                region=region,
                revision=stable_revision if number < len(managers) else canary_revision,
                balancer="" if number < len(managers) else canary_balancer,
            )
            for number, ((kind, role, index, zone, _, _), name, region) in enumerate(
                zip(every, names, regions, strict=True)
            )
        ]
        return ReplicaSource(
            platform="gcp",
            location=vm.vm_region(spec),
            scope=project_id,
            replicas=sum(revision.replicas for revision in spec.revisions),
            bounds=autoscaling.bounds(spec),
            startup_seconds=max([launch.probes.startup_seconds, *_canary_startup(spec)]),
            groups=groups,
            balancer=balancer,
            logs=CONTAINER_LOG_NAME,
        ).as_output()

    names = [manager[4] for manager in (*managers, *canaries)]
    regions = [manager[5] for manager in (*managers, *canaries)]
    canary_name = canary_backend.name if canary_backend is not None else ""
    return pulumi.Output.all(
        project, load_balancer.backend_service.name, canary_name, *names, *regions
    ).apply(source)


def _canary_startup(spec: ServiceSpec) -> list[int]:
    """The canary revision's load budget (its model's), which tools.status judges its replicas by too."""
    if spec.canary is None:
        return []
    return [launch_spec(spec.canary.spec, has_hf_token=False).probes.startup_seconds]
