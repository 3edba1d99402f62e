"""``vllm:router: inference-gateway``: the Gateway API Inference Extension (GIE) picks the replica for each
request, by prefix-cache affinity, queue depth and KV-cache use, instead of a Service balancing connections.

A ``Gateway`` of the user's class (``vllm:gatewayClassName``: GKE, Istio, kgateway, Envoy Gateway, ...), or
of the implementation the stack installs (``vllm:installGateway``: gateway_install.py), or the user's
existing Gateway (``vllm:gatewayName``, whose listeners are theirs), routes ``/v1`` (and
``/health``) by an ``HTTPRoute`` to an ``InferencePool``, which selects the serving pods (single-node
replicas, or a LeaderWorkerSet's leaders) on vLLM's port. For each request the Gateway asks the pool's
endpoint picker (EPP, over Envoy ext-proc) which pod to send it to; the EPP scrapes each pod's ``/metrics``
for its queue and KV-cache use, and remembers which prompt prefixes it sent where.

Pinned: GIE v1.5.0, the last release with the reference EPP in its repository (from v1.6.0 the EPP lives
in llm-d/llm-d-router; GIE keeps the InferencePool API): its InferencePool CRD
(config/crd/bases/inference.networking.k8s.io_inferencepools.yaml, ``inference.networking.k8s.io/v1``),
its EPP image (``registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0``, config/charts/inferencepool
values.yaml), and its chart's Deployment, Service, RBAC and default scheduling profile
(config/charts/epplib/templates/, config/charts/inferencepool/templates/), which this module declares as
resources. Gateway API: v1.5.1's standard channel (``gateway.networking.k8s.io/v1``). The tests validate
the InferencePool, Gateway and HTTPRoute against those releases' CRDs (tests/crds/).

Exposure under the Gateway: the Gateway is the only endpoint (the ``<name>-api`` Service stays ClusterIP);
the route matches only the public paths; vLLM still checks the API key on ``/v1``; TLS for ``vllm:domain``
terminates at the Gateway's HTTPS listener (the stack's serves ``vllm:tlsSecretName``), and the Gateway
reaches the pods in plain HTTP (an InferencePool's ``appProtocol`` is ``http`` or ``kubernetes.io/h2c``);
Gateway API has no source-range field, so ``vllm:allowedCidrs`` is refused (platform.py says where each
implementation has it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.apps import v1 as apps
from pulumi_kubernetes.core import v1 as core
from pulumi_kubernetes.meta import v1 as meta
from pulumi_kubernetes.rbac import v1 as rbac

from components.canary import MAX_WEIGHT, picked_headers
from components.domain import HTTP_PORT, HTTPS_PORT, DnsRecord, endpoint_purpose
from components.kubernetes import pods
from components.kubernetes.load_balancer import CLUSTER_DOMAIN
from components.kubernetes.settings import settings
from components.launch import HEALTH_PATH, PORT, PUBLIC_EXACT_PATHS, PUBLIC_PATH_PREFIXES
from components.service_spec import ServiceSpec

GIE_VERSION = "v1.5.0"
EPP_IMAGE = f"registry.k8s.io/gateway-api-inference-extension/epp:{GIE_VERSION}"
POOL_GROUP = "inference.networking.k8s.io"
POOL_API_VERSION = f"{POOL_GROUP}/v1"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
#: The EPP's ports (pkg/epp/server/options.go defaults, the chart's containerPorts): Envoy ext-proc, the
#: gRPC health service its probes ask, and its own Prometheus metrics.
EXT_PROC_PORT, HEALTH_PORT, METRICS_PORT = 9002, 9003, 9090
#: The gRPC health service name the chart's probes ask of a single EPP replica (epplib _deployment.yaml).
HEALTH_SERVICE = "inference-extension"
#: The chart's scheduling profile (epplib templates/_config.yaml, also the EPP's built-in default,
#: pkg/epp/config/loader/defaults.go): queue depth (``vllm:num_requests_waiting``) and KV-cache use
#: (``vllm:kv_cache_usage_perc``) weigh 2 each, prefix-cache affinity 3; the highest score wins. The
#: metrics data source scrapes each pod's ``/metrics`` over plain HTTP, which the core extractor reads.
SCORERS = {"queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}
#: What the EPP reads from vLLM's /metrics: the release's built-in vLLM mapping
#: (pkg/epp/framework/plugins/datalayer/extractor/metrics/factories.go, ``defaultEngineConfigs``) but for
#: LoRA: vLLM creates ``vllm:lora_requests_info`` only when it serves LoRA adapters (vllm/v1/metrics/
#: loggers.py), so the built-in mapping fails its extraction on every pod of this stack; an empty spec
#: disables it (loraspec.go: "empty string → disabled"). A user engine config named ``vllm`` replaces the
#: built-in one.
VLLM_METRICS = {
    "name": "vllm",
    "queuedRequestsSpec": "vllm:num_requests_waiting",
    "runningRequestsSpec": "vllm:num_requests_running",
    "kvUsageSpec": "vllm:kv_cache_usage_perc",
    "loraSpec": "",
    "cacheInfoSpec": "vllm:cache_config_info",
}
PROFILE = "default"
#: The chart's EPP sizing, "validated with scale testing at high QPS, achieving p90 scheduler latency
#: within 100ms" (config/charts/inferencepool/values.yaml, v1.5.0): no CPU limit, so it bursts.
EPP_REQUESTS, EPP_LIMITS = {"cpu": "4", "memory": "8Gi"}, {"memory": "16Gi"}
#: The chart's grace for the EPP, "the longest grace period of the pods within the pool" as it sizes it.
EPP_GRACE_SECONDS = 130
#: If the EPP cannot answer, the Gateway picks a pod itself rather than failing the request (the chart's
#: ``failureMode``; the CRD's default is FailClose).
FAILURE_MODE = "FailOpen"
#: A Gateway reports ``Programmed`` once its data plane is configured (Gateway API GatewayConditionType);
#: pulumi-kubernetes waits for nothing on a custom resource unless told (4.18+, as for the LeaderWorkerSet).
#: A cloud load balancer takes minutes to program: the wait allows 20 (a margin, not a measurement).
GATEWAY_WAIT_FOR = {"pulumi.com/waitFor": "condition=Programmed"}
GATEWAY_PROGRAM_SECONDS = 1200
#: GKE's GatewayClasses (gke-l7-global-external-managed, gke-l7-regional-external-managed, gke-l7-rilb,
#: ...). GKE takes the backend timeout and health check from policies attached to the InferencePool, not
#: from HTTPRoute ``timeouts`` (GIE v1.5.0's chart sets those only when the provider is not GKE, and
#: declares a GCPBackendPolicy and a HealthCheckPolicy for GKE:
#: config/charts/inferencepool/templates/gke.yaml).
GKE_CLASS_PREFIX = "gke-l7-"
GKE_POLICY_API_VERSION = "networking.gke.io/v1"
#: Istio's GatewayClass. The EPP serves ext-proc over TLS with a self-signed certificate (``--secure-serving``
#: defaults to true, pkg/epp/server/options.go); Istio's gateway proxy speaks TLS to it only when a
#: DestinationRule says so, which GIE v1.5.0's chart declares for Istio (templates/istio.yaml: mode SIMPLE,
#: insecureSkipVerify). Without it the proxy cannot reach the EPP and, failing open, routes without it.
ISTIO_CLASS = "istio"
ISTIO_API_VERSION = "networking.istio.io/v1beta1"
#: The Gateway gives a request as long as a replica promises to finish one (pods.LONGEST_REQUEST_SECONDS):
#: a Gateway API Duration (GEP-2257).
REQUEST_TIMEOUT = f"{pods.LONGEST_REQUEST_SECONDS}s"


def epp_name(spec: ServiceSpec) -> str:
    """A revision's endpoint picker (its Deployment and Service), named by its slot."""
    return f"{pods.slot_name(spec)}-epp"


