"""The Kubernetes backend: its keys, settings, checks and public view (no SDK: see components/backend.py)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from components.backend import Backend, Feature, Placement
from components.kubernetes.offerings import CATALOG
from components.spec import PROJECT, ConfigReader, SpecError

if TYPE_CHECKING:
    from components.catalog import Offering
    from components.spec import ServiceSpec

#: GPU node labelling schemes (see gpu_nodes.py): how a pod asks for a GPU type.
GPU_NODE_SELECTORS = ("gke", "nvidia", "karpenter", "none")
SERVICE_TYPES = ("LoadBalancer", "ClusterIP")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class KubernetesSettings:
    """The Kubernetes keys of a stack, validated (README "Kubernetes")."""

    namespace: str = "vllm"  # the stack's own by default: see ``default_namespace``
    gpu_node_selector: str = "none"
    storage_class: str | None = None
    service_type: str = "LoadBalancer"
    cpu: float | None = None
    memory_gb: float | None = None
    install_leader_worker_set: bool = False
    context: str | None = None
    #: Pods (groups) a rollout may add above ``replicas``; None: the backend's default for the count.
    max_surge: int | None = None
    #: A PodMonitor and a Grafana dashboard ConfigMap (needs the Prometheus Operator's CRDs).
    prometheus_operator: bool = False


def settings(spec: ServiceSpec) -> KubernetesSettings:
    """The stack's Kubernetes settings (``spec.platform`` of a Kubernetes stack)."""
    if not isinstance(spec.platform, KubernetesSettings):
        raise TypeError(f"{spec.cloud} stack has no Kubernetes settings")
    return spec.platform


def default_namespace(stack: str) -> str:
    """``vllm-<stack>``: each stack owns its namespace, so two stacks on one cluster never share (and
    delete) each other's. A stack name that is not a DNS label as is (upper case, ``_`` or ``.``, over 63
    characters) is slugged and suffixed with a hash of the name, so two such names stay apart."""
    name = f"{PROJECT}-{stack}"
    if DNS_LABEL.match(name):
        return name
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:54].rstrip("-")
    return f"{slug}-{hashlib.sha256(stack.encode()).hexdigest()[:8]}"


def read_placement(read: ConfigReader, stack: str, offering: Offering | None) -> Placement:
    """The cluster (``kubernetes:context``) and the stack's namespace, node and Service settings."""
    namespace = read.string("namespace", default_namespace(stack))
    if not DNS_LABEL.match(namespace):
        raise SpecError(f"{PROJECT}:namespace", namespace, "a DNS label: lowercase letters, digits and '-'")
    if namespace == "default" or namespace.startswith("kube-"):
        raise SpecError(f"{PROJECT}:namespace", namespace, "a namespace of its own (the stack creates it)")
    storage_class = read.string("storageClass")
    if storage_class is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", storage_class):
        raise SpecError(f"{PROJECT}:storageClass", storage_class, "a StorageClass name (DNS subdomain)")
    service_type = read.choice("serviceType", SERVICE_TYPES, "LoadBalancer")
    allowed = read.raw("allowedCidrs")
    if service_type == "ClusterIP" and allowed is not None:
        raise SpecError(
            f"{PROJECT}:allowedCidrs",
            allowed,
            "unset with vllm:serviceType ClusterIP (no load balancer: restrict at your Ingress/Gateway)",
        )
    return Placement(
        settings=KubernetesSettings(
            namespace=namespace,
            gpu_node_selector=read.choice("gpuNodeSelector", GPU_NODE_SELECTORS, "none"),
            storage_class=storage_class,
            service_type=service_type,
            cpu=read.number("cpu", 0),
            memory_gb=read.number("memoryGb", 0),
            install_leader_worker_set=read.boolean("installLeaderWorkerSet", False),
            context=read.string("kubernetes:context"),
            max_surge=read.integer("maxSurge", None, 0),
            prometheus_operator=read.boolean("prometheusOperator", False),
        )
    )


#: Host memory of one GPU worker process (one per GPU: torch, the CUDA context, NCCL buffers), besides
#: the API server and engine core processes (``CPU_RUNTIME_GB`` in components/kubernetes/pods.py).
GPU_WORKER_HOST_GB = 2


