"""Scale from zero that holds requests (``vllm:minReplicas 0`` without ``vllm:activationQuery``): the KEDA
HTTP add-on's interceptor in front of the stack's Service.

With no pod, a Service has no endpoint and a request fails at once. The add-on's interceptor (a proxy in
KEDA's namespace) holds a request for a workload at zero until a pod is ready, then forwards it; its external
scaler tells KEDA that requests are waiting. Since add-on v0.14 the routing is an ``InterceptorRoute`` and
the scaling a ScaledObject of one's own with an ``external-push`` trigger naming it (add-on CHANGELOG v0.14.0,
"Add InterceptorRoute CRD to separate routing/interceptor config from scaling config; HTTPScaledObject ...
will be deprecated"): an ``HTTPScaledObject`` would create a ScaledObject of its own on the workload beside
ours, which KEDA refuses. So the stack declares:

- an ``InterceptorRoute`` (``http.keda.sh/v1beta1``, add-on ``HTTP_ADD_ON_VERSION``) to the stack's Service,
  scaling on ``concurrency`` (requests in flight per replica) at ``ceil(vllm:targetQueuePerReplica)``, and
  holding a request for at most ``vllm:coldStartTimeoutSeconds`` (``timeouts.readiness``; default the pod's
  start budget: a new GPU node, the image pull and the model load), and waiting for a response's headers as
  long as a replica promises to finish a request (a non-streaming completion's headers come at its end);
- a trigger on the stack's ScaledObject, ``external-push`` to the add-on's external scaler naming the route
  (components/kubernetes/autoscaler.py);
- an ``ExternalName`` Service ``<stack>-interceptor`` in the stack's namespace, naming the interceptor's
  proxy, for your Ingress/Gateway to route to (an Ingress routes to Services of its own namespace only).

The route matches ``vllm:domain`` (required): the interceptor serves every route in the cluster and picks one
by host, and of two routes for any host the older takes every request (pkg/routing/tablememory.go).

What wakes the service: only requests the route matches. Probes never pass the interceptor (the kubelet
probes the pod's IP); the route takes only the OpenAI API's ``/v1`` paths, so a load balancer's health
check or a scanner elsewhere is answered 404 by the interceptor and counted nowhere; and it requires an
``Authorization`` header (any value: the key itself must stay in its Secret, never in a route), so a
request without a key never wakes a GPU. A request with a wrong key still wakes one replica (only vLLM
knows the key); once a pod serves, vLLM answers it 401 at once, so it holds no concurrency, and the
signals that scale beyond one replica (vLLM's finished requests and queue) count only requests its engine
took.

``vllm:installKedaHttpAddOn`` applies the add-on's pinned release manifest (its CRDs, operator, external
scaler and interceptor, in KEDA's ``keda`` namespace), as ``vllm:installLeaderWorkerSet`` does for LWS:
cluster-wide, so one stack per cluster should own it; KEDA itself must be installed (docs/autoscaling.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core import v1 as core

from components.kubernetes import pods
from components.kubernetes.load_balancer import service_port
from components.kubernetes.settings import settings
from components.service_spec import ServiceSpec

#: The add-on release the route is written for and validated against (tests/crds/ vendors its CRD),
#: current in the add-on's CHANGELOG (v0.15.0, read 2026-12).
HTTP_ADD_ON_VERSION = "v0.15.0"
HTTP_ADD_ON_MANIFEST = (
    "https://github.com/kedacore/http-add-on/releases/download/"
    f"{HTTP_ADD_ON_VERSION}/keda-add-ons-http-{HTTP_ADD_ON_VERSION.removeprefix('v')}.yaml"
)
INTERCEPTOR_ROUTE_API_VERSION = "http.keda.sh/v1beta1"
#: The released manifest's names: kustomize's ``namePrefix: keda-add-ons-http-`` and ``namespace: keda`` over
#: config/interceptor/proxy-service.yaml (port 8080, "proxy") and config/scaler/service.yaml (port 9090).
ADD_ON_NAMESPACE = "keda"
INTERCEPTOR_PROXY = f"keda-add-ons-http-interceptor-proxy.{ADD_ON_NAMESPACE}.svc.cluster.local"
INTERCEPTOR_PROXY_PORT = 8080
EXTERNAL_SCALER = f"keda-add-ons-http-external-scaler.{ADD_ON_NAMESPACE}:9090"
#: The OpenAI API's paths: the only ones that wake the service.
API_PATH_PREFIX = "/v1"


def holds_requests(spec: ServiceSpec) -> bool:
    """Whether requests wake the stack through the interceptor (scale to zero without an activation query)."""
    policy = spec.autoscaling
    return policy is not None and policy.min_replicas == 0 and settings(spec).activation_query is None


def route_name(spec: ServiceSpec) -> str:
    return spec.name


def entry_service_name(spec: ServiceSpec) -> str:
    return f"{spec.name}-interceptor"


def trigger(spec: ServiceSpec) -> dict[str, Any]:
    """The ScaledObject's trigger on the interceptor's requests in flight for the stack's route."""
    return {
        "type": "external-push",
        "name": "interceptor",
        "metadata": {"scalerAddress": EXTERNAL_SCALER, "interceptorRoute": route_name(spec)},
    }