def epp_account_name(spec: ServiceSpec) -> str:
    """The stack's endpoint pickers' ServiceAccount and Role, which every revision's picker shares."""
    return f"{spec.name}-epp"


def pool_name(spec: ServiceSpec) -> str:
    """A revision's InferencePool, named by its slot (vllm:canary: one pool per revision)."""
    return pods.slot_name(spec)


def gateway_name(spec: ServiceSpec) -> str:
    return spec.name


def parent_ref(spec: ServiceSpec) -> dict[str, str]:
    """The route's Gateway: the stack's own, in its namespace, or ``vllm:gatewayName``'s."""
    existing = settings(spec).gateway_name
    if existing is None:
        return {"name": gateway_name(spec)}
    namespace, name = existing.split("/")
    return {"name": name, "namespace": namespace}


def is_istio(spec: ServiceSpec) -> bool:
    return settings(spec).gateway_class_name == ISTIO_CLASS


def is_gke(spec: ServiceSpec) -> bool:
    return (settings(spec).gateway_class_name or "").startswith(GKE_CLASS_PREFIX)


def endpoint_picker_config() -> str:
    """The EPP's EndpointPickerConfig (``inference.networking.x-k8s.io/v1alpha1``, apix/config/v1alpha1)."""
    config = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            *({"type": scorer} for scorer in SCORERS),
            {"type": "metrics-data-source", "parameters": {"scheme": "http", "path": "/metrics"}},
            {"type": "core-metrics-extractor", "parameters": {"engineConfigs": [VLLM_METRICS]}},
        ],
        "schedulingProfiles": [
            {
                "name": PROFILE,
                "plugins": [{"pluginRef": scorer, "weight": weight} for scorer, weight in SCORERS.items()],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def epp_args(spec: ServiceSpec, namespace: pulumi.Input[str]) -> list[pulumi.Input[str]]:
    """The chart's arguments for one EPP replica (no leader election), the config given as text."""
    return [
        "--pool-name",
        pool_name(spec),
        "--pool-namespace",
        namespace,
        "--pool-group",
        POOL_GROUP,
        "--zap-encoder",
        "json",
        "--config-text",
        endpoint_picker_config(),
        "--v",
        "1",
        "--tracing=false",
    ]


def pool_spec(spec: ServiceSpec) -> dict[str, Any]:
    """A revision's serving pods (a LeaderWorkerSet's leaders only: its workers carry another component
    label; with vllm:canary its slot's pods only) on vLLM's port, and its EPP's Service."""
    return {
        "selector": {"matchLabels": pods.slot_selector(spec, pods.SERVER)},
        "targetPorts": [{"number": PORT}],
        "appProtocol": "http",
        "endpointPickerRef": {
            "name": epp_name(spec),
            "port": {"number": EXT_PROC_PORT},
            "failureMode": FAILURE_MODE,
        },
    }


def listener(spec: ServiceSpec) -> dict[str, Any]:
    """HTTPS on 443 for ``vllm:domain`` from ``vllm:tlsSecretName``, else HTTP on 80; routes from the
    stack's namespace only."""
    k8s = settings(spec)
    allowed = {"namespaces": {"from": "Same"}}
    if spec.domain is None:
        return {"name": "http", "port": HTTP_PORT, "protocol": "HTTP", "allowedRoutes": allowed}
    return {
        "name": "https",
        "port": HTTPS_PORT,
        "protocol": "HTTPS",
        "hostname": spec.domain,
        "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": k8s.tls_secret_name}]},
        "allowedRoutes": allowed,
    }


