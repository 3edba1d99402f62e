"""What a Kubernetes stack declares: ``build`` (see the package docstring for the resources and why)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes

from components.kubernetes import gpu_nodes, pods
from components.kubernetes.backend import settings
from components.kubernetes.load_balancer import LoadBalancer, LoadBalancerArgs
from components.kubernetes.monitoring import Monitoring, MonitoringArgs
from components.kubernetes.namespace import ServiceNamespace, ServiceNamespaceArgs
from components.kubernetes.ray_group import LeaderWorkerSetController, RayGroup, RayGroupArgs
from components.kubernetes.replica import VllmReplica, VllmReplicaArgs
from components.launch import LaunchSpec, launch_spec
from components.observe import SERVE, Group, ReplicaSource
from components.service import Deployment, Secrets
from components.spec import ServiceSpec


def check(spec: ServiceSpec) -> None:
    """Kubernetes-specific checks of the spec (raise SpecError); ``spec.load_spec`` calls it before any
    resource is declared."""
    if spec.gpu is not None:
        gpu_nodes.node_requirements(settings(spec).gpu_node_selector, spec.gpu.type)
    else:
        pods.cpu_kv_cache_gb(spec)


def build(spec: ServiceSpec, secrets: Secrets, parent: pulumi.ComponentResource) -> Deployment:
    launch = launch_spec(spec, has_hf_token=secrets.hf_token is not None)
    provider = pulumi_kubernetes.Provider(
        "kubernetes", context=settings(spec).context, opts=pulumi.ResourceOptions(parent=parent)
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    namespace = ServiceNamespace(spec.name, ServiceNamespaceArgs(spec, secrets, provider), opts)
    replicas: list[VllmReplica] | list[RayGroup]
    if spec.nodes == 1:
        replicas = [
            VllmReplica(
                spec.name,
                VllmReplicaArgs(spec, launch, namespace.name, namespace.secret_name, provider),
                opts,
            )
        ]
    else:
        controller = (
            LeaderWorkerSetController(f"{spec.name}-lws", provider, opts)
            if settings(spec).install_leader_worker_set
            else None
        )
        replicas = [
            RayGroup(
                spec.name,
                RayGroupArgs(spec, launch, namespace.name, namespace.secret_name, provider, controller),
                opts,
            )
        ]
    if settings(spec).prometheus_operator:
        Monitoring(spec.name, MonitoringArgs(spec=spec, namespace=namespace.name), opts)
    workload = replicas[0].workload
    load_balancer = LoadBalancer(
        spec.name,
        LoadBalancerArgs(spec, namespace.name, provider, workload, pods.start_budget_seconds(launch)),
        opts,
    )
    return Deployment(
        endpoint=load_balancer.endpoint,
        load_balancer=load_balancer,
        replicas=replicas,
        replica_source=replica_source(spec, launch, namespace, replicas[0], load_balancer),
    )


def replica_source(
    spec: ServiceSpec,
    launch: LaunchSpec,
    namespace: ServiceNamespace,
    replica: VllmReplica | RayGroup,
    load_balancer: LoadBalancer,
) -> pulumi.Output[dict]:
    """The workload (a Deployment, or a LeaderWorkerSet of Ray groups) whose pods are the replicas."""
    if isinstance(replica, VllmReplica):
        kind, role, workload = "Deployment", SERVE, replica.deployment.metadata.name
    else:
        kind, role, workload = "LeaderWorkerSet", "ray-group", replica.leader_worker_set.metadata["name"]

    def source(values: list) -> dict:
        namespace_name, workload_name, service_name = values
        return ReplicaSource(
            platform="kubernetes",
            location=settings(spec).context or "",
            scope=namespace_name,
            replicas=spec.replicas,
            startup_seconds=launch.probes.startup_seconds,
            groups=[Group(kind=kind, name=workload_name, role=role)],
            balancer=service_name,
        ).as_output()

    return pulumi.Output.all(namespace.name, workload, load_balancer.service.metadata.name).apply(source)
