"""An autoscaled service may not grow past the GPU budget its organisation sets (policy config ``maxGpus``).

Autoscaling (``vllm:maxReplicas``) hands the replica count to the platform's autoscaler, so what a stack
can cost is its upper bound: ``max replicas x GPUs per replica``. This stack policy finds each autoscaler
(GCP ``RegionAutoscaler``/``Autoscaler``, an AWS target-tracking ``Policy``, a KEDA ``ScaledObject``),
follows it to what it scales and that to its machine or pod template, and flags the stack when their
bounds together exceed the budget (a stack over several regions has an autoscaler per region).
Links are the engine's property dependencies (known in a preview), else equal names or self links; what
cannot be resolved or counted is not judged. Pure functions, like validators.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol


class StackResource(Protocol):
    """What this policy reads of a resource (validators.StackResource has it): no import, so the module
    stands alone in the pack and in the tests."""

    type: str
    urn: str
    props: Mapping[str, Any]
    property_dependencies: Mapping[str, Sequence[str]]

    @property
    def name(self) -> str: ...


#: Without a configured budget: 64 GPUs, eight 8-GPU machines.
DEFAULT_MAX_GPUS: Final = 64
CONFIG_KEY: Final = "maxGpus"

GCP_AUTOSCALERS: Final = frozenset(
    {"gcp:compute/regionAutoscaler:RegionAutoscaler", "gcp:compute/autoscaler:Autoscaler"}
)
GCP_GROUPS: Final = frozenset(
    {
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
        "gcp:compute/instanceGroupManager:InstanceGroupManager",
    }
)
GCP_TEMPLATES: Final = frozenset(
    {
        "gcp:compute/instanceTemplate:InstanceTemplate",
        "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate",
    }
)
AWS_POLICY: Final = "aws:autoscaling/policy:Policy"
AWS_GROUP: Final = "aws:autoscaling/group:Group"
AWS_TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
SCALED_OBJECT: Final = "kubernetes:keda.sh/v1alpha1:ScaledObject"
K8S_WORKLOADS: Final = {
    ("apps/v1", "Deployment"): "kubernetes:apps/v1:Deployment",
    (
        "leaderworkerset.x-k8s.io/v1",
        "LeaderWorkerSet",
    ): "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet",
}
GPU_RESOURCE: Final = "nvidia.com/gpu"

#: GPUs of GCP machine types that carry them built in: A2, A3, A4 name the count (``a3-highgpu-8g``); G2
#: sizes by vCPUs (GCP "GPU machine types": g2-standard-4 to -32 have 1 L4, -24 2, -48 4, -96 8).
_GCP_COUNTED_MACHINE: Final = re.compile(r"^a\d+-[a-z]+gpu-(\d+)g$")
_G2_GPUS: Final = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
#: GPUs per AWS instance type (EC2 "Accelerated computing instance types"): P families by type, G families
#: by size (12xlarge and 24xlarge have 4, 48xlarge and metal 8, the others 1).
_AWS_P_GPUS: Final = {
    "p3.2xlarge": 1,
    "p3.8xlarge": 4,
    "p3.16xlarge": 8,
    "p3dn.24xlarge": 8,
    "p4d.24xlarge": 8,
    "p4de.24xlarge": 8,
    "p5.4xlarge": 1,
    "p5.48xlarge": 8,
    "p5e.48xlarge": 8,
    "p5en.48xlarge": 8,
    "p6-b200.48xlarge": 8,
}
_AWS_G_FAMILY: Final = re.compile(r"^(g4dn|g5|g6|g6e)\.(\w+)$")
_AWS_G_GPUS_BY_SIZE: Final = {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8, "metal": 8}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):  # a value unknown in a preview (validators.UNKNOWN) is no number either
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _last(reference: Any) -> str | None:
    """A self link, id or name reduced to its last segment (``.../instanceGroupManagers/vllm-mig``)."""
    return reference.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] if isinstance(reference, str) else None


def _linked(user: StackResource, prop: str, reference: Any, candidates: Iterable[StackResource]) -> list:
    """Candidates ``user`` names in ``prop``: by property dependency, else by an equal name or link."""
    candidates = list(candidates)
    by_dependency = [c for c in candidates if c.urn in user.property_dependencies.get(prop, ())]
    if by_dependency:
        return by_dependency
    wanted = _last(reference)
    keys = ("id", "selfLink", "selfLinkUnique", "name", "arn")
    return [c for c in candidates if wanted is not None and wanted in {_last(c.props.get(k)) for k in keys}]


def gcp_gpus(template: Mapping[str, Any]) -> int | None:
    counts = [
        _number(a.get("count")) for a in template.get("guestAccelerators") or [] if isinstance(a, Mapping)
    ]
    if counts:
        return None if None in counts else int(sum(counts))
    machine = _last(template.get("machineType")) or ""
    if found := _GCP_COUNTED_MACHINE.match(machine):
        return int(found.group(1))
    if found := re.match(r"^g2-standard-(\d+)$", machine):
        return _G2_GPUS.get(int(found.group(1)))
    return None


def aws_gpus(instance_type: Any) -> int | None:
    if not isinstance(instance_type, str):
        return None
    if instance_type in _AWS_P_GPUS:
        return _AWS_P_GPUS[instance_type]
    if found := _AWS_G_FAMILY.match(instance_type):
        return _AWS_G_GPUS_BY_SIZE.get(found.group(2), 1)
    return None


def pod_gpus(template: Any) -> int:
    containers = _dig(template, "spec", "containers") or []
    limits = [_number(_dig(c, "resources", "limits", GPU_RESOURCE)) for c in containers]
    return int(sum(limit for limit in limits if limit is not None))


def _gcp_bound(scaler: StackResource, resources: Sequence[StackResource]) -> tuple[float, int] | None:
    most = _number(_dig(scaler.props, "autoscalingPolicy", "maxReplicas"))
    groups = _linked(
        scaler, "target", scaler.props.get("target"), (r for r in resources if r.type in GCP_GROUPS)
    )
    templates = [r for r in resources if r.type in GCP_TEMPLATES]
    gpus = {
        gcp_gpus(template.props)
        for group in groups
        for version in group.props.get("versions") or []
        for template in _linked(group, "versions", _dig(version, "instanceTemplate"), templates)
    }
    return (most, gpus.pop()) if most is not None and len(gpus) == 1 and None not in gpus else None


def _aws_bound(policy: StackResource, resources: Sequence[StackResource]) -> tuple[float, int] | None:
    groups = _linked(
        policy,
        "autoscalingGroupName",
        policy.props.get("autoscalingGroupName"),
        (r for r in resources if r.type == AWS_GROUP),
    )
    templates = [r for r in resources if r.type == AWS_TEMPLATE]
    for group in groups:
        most = _number(group.props.get("maxSize"))  # the machines it may run, the rollout surge included
        linked = _linked(group, "launchTemplate", _dig(group.props, "launchTemplate", "id"), templates)
        gpus = {aws_gpus(template.props.get("instanceType")) for template in linked}
        if most is not None and len(gpus) == 1 and None not in gpus:
            return most, gpus.pop()
    return None


def _kubernetes_bound(scaled: StackResource, resources: Sequence[StackResource]) -> tuple[float, int] | None:
    spec = scaled.props.get("spec") or {}
    target = spec.get("scaleTargetRef") or {}
    workload_type = K8S_WORKLOADS.get((target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment")))
    namespace = _dig(scaled.props, "metadata", "namespace")
    for workload in (r for r in resources if r.type == workload_type):
        metadata = workload.props.get("metadata") or {}
        if metadata.get("name") != target.get("name") or metadata.get("namespace") != namespace:
            continue
        most = _number(spec.get("maxReplicaCount"))
        if workload.type.endswith("LeaderWorkerSet"):
            group = _dig(workload.props, "spec", "leaderWorkerTemplate") or {}
            size = int(_number(group.get("size")) or 1)
            worker = group.get("workerTemplate") or group.get("leaderTemplate")
            gpus = pod_gpus(group.get("leaderTemplate") or worker) + (size - 1) * pod_gpus(worker)
        else:
            gpus = pod_gpus(_dig(workload.props, "spec", "template"))
        return (most, gpus) if most is not None else None
    return None


_BOUNDS: Final = (
    (GCP_AUTOSCALERS, _gcp_bound),
    (frozenset({AWS_POLICY}), _aws_bound),
    (frozenset({SCALED_OBJECT}), _kubernetes_bound),
)


def gpu_budget_violations(resources: Sequence[StackResource], max_gpus: int) -> list[tuple[str, str]]:
    """(URN, message) when the stack's autoscalers together may run more than ``max_gpus`` GPUs, reported
    on the first of them. A stack is one service, and its scaled replicas may sit in several groups, each
    with an autoscaler of its own (one per region, beside a fixed on-demand base): their bounds add up."""
    scaled = []
    for types, bound in _BOUNDS:
        for scaler in (r for r in resources if r.type in types):
            if scaler.type == AWS_POLICY and not scaler.props.get("targetTrackingConfiguration"):
                continue
            found = bound(scaler, resources)
            if found is not None:
                scaled.append((scaler, *found))
    total = sum(most * gpus for _, most, gpus in scaled)
    if not scaled or total <= max_gpus:
        return []
    names = ", ".join(scaler.name for scaler, _, _ in scaled)
    replicas = int(sum(most for _, most, _ in scaled))
    per_replica = {gpus for _, _, gpus in scaled}
    gpus = f"{per_replica.pop()} GPUs" if len(per_replica) == 1 else "their GPUs"
    message = (
        f"autoscaler{'s' if len(scaled) > 1 else ''} {names} may run {replicas} replicas x {gpus} = "
        f"{int(total)} GPUs, over the budget of {max_gpus} (policy config {CONFIG_KEY}): lower "
        "vllm:maxReplicas or raise the budget"
    )
    return [(scaled[0][0].urn, message)]