def check(spec: ServiceSpec) -> None:
    """A configured ``vllm:cpu`` / ``vllm:memoryGb`` must hold what a GPU pod runs, or the pod is throttled
    into timeouts or OOM-killed mid-load, long after ``pulumi up`` returned.

    Memory: the ``/dev/shm`` volume (a ``medium: Memory`` emptyDir, whose files "count against your
    container's memory limit" per the Kubernetes docs, Volumes/emptyDir: what NCCL and vLLM's shared-memory
    broadcast write there is charged to the pod; sized per GPU in pods.py), the
    API server and engine core, and one worker process per GPU. The weights stream from the safetensors
    files through the page cache, which the kernel reclaims within the limit, so they do not raise it.
    CPU: one core per GPU worker (each drives its GPU from a busy host loop) plus one for the API server
    and engine core.
    """
    if spec.gpu is None:
        return
    from components.kubernetes import pods  # the pod's own sizes; loads the Kubernetes SDK, used here only

    k8s, gpus = settings(spec), spec.gpu.count
    memory = pods.shm_gb(spec) + pods.CPU_RUNTIME_GB + GPU_WORKER_HOST_GB * gpus
    if k8s.memory_gb is not None and k8s.memory_gb < memory:
        raise SpecError(
            f"{PROJECT}:memoryGb",
            f"{k8s.memory_gb:g}",
            f">= {memory} for {spec.gpu}: {pods.shm_gb(spec)} GB /dev/shm (memory-backed, counted in the "
            f"pod's limit) + {pods.CPU_RUNTIME_GB} GB API server and engine + {GPU_WORKER_HOST_GB} GB per "
            "GPU worker",
        )
    cpus = gpus + 1
    if k8s.cpu is not None and k8s.cpu < cpus:
        raise SpecError(
            f"{PROJECT}:cpu",
            f"{k8s.cpu:g}",
            f">= {cpus} for {spec.gpu}: a core per GPU worker + one for the server",
        )


def public_view(spec: ServiceSpec) -> dict[str, Any]:
    k8s = settings(spec)
    return {
        "namespace": k8s.namespace,
        "gpuNodeSelector": k8s.gpu_node_selector,
        "storageClass": k8s.storage_class,
        "serviceType": k8s.service_type,
        "installLeaderWorkerSet": k8s.install_leader_worker_set,
        "prometheusOperator": k8s.prometheus_operator,
    }


BACKEND = Backend(
    name="kubernetes",
    title="Kubernetes",
    provider_namespace="kubernetes",
    provider_sdk="pulumi_kubernetes",
    provider_keys=("kubernetes:context",),
    keys=(
        "namespace",
        "gpuNodeSelector",
        "storageClass",
        "serviceType",
        "cpu",
        "memoryGb",
        "installLeaderWorkerSet",
        "maxSurge",
        "prometheusOperator",
    ),
    catalog=CATALOG,
    read_placement=read_placement,
    public_view=public_view,
    check=check,
    # A pod's cache volume holds only the weights and vLLM's compile cache.
    disk_overhead_gb=2,
    unsupported=MappingProxyType({Feature.SPOT: "false on kubernetes (the cluster's node pools decide)"}),
    plan_properties=MappingProxyType(
        {
            "kubernetes:apps/v1:Deployment": (
                "spec.replicas",
                "spec.strategy.rollingUpdate",
                "spec.template.spec.containers.*.image",
                "spec.template.spec.containers.*.resources.limits",
                "spec.template.spec.containers.*.startupProbe.httpGet.path",
                "gpuNodes = spec.template.spec.affinity.nodeAffinity"
                ".requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.*.matchExpressions",
            ),
            "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet": (
                "spec.replicas",
                "spec.leaderWorkerTemplate.size",
                "spec.leaderWorkerTemplate.restartPolicy",
            ),
            "kubernetes:core/v1:Service": ("spec.type", "spec.ports", "spec.selector"),
            "kubernetes:policy/v1:PodDisruptionBudget": ("spec.minAvailable", "spec.maxUnavailable"),
            "kubernetes:networking.k8s.io/v1:NetworkPolicy": ("spec.policyTypes",),
        }
    ),
)