def route_spec(spec: ServiceSpec, service_name: pulumi.Input[str], timeout_seconds: int) -> dict[str, Any]:
    policy = spec.autoscaling
    if policy is None or policy.target_queue_per_replica is None:
        raise ValueError(f"stack {spec.stack} has no queue target for the interceptor")
    return {
        "target": {"service": service_name, "port": service_port(spec)["port"]},
        "rules": [
            {
                "hosts": [spec.domain],  # required (platform.py): the interceptor is the cluster's
                "paths": [{"value": API_PATH_PREFIX}],
                "headers": [{"name": "Authorization"}],
            }
        ],
        # The CRD's targetValue is an integer >= 1: the target's ceiling, never a smaller share per replica.
        "scalingMetric": {"concurrency": {"targetValue": math.ceil(policy.target_queue_per_replica)}},
        # A non-streaming completion sends its headers only once it is done: the interceptor's default wait
        # for them (KEDA_HTTP_RESPONSE_HEADER_TIMEOUT, 300 s: interceptor/config/timeouts.go, v0.15.0) would
        # cut any longer one, which the replicas promise to finish (pods.LONGEST_REQUEST_SECONDS).
        "timeouts": {
            "readiness": f"{timeout_seconds}s",
            "responseHeader": f"{pods.LONGEST_REQUEST_SECONDS}s",
        },
    }


class HttpAddOn(pulumi.ComponentResource):
    """The KEDA HTTP add-on from its pinned release manifest (``vllm:installKedaHttpAddOn``)."""

    manifest: pulumi.ComponentResource  # pulumi_kubernetes.yaml.v2.ConfigFile

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:kubernetes:HttpAddOn", name, None, opts)
        # Imported here: pulumi_kubernetes.yaml loads every API group's module (ray_replica.py does the same).
        from pulumi_kubernetes.yaml import v2 as k8s_yaml

        self.manifest = k8s_yaml.ConfigFile(
            f"{name}-manifest", file=HTTP_ADD_ON_MANIFEST, opts=pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"manifest": HTTP_ADD_ON_MANIFEST})


@dataclass(frozen=True, kw_only=True)
class ColdStartArgs:
    spec: ServiceSpec
    namespace: pulumi.Input[str]
    service_name: pulumi.Input[str]  # the stack's Service, which the interceptor forwards to
    timeout_seconds: int  # vllm:coldStartTimeoutSeconds, or the pod's start budget
    add_on: HttpAddOn | None = None  # installed by this stack: the route waits for its CRD


class ColdStart(pulumi.ComponentResource):
    """The stack's InterceptorRoute and the ExternalName Service your Ingress/Gateway routes to."""

    route: CustomResource
    entry: core.Service

    def __init__(self, name: str, args: ColdStartArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:kubernetes:ColdStart", name, None, opts)
        spec = args.spec
        self.route = CustomResource(
            f"{name}-interceptor-route",
            api_version=INTERCEPTOR_ROUTE_API_VERSION,
            kind="InterceptorRoute",
            metadata={
                "name": route_name(spec),
                "namespace": args.namespace,
                "labels": pods.labels(spec, "cold-start"),
            },
            spec=route_spec(spec, args.service_name, args.timeout_seconds),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.add_on] if args.add_on is not None else None
            ),
        )
        self.entry = core.Service(
            f"{name}-interceptor",
            metadata={
                "name": entry_service_name(spec),
                "namespace": args.namespace,
                "labels": pods.labels(spec, "cold-start"),
            },
            spec={
                "type": "ExternalName",
                "external_name": INTERCEPTOR_PROXY,
                "ports": [{"name": "http", "port": INTERCEPTOR_PROXY_PORT, "protocol": "TCP"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"interceptorRoute": route_name(spec), "entry": entry_service_name(spec)})
