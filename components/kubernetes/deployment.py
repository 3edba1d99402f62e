"""What a Kubernetes stack declares: ``build`` (see the package docstring for the resources and why)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes

from components import autoscaling, platforms
from components.domain import warn_without_domain
from components.kubernetes import cold_start, gpu_nodes, pods, spot_pods, tls
from components.kubernetes.autoscaler import Autoscaler, AutoscalerArgs, scale_target
from components.kubernetes.gateway_install import GatewayInstall
from components.kubernetes.inference_gateway import InferenceGateway, InferenceGatewayArgs, pool_name
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
    launch = pods.with_drain(tls.with_tls(spec, launch_spec(spec, has_hf_token=secrets.hf_token is not None)))
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
    replicas: list[ReplicaGroup] | list[RayReplicaGroup]
    if spec.nodes == 1:
        replicas = [
            ReplicaGroup(
                group.name,
                ReplicaGroupArgs(
                    spec=group.spec,
                    launch=launch,
                    namespace=namespace.name,
                    secret_name=namespace.secret_name,
                    deployment_name=group.name,
                    group_labels=group.labels,
                ),
                opts,
            )
            for group in spot_pods.serving_groups(spec)
        ]
    else:
        controller = (
            LeaderWorkerSetController(f"{spec.name}-lws", opts)
            if settings(spec).install_leader_worker_set
            else None
        )
        replicas = [
            RayReplicaGroup(
                spec.name,
                RayReplicaGroupArgs(
                    spec=spec,
                    launch=launch,
                    namespace=namespace.name,
                    secret_name=namespace.secret_name,
                    controller=controller,
                ),
                opts,
            )
        ]
    if settings(spec).prometheus_operator:
        Monitoring(spec.name, MonitoringArgs(spec=spec, namespace=namespace.name), opts)
    load_balancer = LoadBalancer(
        spec.name,
        LoadBalancerArgs(
            spec=spec,
            namespace=namespace.name,
            workload=replicas[0].workload,
            start_seconds=pods.start_budget_seconds(spec, launch),
        ),
        opts,
    )
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
    autoscaler = None
    if spec.autoscaling is not None:
        # The one workload, or the spot Deployment beside a fixed on-demand base (spot_pods.py).
        if spec.nodes == 1:
            ((name, scaled, workload),) = [
                (group.name, group.spec, replica.workload)
                for group, replica in zip(spot_pods.serving_groups(spec), replicas, strict=True)
                if group.spec.autoscaling is not None
            ]
        else:
            name, scaled, workload = spec.name, spec, replicas[0].workload
        autoscaler = Autoscaler(
            spec.name,
            AutoscalerArgs(
                spec=spec,
                scaled=scaled,
                namespace=namespace.name,
                workload=workload,
                target=scale_target(spec, name),
                cold_start=holding,
            ),
            opts,
        )
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
                workloads=[replica.workload for replica in replicas],
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
        autoscaler=autoscaler,
        replica_source=replica_source(spec, launch, namespace, replicas, load_balancer),
    )


def replica_source(
    spec: ServiceSpec,
    launch: LaunchSpec,
    namespace: ServiceNamespace,
    replicas: Sequence[ReplicaGroup] | Sequence[RayReplicaGroup],
    load_balancer: LoadBalancer,
) -> pulumi.Output[dict]:
    """The workloads whose pods are the replicas: a Deployment per purchase option (the on-demand base and
    spot, components/kubernetes/spot_pods.py), or a LeaderWorkerSet of Ray groups."""
    workloads: list[tuple[str, str, pulumi.Output[str]]] = []
    for replica in replicas:
        if isinstance(replica, ReplicaGroup):
            workloads.append(("Deployment", SERVE, replica.deployment.metadata.name))
        else:
            # A CustomResource's metadata is dynamic (apiextensions.CustomResource.__getattr__), untyped.
            lws = replica.leader_worker_set
            workloads.append(("LeaderWorkerSet", "ray-group", lws.metadata["name"]))  # pyright: ignore[reportAttributeAccessIssue]

    def source(values: list) -> dict:
        namespace_name, service_name, *workload_names = values
        return ReplicaSource(
            platform="kubernetes",
            location=settings(spec).context or "",
            scope=namespace_name,
            replicas=spec.replicas,
            bounds=autoscaling.bounds(spec),
            # From the pod's start, which an init container's fill of vllm:cacheClaim precedes.
            startup_seconds=pods.fetch_budget_seconds(spec, launch) + pods.load_budget_seconds(spec, launch),
            groups=[
                Group(kind=kind, name=name, role=role)
                for (kind, role, _), name in zip(workloads, workload_names, strict=True)
            ],
            balancer=service_name,
        ).as_output()

    if settings(spec).inference_gateway:
        # The InferencePool: tools.status shows its endpoint picker's pods and whether a Gateway took it.
        workloads.append(("InferencePool", ROUTER, pulumi.Output.from_input(pool_name(spec))))
    names = [workload[-1] for workload in workloads]
    return pulumi.Output.all(namespace.name, load_balancer.service.metadata.name, *names).apply(source)
