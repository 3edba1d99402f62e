"""Autoscaling on load (``vllm:maxReplicas``): a KEDA ``ScaledObject`` on the serving workload.

KEDA (keda.sh) turns a Prometheus query into an external metric and runs the HorizontalPodAutoscaler that
scales the workload: the Deployment, or the LeaderWorkerSet of a multi-node stack, which has a scale
subresource (LWS scales whole groups). The cluster must run KEDA (docs/autoscaling.md).

Two signals, each a trigger (the HPA runs the larger count of the two when both are set):

- ``vllm:targetQpsPerReplica``: vLLM's own request rate, ``vllm:request_success_total`` (the counter
  ``vllm:request_success`` that vLLM's Prometheus logger keeps per ``model_name`` and ``finished_reason``,
  vllm/v1/metrics/loggers.py) summed over the stack's pods, per second over the rate window. With
  ``metricType: AverageValue`` the HPA divides it by the replicas, so ``threshold = vllm:targetQpsPerReplica``
  is SkyServe's replicas = ceil(qps / target).
- ``vllm:targetQueuePerReplica``: the requests the pods hold, ``vllm:num_requests_running`` plus
  ``vllm:num_requests_waiting`` (gauges per ``model_name`` and engine, same file), each averaged over the
  window so one scrape's burst does not decide; per replica likewise.

``namespace`` is the label Prometheus gives a scraped pod's series (ServiceMonitor, PodMonitor and the
``kubernetes-pods`` scrape job all add it); ``model_name`` is the served model name. Every window is
``scrape.window()``: four scrape intervals of the PodMonitor (``vllm:prometheusOperator``), which sets
the interval; a Prometheus of your own must scrape the pods at least as often (every 15 s). KEDA reads an
empty result as 0 by default (``ignoreNullValues``), which would hide a Prometheus that never scrapes vLLM
behind a stack that never scales: while some vLLM pod always runs (``vllm:minReplicas`` >= 1) an empty
result is an error instead, which the ScaledObject reports and on which the HPA keeps the count.

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

Scale to zero (``vllm:minReplicas: 0``): KEDA deactivates the workload (0 replicas) once every trigger
has been at or below its ``activationThreshold`` for ``cooldownPeriod`` (here the downscale delay), and
activates it (1 replica, then the HPA) when one is above. With no pod, vLLM reports nothing, so what wakes
it is measured in front of vLLM: by default the KEDA HTTP add-on's interceptor, which also holds the
requests while a pod starts (cold_start.py: an ``external-push`` trigger); or ``vllm:activationQuery``, a
request rate measured at the Ingress or Gateway, which goes on counting requests while they fail until a
pod is scheduled (perhaps on a new GPU node), pulls the image and loads the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from components.kubernetes import cold_start, pods, scrape
from components.kubernetes.ray_replica import LWS_API_VERSION
from components.kubernetes.settings import settings
from components.replica_shares import fixed_base_replicas
from components.service_spec import REVISIONS, Autoscaling, ServiceSpec

KEDA_API_VERSION = "keda.sh/v1alpha1"
#: The KEDA release the ScaledObject is written for and validated against (tests/crds/ vendors its CRD);
#: the cluster must run it or a later v2 (docs/autoscaling.md).
KEDA_VERSION = "v2.20.2"
#: How often KEDA reads the metrics (its default is 30 s): a fraction of the shortest useful delay, and the
#: PodMonitor's scrape interval (no new sample between two scrapes).
POLLING_SECONDS = scrape.SCRAPE_INTERVAL_SECONDS


def scale_target(spec: ServiceSpec, name: str) -> dict[str, str]:
    """The workload KEDA scales, named ``name``: the Deployment (the stack's one, or its spot rest beside a
    fixed base), or the LeaderWorkerSet by whole groups (named by its slot, ``pods.slot_name``;
    ray_replica.py)."""
    if spec.nodes == 1:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    return {"apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet", "name": name}


def revision_pods(stack: ServiceSpec, revision: ServiceSpec) -> str:
    """With vllm:canary, the matcher on the ``pod`` label (which PodMonitor targets and the usual
    ``kubernetes-pods`` scrape job set, as they set ``namespace``) that keeps one revision's series: both
    revisions serve vllm:servedModelName, so ``model_name`` cannot tell them apart. A Deployment's pods are
    named ``<its ReplicaSet: <deployment>-<pod-template-hash>>-<random suffix>``, and slot 2's Deployments
    ``<name>-rev2`` and ``<name>-rev2-spot`` (spot_pods.serving_groups), so slot 2's pods are those named
    ``<name>-rev2-...`` and slot 1's the others: a pod-template-hash is drawn from an alphabet without
    vowels (k8s.io/apimachinery pkg/util/rand ``alphanums``), so no slot-1 pod's name starts so, and the
    ``generateName`` cut at 58 characters keeps a prefix of at most 45 (``NAME_MAX`` 40). A LeaderWorkerSet's
    pods are ``<lws>-<group>[-<worker>]`` (indices are digits), its slot 2's LWS ``<name>-rev2``. PromQL regex
    matchers are fully anchored. Empty for a stack of one revision."""
    if stack.canary is None:
        return ""
    (second,) = [each for each in stack.revisions if each.revision == REVISIONS[1]]
    operator = "=~" if revision.revision == REVISIONS[1] else "!~"
    return f',pod{operator}"{pods.slot_name(second)}-.+"'


def _series(spec: ServiceSpec, name: str, revision: str = "") -> str:
    """``revision``: ``revision_pods``' matcher, or empty."""
    return f'{name}{{namespace="{settings(spec).namespace}",model_name="{spec.served_model_name}"{revision}}}'