def pool_ref(spec: ServiceSpec) -> dict[str, Any]:
    return {"group": POOL_GROUP, "kind": "InferencePool", "name": pool_name(spec)}


def pool_weights(spec: ServiceSpec) -> dict[str, int]:
    """Each revision's backendRef weight, by slot: vllm:canary.weight and the rest of 100. Gateway API:
    a backend gets weight / (sum of the rule's weights) of the requests, 0 none (each 0-1000000)."""
    if spec.canary is None:
        return {}
    return {spec.revision: MAX_WEIGHT - spec.canary.weight, spec.canary.spec.revision: spec.canary.weight}


def route_rules(spec: ServiceSpec) -> list[dict[str, Any]]:
    """The public paths (components/launch.py: ``/v1`` and its subpaths, ``/health``) to the pool; with
    vllm:canary, first a rule per header that picks one revision (canary.picked_headers) to that
    revision's pool alone, then the rest split between the two pools by weight. A request matching both
    goes by the header's rule: Gateway API gives precedence to the match with the most header matches,
    after path (HTTPRouteRule.matches), and to the first rule on a tie."""
    paths = [
        *({"path": {"type": "PathPrefix", "value": prefix.rstrip("/")}} for prefix in PUBLIC_PATH_PREFIXES),
        *({"path": {"type": "Exact", "value": path}} for path in PUBLIC_EXACT_PATHS),
    ]
    revisions = {revision.revision: revision for revision in spec.revisions}
    rules: list[dict[str, Any]] = [
        {
            "matches": [
                {**path, "headers": [{"type": "Exact", "name": header, "value": value}]} for path in paths
            ],
            "backendRefs": [pool_ref(revisions[slot])],
        }
        for header, value, slot in picked_headers(spec)
    ]
    weights = pool_weights(spec)
    rules.append(
        {
            "matches": paths,
            "backendRefs": [
                {**pool_ref(revisions[slot]), **({"weight": weights[slot]} if weights else {})}
                for slot in sorted(revisions)
            ],
        }
    )
    if not is_gke(spec):
        for rule in rules:
            rule["timeouts"] = {"request": REQUEST_TIMEOUT}
    return rules


