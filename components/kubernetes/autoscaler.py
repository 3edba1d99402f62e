"""Autoscaling on load (``vllm:maxReplicas``): a KEDA ``ScaledObject`` on the serving workload.

KEDA (keda.sh) turns a Prometheus query into an external metric and runs the HorizontalPodAutoscaler that
scales the workload: the Deployment, or the LeaderWorkerSet of a multi-node stack, which has a scale
subresource (LWS scales whole groups). The cluster must run KEDA (README "Autoscaling").

The query is vLLM's own request rate: ``vllm:request_success_total`` (the counter ``vllm:request_success``
that vLLM's Prometheus logger keeps per ``model_name`` and ``finished_reason``, vllm/v1/metrics/loggers.py)
summed over the stack's pods, per second over a minute. With ``metricType: AverageValue`` the HPA divides
it by the replicas, so ``threshold = vllm:targetQpsPerReplica`` is SkyServe's replicas = ceil(qps / target).
``namespace`` is the label Prometheus gives a scraped pod's series (ServiceMonitor, PodMonitor and the
``kubernetes-pods`` scrape job all add it); ``model_name`` is the served model name.

Delays are the HPA's stabilization windows (``advanced.horizontalPodAutoscalerConfig.behavior``): scaling
up follows the lowest recommendation of the last ``upscaleDelaySeconds``, down the highest of the last
``downscaleDelaySeconds`` (HPAScalingRules.stabilizationWindowSeconds, 0-3600): load must stay high (or
low) for the whole window, as in SkyServe.

With an on-demand base (``vllm:spot`` and ``vllm:onDemandBaseReplicas``) the base Deployment keeps its
count and the ScaledObject scales the spot Deployment between the bounds less the base. The HPA divides an
``AverageValue`` metric by the replicas of its scale target alone (autoscaling/v2 MetricTarget:
``averageValue`` is "the target value of the average of the metric across all relevant pods"; the HPA
algorithm's desiredReplicas = ceil(currentReplicas x currentMetricValue / desiredMetricValue)), while the
request rate counts the base's pods too: scaling the spot pods on it would add a spot pod for every base
pod's worth of traffic. So the spot Deployment scales on the rate beyond what the base serves at target,
``clamp_min(<rate> - base x target, 0)``: spot pods = ceil(rate / target) - base, SkyServe's count less
the base. Its lower bound may be 0 (``vllm:minReplicas`` equal to the base): the base's pods go on
reporting the rate, so that excess rate is also what activates the spot Deployment (above 0 when the
base is over target), and no ``vllm:activationQuery`` is needed.

Scale to zero (``vllm:minReplicas: 0``): KEDA deactivates the workload (0 replicas) once every trigger has
been at or below its ``activationThreshold`` for ``cooldownPeriod`` (here the downscale delay), and
activates it (1 replica, then the HPA) when one is above. With no pod, vLLM reports nothing, so a second
trigger reads ``vllm:activationQuery``, a request rate measured in front of vLLM (the Ingress or Gateway),
which goes on counting requests while they fail. Cold start: the first requests fail until a pod is
scheduled (perhaps on a new GPU node), pulls the image and loads the model: up to the pod's start budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from components.kubernetes import pods
from components.kubernetes.ray_replica import LWS_API_VERSION
from components.kubernetes.settings import settings
from components.replica_shares import fixed_base_replicas
from components.service_spec import Autoscaling, ServiceSpec

KEDA_API_VERSION = "keda.sh/v1alpha1"
#: How often KEDA reads the metrics (its default is 30 s): a fraction of the shortest useful delay.
POLLING_SECONDS = 15
#: The rate's window: SkyServe measures QPS over 60 s.
RATE_WINDOW = "1m"


def scale_target(spec: ServiceSpec, deployment: str) -> dict[str, str]:
    """The workload KEDA scales: the Deployment named ``deployment`` (the stack's one, or its spot rest
    beside a fixed base), or the LeaderWorkerSet by whole groups (named ``spec.name``; ray_replica.py)."""
    if spec.nodes == 1:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment}
    return {"apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet", "name": spec.name}


def request_rate_query(spec: ServiceSpec) -> str:
    """Requests per second the stack's vLLM servers completed, over the last minute; with a fixed
    on-demand base, those beyond what the base serves at target (never below 0), which is what the
    scaled spot pods are for."""
    labels = f'namespace="{settings(spec).namespace}",model_name="{spec.served_model_name}"'
    rate = f"sum(rate(vllm:request_success_total{{{labels}}}[{RATE_WINDOW}]))"
    base, policy = fixed_base_replicas(spec), spec.autoscaling
    if not base or policy is None:
        return rate
    return f"clamp_min({rate} - {base * policy.target_qps_per_replica:g}, 0)"


def _prometheus_trigger(spec: ServiceSpec, policy: Autoscaling, name: str, query: str) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": settings(spec).prometheus_url,
            "query": query,
            "threshold": f"{policy.target_qps_per_replica:g}",
            # Any request (beyond the base's share) wakes a workload scaled to zero (only used when
            # minReplicaCount is 0).
            "activationThreshold": "0",
        },
    }


def scaled_object_spec(spec: ServiceSpec, policy: Autoscaling, target: dict[str, str]) -> dict[str, Any]:
    """KEDA's spec for the stack ``spec``, scaling ``target`` within ``policy``'s bounds (the stack's, or
    less the base for the spot Deployment)."""
    triggers = [_prometheus_trigger(spec, policy, "vllm-requests", request_rate_query(spec))]
    activation_query = settings(spec).activation_query
    if activation_query is not None:
        triggers.append(_prometheus_trigger(spec, policy, "front-requests", activation_query))
    return {
        "scaleTargetRef": target,
        "minReplicaCount": policy.min_replicas,
        "maxReplicaCount": policy.max_replicas,
        "pollingInterval": POLLING_SECONDS,
        "cooldownPeriod": policy.downscale_delay_seconds,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": policy.upscale_delay_seconds},
                    "scaleDown": {"stabilizationWindowSeconds": policy.downscale_delay_seconds},
                }
            }
        },
        "triggers": triggers,
    }


@dataclass(frozen=True, kw_only=True)
class AutoscalerArgs:
    spec: ServiceSpec
    scaled: ServiceSpec  # the scaled workload's spec, with its bounds: the stack's, or its spot rest's
    namespace: pulumi.Input[str]
    workload: CustomResource | pulumi.CustomResource  # the Deployment or the LeaderWorkerSet
    target: dict[str, str]  # its scaleTargetRef: apiVersion, kind, name


class Autoscaler(pulumi.ComponentResource):
    """The workload's replicas between ``vllm:minReplicas`` and ``vllm:maxReplicas`` (less a fixed
    on-demand base), owned by KEDA's HPA (the workload declares only its start and ignores later changes
    to its count, so Pulumi never resets it: components/kubernetes/spot_pods.py)."""

    scaled_object: CustomResource

    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:kubernetes:Autoscaler", name, None, opts)
        spec, policy = args.spec, args.scaled.autoscaling
        if policy is None:
            raise ValueError(f"stack {spec.stack} does not autoscale")
        self.scaled_object = CustomResource(
            f"{name}-scaledobject",
            api_version=KEDA_API_VERSION,
            kind="ScaledObject",
            metadata={
                "name": spec.name,
                "namespace": args.namespace,
                "labels": pods.labels(spec, "autoscaler"),
            },
            spec=scaled_object_spec(spec, policy, args.target),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.workload]),
        )
        self.register_outputs({"scaledObject": spec.name})
