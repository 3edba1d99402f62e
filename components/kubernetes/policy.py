"""Kubernetes's scanners for the policy pack: pure functions over plain property dicts (the contract:
policy/validators.py). Property names are the Kubernetes API's, as Pulumi hands them to a policy.

Of the shared resource policies it takes part in the secrets one only; its stack policies are the
plain-HTTP advisory and the GPU budget. No autohealing facts: a Deployment's or LeaderWorkerSet's
controller replaces the pods that fail, and the kubelet restarts containers that fail their probes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final

from components.kubernetes.gpu_nodes import GPU_RESOURCE
from policy import gpu_budget
from policy.validators import (
    SECRETS,
    UNKNOWN,
    PlatformPolicy,
    PlatformStackPolicy,
    Scanner,
    StackResource,
    collect,
    decoded_texts,
    is_number,
    is_secret_name,
    named_secrets,
    strings,
    text_secrets,
)

CONFIG_MAP: Final = "kubernetes:core/v1:ConfigMap"
SERVICE: Final = "kubernetes:core/v1:Service"
DEPLOYMENT: Final = "kubernetes:apps/v1:Deployment"
LEADER_WORKER_SET: Final = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
SCALED_OBJECT: Final = "kubernetes:keda.sh/v1alpha1:ScaledObject"
GATEWAY: Final = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
#: Where each workload kind keeps its pod specs.
POD_SPEC_PATHS: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = {
    "kubernetes:core/v1:Pod": (("spec",),),
    DEPLOYMENT: (("spec", "template", "spec"),),
    "kubernetes:apps/v1:StatefulSet": (("spec", "template", "spec"),),
    "kubernetes:apps/v1:DaemonSet": (("spec", "template", "spec"),),
    "kubernetes:batch/v1:Job": (("spec", "template", "spec"),),
    LEADER_WORKER_SET: (
        ("spec", "leaderWorkerTemplate", "leaderTemplate", "spec"),
        ("spec", "leaderWorkerTemplate", "workerTemplate", "spec"),
    ),
}

#: A pod reads a Secret through ``secretKeyRef``, a structure, never a string naming it.
SECRET_REFERENCE: Final = None


def _container_secrets(container: Mapping[str, Any]) -> list[str]:
    name = container.get("name", "?")
    violations = []
    for variable in collect(container, "env"):
        if not isinstance(variable, Mapping) or not isinstance(variable.get("name"), str):
            continue
        value, source = variable.get("value"), variable.get("valueFrom")
        literal = value is not None and value is not UNKNOWN and value != ""
        not_from_secret = isinstance(source, Mapping) and "secretKeyRef" not in source
        if is_secret_name(variable["name"]) and (literal or not_from_secret):
            violations.append(
                f"container {name!r} env {variable['name']} is not from a Secret: use valueFrom.secretKeyRef"
            )
        elif isinstance(value, str):
            violations += text_secrets(f"container {name!r} env {variable['name']}", [value])
    argv = strings(collect(container, "command") + collect(container, "args"))
    return violations + text_secrets(f"container {name!r} command line", [" ".join(argv)])


def _pod_secrets(props: Mapping[str, Any], *, paths: tuple[tuple[str, ...], ...]) -> list[str]:
    violations: list[str] = []
    for path in paths:
        for spec in collect(props, *path):
            containers = collect(spec, "initContainers") + collect(spec, "containers")
            for container in containers:
                if isinstance(container, Mapping):
                    violations += _container_secrets(container)
    return list(dict.fromkeys(violations))


def _config_map_secrets(props: Mapping[str, Any]) -> list[str]:
    data, binary = props.get("data"), props.get("binaryData")
    texts = strings(data.values()) if isinstance(data, Mapping) else []
    if isinstance(binary, Mapping):
        texts += [text for value in strings(binary.values()) for text in decoded_texts(value)]
    violations = named_secrets("ConfigMap data", data) + named_secrets("ConfigMap binaryData", binary)
    return violations + text_secrets("ConfigMap", texts)


# --- Cleartext: a LoadBalancer Service without port 443 (advisory) ---------------------------------------

_HTTPS_PORT: Final = 443


def public_http(resources: Sequence[StackResource]) -> list[StackResource]:
    """LoadBalancer Services that expose no port 443 (vLLM serves TLS behind 443 with vllm:tlsSecretName),
    and Gateways (vllm:router inference-gateway) with no HTTPS listener."""
    found = []
    for resource in resources:
        if resource.type == GATEWAY:
            protocols = collect(resource.props, "spec", "listeners", "protocol")
            if protocols and UNKNOWN not in protocols and "HTTPS" not in protocols:
                found.append(resource)
            continue
        if resource.type != SERVICE or collect(resource.props, "spec", "type") != ["LoadBalancer"]:
            continue
        ports = collect(resource.props, "spec", "ports", "port")
        if UNKNOWN not in ports and _HTTPS_PORT not in [int(p) for p in ports if is_number(p)]:
            found.append(resource)
    return found


# --- GPU budget: a KEDA ScaledObject on a Deployment or LeaderWorkerSet ----------------------------------

#: The workloads a ScaledObject's ``scaleTargetRef`` (apiVersion, kind) may name, as resource types.
WORKLOADS: Final = {
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): LEADER_WORKER_SET,
}


def pod_gpus(template: Any) -> int:
    """The GPUs a pod template's containers ask for (their ``nvidia.com/gpu`` limits)."""
    containers = gpu_budget.dig(template, "spec", "containers") or []
    limits = [gpu_budget.number(gpu_budget.dig(c, "resources", "limits", GPU_RESOURCE)) for c in containers]
    return int(sum(limit for limit in limits if limit is not None))