def route_spec(spec: ServiceSpec) -> dict[str, Any]:
    """The route from the Gateway: ``route_rules``, for ``vllm:domain`` when set."""
    result: dict[str, Any] = {"parentRefs": [parent_ref(spec)], "rules": route_rules(spec)}
    if spec.domain is not None:
        result["hostnames"] = [spec.domain]
    return result


def gateway_address(status: dict[str, Any] | None) -> tuple[str, str]:
    """The Gateway's first address as a DNS record type and value (``status.addresses``: an IPAddress or a
    Hostname, Gateway API GatewayStatusAddress), which a Programmed Gateway has."""
    addresses = (status or {}).get("addresses") or []
    if not addresses:
        raise ValueError("the Gateway has no address, which it has once Programmed (the provider waits)")
    address = addresses[0]
    return ("CNAME" if address.get("type") == "Hostname" else "A"), address["value"]


class Gateway(pulumi.CustomResource):
    """A ``gateway.networking.k8s.io/v1`` Gateway whose ``status`` (its addresses) is read back:
    pulumi-kubernetes' ``apiextensions.CustomResource`` declares no ``status`` output, and a resource's
    outputs are the properties it registers (here ``status``, set by the API server, as an output only)."""

    status: pulumi.Output[Any]

    def __init__(
        self,
        name: str,
        metadata: meta.ObjectMetaArgsDict | None,
        spec: dict[str, Any] | None,
        opts: pulumi.ResourceOptions,
    ) -> None:
        props = {"apiVersion": GATEWAY_API_VERSION, "kind": "Gateway", "metadata": metadata, "spec": spec}
        super().__init__(f"kubernetes:{GATEWAY_API_VERSION}:Gateway", name, {**props, "status": None}, opts)

    @staticmethod
    def existing(name: str, reference: str, opts: pulumi.ResourceOptions) -> Gateway:
        """The Gateway ``<namespace>/<name>`` as it is, read (the id pulumi-kubernetes reads by)."""
        return Gateway(
            name, None, None, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=reference))
        )


@dataclass(frozen=True, kw_only=True)
class InferenceGatewayArgs:
    spec: ServiceSpec
    namespace: pulumi.Input[str]
    workloads: list[pulumi.Resource]  # the Deployments or LeaderWorkerSet whose pods the pool selects
    #: vllm:installGateway's installer (gateway_install.py): the CRDs and the controller that the pools, the
    #: Gateway and the route wait for.
    installed: pulumi.Resource | None = None


