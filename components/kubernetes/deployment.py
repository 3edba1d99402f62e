"""What a Kubernetes stack declares: ``build`` (see the package docstring for the resources and why)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes

from components import autoscaling, platforms
from components.domain import warn_without_domain
from components.kubernetes import cold_start, gpu_nodes, pods, spot_pods, tls
from components.kubernetes.autoscaler import Autoscaler, AutoscalerArgs, revision_pods, scale_target
from components.kubernetes.gateway_install import GatewayInstall
from components.kubernetes.inference_gateway import (
    InferenceGateway,
    InferenceGatewayArgs,
    pool_name,
    pool_weights,
)
from components.kubernetes.load_balancer import LoadBalancer, LoadBalancerArgs
from components.kubernetes.monitoring import Monitoring, MonitoringArgs
from components.kubernetes.namespace import ServiceNamespace, ServiceNamespaceArgs
from components.kubernetes.ray_replica import LeaderWorkerSetController, RayReplicaGroup, RayReplicaGroupArgs
from components.kubernetes.replica_group import ReplicaGroup, ReplicaGroupArgs
from components.kubernetes.settings import settings
from components.launch import LaunchSpec, launch_spec
from components.observe import ROUTER, SERVE, Group, ReplicaSource
from components.service import Deployment, Secrets
from components.service_spec import ServiceSpec
from components.spec import stack_provider_args


def check_deployment(spec: ServiceSpec) -> None:
    """What the pods below need of an otherwise valid spec (a node label for its GPU type, memory for a
    CPU pod's KV cache); ``spec.load_spec`` calls it before any resource is declared. The platform's rules
    on the spec alone are its platform.py's ``check_spec``."""
    if spec.gpu is not None:
        gpu_nodes.node_requirements(settings(spec).gpu_node_selector, spec.gpu.type)
    else:
        pods.cpu_kv_cache_gb(spec)


def build(spec: ServiceSpec, secrets: Secrets, parent: pulumi.ComponentResource) -> Deployment:
    launches = {
        revision.revision: pods.with_drain(
            tls.with_tls(revision, launch_spec(revision, has_hf_token=secrets.hf_token is not None))
        )
        for revision in spec.revisions
    }
    launch = launches[spec.revision]
    # Every other kubernetes:* key the stack sets (kubeconfig, namespace...) reaches the provider too: Pulumi
    # passes stack config to default providers only (components/provider_config.py).
    provider = pulumi_kubernetes.Provider(
        "kubernetes",
        **stack_provider_args(platforms.get(spec.cloud), spec.stack),
        context=settings(spec).context,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # Each component passes the provider on to its children, which name none themselves.
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    namespace = ServiceNamespace(spec.name, ServiceNamespaceArgs(spec=spec, secrets=secrets), opts)
    # Each revision (vllm:canary) its own Deployments or LeaderWorkerSet, Service and autoscaler, named by
    # its slot (pods.slot_name): a promote swaps the roles and renames nothing.
    served: dict[str, list[ReplicaGroup] | list[RayReplicaGroup]] = {}
    # A slot at weight 0 is not awaited, and raising its weight is an awaited update (traffic_annotations).
    weights = pool_weights(spec)
    if spec.nodes == 1:
        for revision in spec.revisions:
            served[revision.revision] = [
                ReplicaGroup(
                    group.name,
                    ReplicaGroupArgs(
                        spec=group.spec,
                        launch=launches[revision.revision],
                        namespace=namespace.name,
                        secret_name=namespace.secret_name,
                        deployment_name=group.name,
                        group_labels=group.labels,
                        takes_traffic=not weights or weights[revision.revision] > 0,
                    ),
                    opts,
                )
                for group in spot_pods.serving_groups(revision)
            ]
    else:
        controller = (
            LeaderWorkerSetController(f"{spec.name}-lws", opts)
            if settings(spec).install_leader_worker_set
            else None
        )
        for revision in spec.revisions:
            served[revision.revision] = [
                RayReplicaGroup(
                    pods.slot_name(revision),
                    RayReplicaGroupArgs(
                        spec=revision,
                        launch=launches[revision.revision],
                        namespace=namespace.name,
                        secret_name=namespace.secret_name,
                        controller=controller,
                        takes_traffic=not weights or weights[revision.revision] > 0,
                    ),
                    opts,
                )
            ]
    replicas = served[spec.revision]
    if settings(spec).prometheus_operator:
        Monitoring(spec.name, MonitoringArgs(spec=spec, namespace=namespace.name), opts)
    balancers = {
        revision.revision: LoadBalancer(
            pods.slot_name(revision),
            LoadBalancerArgs(
                spec=revision,
                namespace=namespace.name,
                workload=served[revision.revision][0].workload,
                start_seconds=pods.start_budget_seconds(revision, launches[revision.revision]),
            ),
            opts,
        )
        for revision in spec.revisions
    }
    load_balancer = balancers[spec.revision]
    holding = None
    if cold_start.holds_requests(spec):
        add_on = (
            cold_start.HttpAddOn(f"{spec.name}-http-add-on", opts)
            if settings(spec).install_keda_http_add_on
            else None
        )
        holding = cold_start.ColdStart(
            spec.name,
            cold_start.ColdStartArgs(
                spec=spec,
                namespace=namespace.name,
                service_name=load_balancer.service.metadata.name,
                timeout_seconds=settings(spec).cold_start_timeout_seconds
                or pods.start_budget_seconds(spec, launch),
                add_on=add_on,
            ),
            opts,
        )
    autoscalers = {
        revision.revision: _autoscaler(spec, revision, served[revision.revision], namespace, holding, opts)
        for revision in spec.revisions
        if revision.autoscaling is not None
    }
    endpoint, dns_records = load_balancer.endpoint, load_balancer.dns_records
    if settings(spec).inference_gateway:
        implementation = settings(spec).install_gateway
        installed = (
            GatewayInstall(f"{spec.name}-gateway-install", implementation, opts)
            if implementation is not None
            else None
        )
        router = InferenceGateway(
            spec.name,
            InferenceGatewayArgs(
                spec=spec,
                namespace=namespace.name,
                workloads=[replica.workload for revision in served.values() for replica in revision],
                installed=installed,
            ),
            opts,
        )
        endpoint, dns_records = router.endpoint, router.dns_records
    # ClusterIP without the inference gateway: in the cluster, or behind your Ingress.
    if settings(spec).service_type == "LoadBalancer" or settings(spec).inference_gateway:
        warn_without_domain(spec.domain)
    return Deployment(
        endpoint=endpoint,
        load_balancer=load_balancer,
        replicas=replicas,
        dns_records=dns_records,
        autoscaler=autoscalers.get(spec.revision),
        replica_source=replica_source(spec, launches, namespace, served, balancers),
    )


def _autoscaler(
    spec: ServiceSpec,
    revision: ServiceSpec,
    replicas: Sequence[ReplicaGroup] | Sequence[RayReplicaGroup],
    namespace: ServiceNamespace,
    holding: cold_start.ColdStart | None,
    opts: pulumi.ResourceOptions,
) -> Autoscaler:
    """A revision's ScaledObject on its one workload, or on the spot Deployment beside a fixed on-demand
    base (spot_pods.py), scaling on its own pods' load (autoscaler.revision_pods)."""
    if revision.nodes == 1:
        ((name, scaled, workload),) = [
            (group.name, group.spec, replica.workload)
            for group, replica in zip(spot_pods.serving_groups(revision), replicas, strict=True)
            if group.spec.autoscaling is not None
        ]
    else:
        name, scaled, workload = pods.slot_name(revision), revision, replicas[0].workload
    return Autoscaler(
        pods.slot_name(revision),
        AutoscalerArgs(
            spec=revision,
            scaled=scaled,
            namespace=namespace.name,
            workload=workload,
            target=scale_target(revision, name),
            cold_start=holding,
            revision=revision_pods(spec, revision),
        ),
        opts,
    )


def replica_source(
    spec: ServiceSpec,
    launches: dict[str, LaunchSpec],
    namespace: ServiceNamespace,
    served: dict[str, list[ReplicaGroup] | list[RayReplicaGroup]],
    balancers: dict[str, LoadBalancer],
) -> pulumi.Output[dict]:
    """The workloads whose pods are the replicas: a Deployment per purchase option (the on-demand base and
    spot, components/kubernetes/spot_pods.py), or a LeaderWorkerSet of Ray groups; with vllm:canary each
    revision's, each saying its slot (the canary's its own Service), and each revision's InferencePool."""
    stable_service = balancers[spec.revision].service.metadata.name
    workloads: list[tuple[str, str, str, pulumi.Output[str], pulumi.Input[str]]] = []
    for revision in spec.revisions:
        slot = revision.revision if spec.canary is not None else ""
        service = "" if revision is spec else balancers[revision.revision].service.metadata.name
        for replica in served[revision.revision]:
            if isinstance(replica, ReplicaGroup):
                workloads.append(("Deployment", SERVE, slot, replica.deployment.metadata.name, service))
            else:
                # A CustomResource's metadata is dynamic (apiextensions.CustomResource.__getattr__), untyped.
                lws = replica.leader_worker_set
                name = lws.metadata["name"]  # pyright: ignore[reportAttributeAccessIssue]
                workloads.append(("LeaderWorkerSet", "ray-group", slot, name, service))
        if settings(spec).inference_gateway:
            # The InferencePool: tools.status shows its endpoint picker's pods and whether a Gateway took it.
            pool = pulumi.Output.from_input(pool_name(revision))
            workloads.append(("InferencePool", ROUTER, slot, pool, ""))
    startup = max(
        pods.fetch_budget_seconds(revision, launches[revision.revision])
        + pods.load_budget_seconds(revision, launches[revision.revision])
        for revision in spec.revisions
    )

    def source(values: list) -> dict:
        namespace_name, service_name, *names = values
        workload_names, services = names[: len(workloads)], names[len(workloads) :]
        return ReplicaSource(
            platform="kubernetes",
            location=settings(spec).context or "",
            scope=namespace_name,
            replicas=sum(revision.replicas for revision in spec.revisions),
            bounds=autoscaling.bounds(spec),
            # From the pod's start, which an init container's fill of vllm:cacheClaim precedes.
            startup_seconds=startup,
            groups=[
                Group(kind=kind, name=name, role=role, revision=slot, balancer=balancer)
                for (kind, role, slot, _, _), name, balancer in zip(
                    workloads, workload_names, services, strict=True
                )
            ],
            balancer=service_name,
        ).as_output()

    return pulumi.Output.all(
        namespace.name,
        stable_service,
        *(workload[3] for workload in workloads),
        *(workload[4] for workload in workloads),
    ).apply(source)