def _beyond_base(spec: ServiceSpec, total: str, per_replica: float) -> str:
    """``total`` (summed over every pod), less what a fixed on-demand base holds at target (never below 0):
    what the scaled spot pods are for. Without a base, ``total`` itself."""
    base = fixed_base_replicas(spec)
    if not base:
        return total
    return f"clamp_min({total} - {base * per_replica:g}, 0)"


def request_rate_query(
    spec: ServiceSpec, scrape_seconds: int = scrape.SCRAPE_INTERVAL_SECONDS, revision: str = ""
) -> str:
    """Requests per second the stack's (with ``revision``, one revision's) vLLM servers completed over the
    rate window; with a fixed on-demand base, those beyond what the base serves at target."""
    policy = spec.autoscaling
    if policy is None or policy.target_qps_per_replica is None:
        raise ValueError(f"stack {spec.stack} does not scale on request rate")
    window = scrape.window(scrape_seconds)
    rate = f"sum(rate({_series(spec, 'vllm:request_success_total', revision)}[{window}]))"
    return _beyond_base(spec, rate, policy.target_qps_per_replica)


def queue_query(
    spec: ServiceSpec, scrape_seconds: int = scrape.SCRAPE_INTERVAL_SECONDS, revision: str = ""
) -> str:
    """Requests the stack's (with ``revision``, one revision's) vLLM servers hold, running plus waiting,
    averaged over the window; with a fixed on-demand base, those beyond what the base holds at target."""
    policy = spec.autoscaling
    if policy is None or policy.target_queue_per_replica is None:
        raise ValueError(f"stack {spec.stack} does not scale on queue depth")
    window = scrape.window(scrape_seconds)
    held = " + ".join(
        f"sum(avg_over_time({_series(spec, name, revision)}[{window}]))"
        for name in ("vllm:num_requests_running", "vllm:num_requests_waiting")
    )
    return _beyond_base(spec, f"({held})", policy.target_queue_per_replica)


def _prometheus_trigger(
    spec: ServiceSpec, name: str, query: str, threshold: float, *, of_vllm: bool
) -> dict[str, Any]:
    metadata = {
        "serverAddress": settings(spec).prometheus_url,
        "query": query,
        "threshold": f"{threshold:g}",
        # Any request (beyond the base's share) wakes a workload scaled to zero (only used when
        # minReplicaCount is 0).
        "activationThreshold": "0",
    }
    if of_vllm and spec.autoscaling is not None and spec.autoscaling.min_replicas > 0:
        metadata["ignoreNullValues"] = "false"  # a vLLM pod always reports: empty is a broken scrape
    return {"type": "prometheus", "name": name, "metricType": "AverageValue", "metadata": metadata}


def triggers(
    spec: ServiceSpec,
    policy: Autoscaling,
    scrape_seconds: int = scrape.SCRAPE_INTERVAL_SECONDS,
    revision: str = "",
) -> list[dict[str, Any]]:
    """The ScaledObject's triggers: one per target the stack sets (on ``revision``'s pods, with a canary),
    then what wakes it from zero: the interceptor's requests (cold_start.py) or the activation query."""
    found = []
    if policy.target_qps_per_replica is not None:
        query = request_rate_query(spec, scrape_seconds, revision)
        found.append(
            _prometheus_trigger(spec, "vllm-requests", query, policy.target_qps_per_replica, of_vllm=True)
        )
    if policy.target_queue_per_replica is not None:
        query = queue_query(spec, scrape_seconds, revision)
        found.append(
            _prometheus_trigger(spec, "vllm-queue", query, policy.target_queue_per_replica, of_vllm=True)
        )
    if cold_start.holds_requests(spec):
        found.append(cold_start.trigger(spec))
    activation_query = settings(spec).activation_query
    if activation_query is not None and policy.target_qps_per_replica is not None:
        found.append(
            _prometheus_trigger(
                spec, "front-requests", activation_query, policy.target_qps_per_replica, of_vllm=False
            )
        )
    return found


def scaled_object_spec(
    spec: ServiceSpec, policy: Autoscaling, target: dict[str, str], revision: str = ""
) -> dict[str, Any]:
    """KEDA's spec for the stack (or revision) ``spec``, scaling ``target`` within ``policy``'s bounds (the
    stack's, or less the base for the spot Deployment) on ``revision``'s pods' load."""
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
        "triggers": triggers(spec, policy, revision=revision),
    }


@dataclass(frozen=True, kw_only=True)
class AutoscalerArgs:
    spec: ServiceSpec
    scaled: ServiceSpec  # the scaled workload's spec, with its bounds: the stack's, or its spot rest's
    namespace: pulumi.Input[str]
    workload: CustomResource | pulumi.CustomResource  # the Deployment or the LeaderWorkerSet
    target: dict[str, str]  # its scaleTargetRef: apiVersion, kind, name
    revision: str = ""  # revision_pods' matcher: with vllm:canary, the load of this revision's pods only
    cold_start: cold_start.ColdStart | None = None  # the interceptor's route the trigger names


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
                "name": pods.slot_name(spec),
                "namespace": args.namespace,
                "labels": pods.slot_labels(spec, "autoscaler"),
            },
            spec=scaled_object_spec(spec, policy, args.target, args.revision),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[args.workload, *([args.cold_start] if args.cold_start is not None else [])],
            ),
        )
        self.register_outputs({"scaledObject": pods.slot_name(spec)})