class InferenceGateway(pulumi.ComponentResource):
    """The Gateway, HTTPRoute, InferencePool and endpoint picker in front of the replicas.

    Attributes:
        pools: each revision's InferencePool (and endpoint picker), by slot (vllm:canary: two).
        gateway: the Gateway of ``vllm:gatewayClassName`` the stack creates, or ``vllm:gatewayName``'s, read.
        endpoint: ``https://<domain>``, else ``http://<the Gateway's address>``.
        dns_records: with ``vllm:domain``: the record to create.
    """

    endpoint: pulumi.Output[str]
    dns_records: pulumi.Output[list[dict[str, str]]] | None

    def __init__(
        self, name: str, args: InferenceGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:kubernetes:InferenceGateway", name, None, opts)
        spec, namespace = args.spec, args.namespace
        child = pulumi.ResourceOptions(parent=self)
        self._installed = [args.installed] if args.installed is not None else []
        labels = pods.labels(spec, "router")

        def metadata(object_name: str) -> meta.ObjectMetaArgsDict:
            return {"name": object_name, "namespace": namespace, "labels": labels}

        account = epp_account_name(spec)
        account_metadata = metadata(account)
        # One ServiceAccount and Role for every revision's endpoint picker: the Role names no pool.
        self.service_account = core.ServiceAccount(f"{name}-epp", metadata=account_metadata, opts=child)
        # What the EPP reads (the chart's Role and non-SA Role): the pool, the pods it selects, and the
        # optional InferenceObjective/InferenceModelRewrite, which it watches only if their CRDs exist.
        self.role = rbac.Role(
            f"{name}-epp",
            metadata=account_metadata,
            rules=[
                {"api_groups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]},
                {
                    "api_groups": [POOL_GROUP],
                    "resources": ["inferencepools"],
                    "verbs": ["get", "watch", "list"],
                },
                {
                    "api_groups": ["inference.networking.x-k8s.io"],
                    "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                    "verbs": ["get", "watch", "list"],
                },
            ],
            opts=child,
        )
        self.role_binding = rbac.RoleBinding(
            f"{name}-epp",
            metadata=account_metadata,
            subjects=[{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role, self.service_account]),
        )
        # A pool per revision (vllm:canary), each with its own endpoint picker: an EPP serves the one pool
        # its --pool-name names (GIE v1.5.0 pkg/epp/server/options.go: PoolName, a single name). Named by
        # slot, as the revisions' pods are, so a promote changes only the route's weights.
        revisions = sorted(spec.revisions, key=lambda revision: revision.revision)
        self.pools: dict[str, CustomResource] = {}
        for revision in revisions:
            self.pools[revision.revision] = self._pool(
                f"{name}{revision.revision_suffix}", revision, namespace, account
            )
        existing = settings(spec).gateway_name
        if existing is not None:
            self.gateway = Gateway.existing(f"{name}-gateway", existing, child)
        else:
            self.gateway = Gateway(
                f"{name}-gateway",
                metadata={**metadata(gateway_name(spec)), "annotations": dict(GATEWAY_WAIT_FOR)},
                spec={"gatewayClassName": settings(spec).gateway_class_name, "listeners": [listener(spec)]},
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=self._installed,
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=f"{GATEWAY_PROGRAM_SECONDS}s", update=f"{GATEWAY_PROGRAM_SECONDS}s"
                    ),
                ),
            )
        self.route = CustomResource(
            f"{name}-route",
            api_version=GATEWAY_API_VERSION,
            kind="HTTPRoute",
            metadata=metadata(spec.name),
            spec=route_spec(spec),
            # The Gateway routes once the replicas serve, as the Service is created after them; with
            # vllm:canary the weights change only after both revisions' workloads are created or updated,
            # which pulumi-kubernetes reports once every replica is ready; a slot's weight rising from 0
            # is such an update (replica_group.traffic_annotations).
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.gateway, *self.pools.values(), *args.workloads, *self._installed],
            ),
        )
        status = self.gateway.status
        self.dns_records = None
        domain = spec.domain
        if domain is not None:
            self.endpoint = pulumi.Output.from_input(f"https://{domain}")
            self.dns_records = status.apply(
                lambda value: [
                    DnsRecord(domain, *gateway_address(value), endpoint_purpose(domain)).as_output()
                ]
            )
        else:
            self.endpoint = status.apply(lambda value: f"http://{gateway_address(value)[1]}")
        self.register_outputs({"endpoint": self.endpoint, "pools": [pool_name(r) for r in revisions]})

    def _pool(
        self, name: str, spec: ServiceSpec, namespace: pulumi.Input[str], account: str
    ) -> CustomResource:
        """One revision's InferencePool and its endpoint picker (the chart's Deployment and Service), named
        by the revision's slot, the picker's pods labelled by it so that each Service selects its own."""
        labels = pods.slot_labels(spec, "router")
        epp = epp_name(spec)

        def metadata(object_name: str) -> meta.ObjectMetaArgsDict:
            return {"name": object_name, "namespace": namespace, "labels": labels}

        epp_pods = pods.slot_selector(spec, "router")
        container: core.ContainerArgsDict = {
            "name": "epp",
            "image": EPP_IMAGE,
            "args": epp_args(spec, namespace),
            "ports": [
                {"name": "grpc", "container_port": EXT_PROC_PORT},
                {"name": "grpc-health", "container_port": HEALTH_PORT},
                {"name": "metrics", "container_port": METRICS_PORT},
            ],
            "liveness_probe": {
                "grpc": {"port": HEALTH_PORT, "service": HEALTH_SERVICE},
                "initial_delay_seconds": 5,
                "period_seconds": 10,
            },
            "readiness_probe": {
                "grpc": {"port": HEALTH_PORT, "service": HEALTH_SERVICE},
                "period_seconds": 2,
            },
            "env": [
                {"name": "NAMESPACE", "value_from": {"field_ref": {"field_path": "metadata.namespace"}}},
                {"name": "POD_NAME", "value_from": {"field_ref": {"field_path": "metadata.name"}}},
            ],
            "resources": {"requests": EPP_REQUESTS, "limits": EPP_LIMITS},
            # The image is distroless "nonroot" (its Dockerfile's BASE_IMAGE, UID 65532): nothing to grant.
            "security_context": {
                "allow_privilege_escalation": False,
                "capabilities": {"drop": ["ALL"]},
                "run_as_non_root": True,
            },
        }
        template: core.PodTemplateSpecArgsDict = {
            "metadata": {"labels": labels},
            "spec": {
                "service_account_name": account,
                "termination_grace_period_seconds": EPP_GRACE_SECONDS,
                "security_context": {"seccomp_profile": {"type": "RuntimeDefault"}},
                "containers": [container],
            },
        }
        deployment_spec: apps.DeploymentSpecArgsDict = {
            "replicas": 1,
            # One active EPP holds the prefix index; Recreate lets a new one take over at once (chart).
            "strategy": {"type": "Recreate"},
            "selector": {"match_labels": epp_pods},
            "template": template,
        }
        epp_service = core.Service(
            f"{name}-epp",
            metadata=metadata(epp),
            spec={
                "type": "ClusterIP",
                "selector": epp_pods,
                "ports": [
                    {"name": "grpc-ext-proc", "port": EXT_PROC_PORT, "protocol": "TCP"},
                    {"name": "http-metrics", "port": METRICS_PORT, "protocol": "TCP"},
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        pool = CustomResource(
            f"{name}-pool",
            api_version=POOL_API_VERSION,
            kind="InferencePool",
            metadata=metadata(pool_name(spec)),
            spec=pool_spec(spec),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[epp_service, *self._installed]),
        )
        apps.Deployment(
            f"{name}-epp",
            metadata=metadata(epp),
            spec=deployment_spec,
            # Its gRPC health, liveness included, answers NOT_SERVING until it has read its pool
            # (cmd/epp/runner/health.go, without leader election): the pool must exist first, or the
            # kubelet restarts it until then.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_binding, pool]),
        )
        if is_gke(spec):
            self._gke_policies(name, spec, metadata, pool)
        if is_istio(spec):
            CustomResource(
                f"{name}-epp-tls",
                api_version=ISTIO_API_VERSION,
                kind="DestinationRule",
                metadata=metadata(epp),
                spec={
                    "host": pulumi.Output.concat(epp, ".", namespace, f".svc.{CLUSTER_DOMAIN}"),
                    "trafficPolicy": {"tls": {"mode": "SIMPLE", "insecureSkipVerify": True}},
                },
                # Installed by the stack, Istio's CRDs come with its base chart.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[epp_service, *self._installed]),
            )
        return pool

    def _gke_policies(
        self,
        name: str,
        spec: ServiceSpec,
        metadata: Callable[[str], meta.ObjectMetaArgsDict],
        pool: CustomResource,
    ) -> None:
        """GKE's backend timeout (a request may take ``REQUEST_TIMEOUT``) and health check (vLLM's
        ``/health``), attached to the InferencePool as GIE's chart does for GKE."""
        target = {"group": POOL_GROUP, "kind": "InferencePool", "name": pool_name(spec)}
        depends = pulumi.ResourceOptions(parent=self, depends_on=[pool])
        CustomResource(
            f"{name}-backend-policy",
            api_version=GKE_POLICY_API_VERSION,
            kind="GCPBackendPolicy",
            metadata=metadata(pool_name(spec)),
            spec={"targetRef": target, "default": {"timeoutSec": pods.LONGEST_REQUEST_SECONDS}},
            opts=depends,
        )
        CustomResource(
            f"{name}-health-check-policy",
            api_version=GKE_POLICY_API_VERSION,
            kind="HealthCheckPolicy",
            metadata=metadata(pool_name(spec)),
            spec={
                "targetRef": target,
                "default": {
                    "config": {
                        "type": "HTTP",
                        "httpHealthCheck": {"requestPath": HEALTH_PATH, "port": PORT},
                    }
                },
            },
            opts=depends,
        )