def _replica_gpus(workload: gpu_budget.StackResource) -> int:
    """The GPUs of one replica of a workload: a pod, or a LeaderWorkerSet's group (its leader and size - 1
    workers)."""
    if workload.type != LEADER_WORKER_SET:
        return pod_gpus(gpu_budget.dig(workload.props, "spec", "template"))
    group = gpu_budget.dig(workload.props, "spec", "leaderWorkerTemplate") or {}
    size = int(gpu_budget.number(group.get("size")) or 1)
    worker = group.get("workerTemplate") or group.get("leaderTemplate")
    return pod_gpus(group.get("leaderTemplate") or worker) + (size - 1) * pod_gpus(worker)


def _scaled_workload(
    scaled: gpu_budget.StackResource, resources: Sequence[gpu_budget.StackResource]
) -> gpu_budget.StackResource | None:
    """The Deployment or LeaderWorkerSet a ScaledObject scales (``scaleTargetRef``, in its namespace)."""
    target = gpu_budget.dig(scaled.props, "spec", "scaleTargetRef") or {}
    workload_type = WORKLOADS.get((target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment")))
    namespace = gpu_budget.dig(scaled.props, "metadata", "namespace")
    for workload in (r for r in resources if r.type == workload_type):
        metadata = workload.props.get("metadata") or {}
        if metadata.get("name") == target.get("name") and metadata.get("namespace") == namespace:
            return workload
    return None


def _scaled_object_bound(
    scaled: gpu_budget.StackResource, resources: Sequence[gpu_budget.StackResource]
) -> tuple[float, int] | None:
    """The ScaledObject's maxReplicaCount and the GPUs of one replica of its workload."""
    workload = _scaled_workload(scaled, resources)
    most = gpu_budget.number(gpu_budget.dig(scaled.props, "spec", "maxReplicaCount"))
    return None if workload is None or most is None else (most, _replica_gpus(workload))


def _fixed_workload_bound(
    workload: gpu_budget.StackResource, resources: Sequence[gpu_budget.StackResource]
) -> tuple[float, int] | None:
    """A workload no ScaledObject scales (the on-demand base beside a scaled spot Deployment): its
    ``replicas`` (the API server's default 1 when unset) and the GPUs of one replica."""
    scalers = (r for r in resources if r.type == SCALED_OBJECT)
    if any(_scaled_workload(scaler, resources) is workload for scaler in scalers):
        return None
    replicas = gpu_budget.number(gpu_budget.dig(workload.props, "spec", "replicas"))
    return (1.0 if replicas is None else replicas), _replica_gpus(workload)


SCANNERS: Final[Mapping[str, Mapping[str, Scanner]]] = {
    SECRETS: {
        **{kind: partial(_pod_secrets, paths=paths) for kind, paths in POD_SPEC_PATHS.items()},
        CONFIG_MAP: _config_map_secrets,
    },
}
DESCRIPTIONS: Final[Mapping[str, str]] = {}
POLICIES: Final[tuple[PlatformPolicy, ...]] = ()
STACK_POLICIES: Final[tuple[PlatformStackPolicy, ...]] = ()
AUTOHEALING: Final = None
PUBLIC_HTTP: Final = public_http
GPU_BUDGET: Final[Mapping[str, gpu_budget.Bound]] = {SCALED_OBJECT: _scaled_object_bound}
FIXED_GPUS: Final[Mapping[str, gpu_budget.Bound]] = dict.fromkeys(WORKLOADS.values(), _fixed_workload_bound)
