"""The Kubernetes platform: its keys, settings, checks and public view (no SDK: see platforms.py)."""

from __future__ import annotations

import hashlib
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from components.config import PROJECT, ConfigReader, SpecError
from components.kubernetes.gateway_install import IMPLEMENTATIONS
from components.kubernetes.offerings import CATALOG
from components.kubernetes.scrape import scale_out_steps
from components.kubernetes.settings import KubernetesSettings, settings
from components.platforms import Feature, Placement, Platform
from components.rates import NETWORK_VOLUME, SHARED_CLAIM, Storage

if TYPE_CHECKING:
    from components.offerings import Offering
    from components.service_spec import ServiceSpec

#: GPU node labelling schemes (see gpu_nodes.py): how a pod asks for a GPU type.
GPU_NODE_SELECTORS = ("gke", "nvidia", "karpenter", "none")
SERVICE_TYPES = ("LoadBalancer", "ClusterIP")
#: vllm:router: a Service in front of the replicas, or the Gateway API Inference Extension (docs/routing.md).
ROUTERS = ("service", "inference-gateway")
#: Where each Gateway implementation restricts clients by address: Gateway API itself has no field for it.
SOURCE_RANGE_POLICIES = (
    "GKE: a Cloud Armor policy named in a GCPBackendPolicy; Envoy Gateway: a SecurityPolicy's clientCIDRs; "
    "Istio: an AuthorizationPolicy's ipBlocks"
)
#: Schemes whose nodes also say whether they are spot (see spot_pods.py): GKE and Karpenter.
SPOT_NODE_SELECTORS = ("gke", "karpenter")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: A Secret's name is a DNS subdomain (Kubernetes docs, "Object Names and IDs": at most 253 characters,
#: lowercase alphanumerics, '-' and '.', alphanumeric at both ends).
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


#: A PersistentVolumeClaim's name: a DNS subdomain (RFC 1123), at most 253 characters (Kubernetes "Object
#: Names and IDs").
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


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
        raise SpecError(
            f"{PROJECT}:namespace",
            namespace,
            "a DNS label: at most 63 lowercase letters, digits and '-', a letter or digit at both ends",
        )
    if namespace == "default" or namespace.startswith("kube-"):
        raise SpecError(f"{PROJECT}:namespace", namespace, "a namespace of its own (the stack creates it)")
    create_namespace = read.boolean("createNamespace", True)
    storage_class = read.string("storageClass")
    if storage_class is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", storage_class):
        raise SpecError(f"{PROJECT}:storageClass", storage_class, "a StorageClass name (DNS subdomain)")
    header = read.string("affinityHeader")
    if header is not None:
        # A Service balances connections and its only affinity is the client's IP (sessionAffinity ClientIP).
        raise SpecError(
            f"{PROJECT}:affinityHeader",
            header,
            f"unset on kubernetes: a Service cannot follow a header; set {PROJECT}:router inference-gateway, "
            "which routes each request by its prefix, the replicas' queues and KV-cache use",
        )
    router = read.choice("router", ROUTERS, "service")
    gateway = router == "inference-gateway"
    gateway_name = _gateway_name(read, gateway)
    install_gateway = _install_gateway(read, gateway, gateway_name)
    gateway_class_name = _gateway_class_name(
        read, gateway, existing=gateway_name is not None, installed=install_gateway
    )
    # Behind the inference gateway the Service stays in the cluster: the Gateway is the endpoint.
    service_type = read.choice("serviceType", SERVICE_TYPES, "ClusterIP" if gateway else "LoadBalancer")
    if gateway and service_type == "LoadBalancer":
        raise SpecError(
            f"{PROJECT}:serviceType",
            service_type,
            f"ClusterIP with {PROJECT}:router inference-gateway (the Gateway is the endpoint; a LoadBalancer "
            "Service would expose every vLLM path beside it)",
        )
    cache_claim = read.string("cacheClaim")
    if cache_claim is not None and not DNS_SUBDOMAIN.match(cache_claim):
        raise SpecError(
            f"{PROJECT}:cacheClaim",
            cache_claim,
            "the name of a PersistentVolumeClaim in the stack's namespace",
        )
    cache_storage_class = _cache_storage_class(read, cache_claim, create_namespace)
    allowed = read.raw("allowedCidrs")
    if gateway and allowed is not None:
        raise SpecError(
            f"{PROJECT}:allowedCidrs",
            allowed,
            f"unset with {PROJECT}:router inference-gateway: Gateway API has no source-range field, restrict "
            f"clients at your Gateway implementation ({SOURCE_RANGE_POLICIES})",
        )
    if service_type == "ClusterIP" and allowed is not None:
        raise SpecError(
            f"{PROJECT}:allowedCidrs",
            allowed,
            "unset with vllm:serviceType ClusterIP (no load balancer: restrict at your Ingress/Gateway)",
        )
    tls_secret_name = read.string("tlsSecretName")
    if tls_secret_name is not None and not DNS_SUBDOMAIN.match(tls_secret_name):
        raise SpecError(
            f"{PROJECT}:tlsSecretName",
            tls_secret_name,
            "the name of a kubernetes.io/tls Secret in vllm:namespace (a DNS subdomain: lowercase letters, "
            "digits, '-' and '.')",
        )
    gpu_node_selector = read.choice("gpuNodeSelector", GPU_NODE_SELECTORS, "none")
    if read.boolean("spot", False) and gpu_node_selector not in SPOT_NODE_SELECTORS:
        raise SpecError(
            f"{PROJECT}:spot",
            "true",
            f"false with vllm:gpuNodeSelector {gpu_node_selector}: spot pods need nodes labelled by their "
            f"capacity type, set vllm:gpuNodeSelector to {' or '.join(SPOT_NODE_SELECTORS)}",
        )
    base = read.integer("onDemandBaseReplicas", 0, minimum=0)
    if base and read.integer("nodes", 1, minimum=1) > 1:
        raise SpecError(
            f"{PROJECT}:onDemandBaseReplicas",
            base,
            "0 with vllm:nodes > 1 on kubernetes (a LeaderWorkerSet's groups share one pod template, so one "
            "capacity type): all spot, or vllm:spot false",
        )
    return Placement(
        settings=KubernetesSettings(
            namespace=namespace,
            gpu_node_selector=gpu_node_selector,
            storage_class=storage_class,
            service_type=service_type,
            cpu=read.number("cpu", 0),
            memory_gb=read.number("memoryGb", 0),
            install_leader_worker_set=read.boolean("installLeaderWorkerSet", False),
            context=read.string("kubernetes:context"),
            max_surge=read.integer("maxSurge", None, 0),
            prometheus_url=_prometheus_url(read.string("prometheusUrl")),
            activation_query=read.string("activationQuery"),
            cold_start_timeout_seconds=read.integer(
                "coldStartTimeoutSeconds", None, minimum=1, maximum=MAX_COLD_START_SECONDS
            ),
            install_keda_http_add_on=read.boolean("installKedaHttpAddOn", False),
            tls_secret_name=tls_secret_name,
            cache_claim=cache_claim,
            cache_storage_class=cache_storage_class,
            create_namespace=create_namespace,
            prometheus_operator=read.boolean("prometheusOperator", False),
            prometheus_selector=_prometheus_selector(read),
            router=router,
            gateway_class_name=gateway_class_name,
            gateway_name=gateway_name,
            install_gateway=install_gateway,
        )
    )


#: A label's key (an optional DNS-subdomain prefix and '/', then a name) and value (Kubernetes docs,
#: "Labels and Selectors": syntax and character set).
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
DEFAULT_PROMETHEUS_SELECTOR = "release=kube-prometheus-stack"
#: The prefix of the labels the stack puts on everything it creates (components/kubernetes/pods.py labels).
OWN_LABEL_PREFIX = "app.kubernetes.io/"


def _prometheus_selector(read: ConfigReader) -> tuple[tuple[str, str], ...]:
    """``vllm:prometheusSelector``: ``key=value[,key=value...]``, the labels the PodMonitor carries so that
    the cluster's Prometheus selects it (components/kubernetes/monitoring.py)."""
    raw = read.string("prometheusSelector")
    if raw is not None and not read.boolean("prometheusOperator", False):
        raise SpecError(f"{PROJECT}:prometheusSelector", raw, "set with vllm:prometheusOperator true")
    pairs = [item.partition("=") for item in (raw or DEFAULT_PROMETHEUS_SELECTOR).split(",")]
    if not all(
        sep and LABEL_KEY.match(key.strip()) and LABEL_VALUE.match(value.strip()) for key, sep, value in pairs
    ):
        raise SpecError(
            f"{PROJECT}:prometheusSelector",
            raw,
            "labels as key=value[,key=value], those your Prometheus' podMonitorSelector matches (kube-"
            f"prometheus-stack: release=<its Helm release name>; default {DEFAULT_PROMETHEUS_SELECTOR})",
        )
    selector = tuple((key.strip(), value.strip()) for key, _, value in pairs)
    keys = [key for key, _ in selector]
    for key in keys:
        # The stack's own labels (pods.labels) are set beside these and would silently win over a selector
        # that names them: the Prometheus would then never select the PodMonitor.
        if key.startswith(OWN_LABEL_PREFIX) or keys.count(key) > 1:
            raise SpecError(
                f"{PROJECT}:prometheusSelector",
                raw,
                f"labels with distinct keys, none under {OWN_LABEL_PREFIX} (the stack's own labels on every "
                f"object it creates; {key} is)",
            )
    return selector


#: An existing Gateway: ``<namespace>/<name>``, a DNS label and a DNS subdomain.
GATEWAY_REFERENCE = re.compile(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


def _gateway_name(read: ConfigReader, gateway: bool) -> str | None:
    """vllm:gatewayName: an existing Gateway (yours, shared) the route attaches to instead of one the stack
    creates; its listener must admit routes from the stack's namespace (``allowedRoutes``)."""
    name = read.string("gatewayName")
    if name is None:
        return None
    if not gateway:
        raise SpecError(f"{PROJECT}:gatewayName", name, f"set with {PROJECT}:router inference-gateway")
    if not GATEWAY_REFERENCE.match(name):
        raise SpecError(
            f"{PROJECT}:gatewayName",
            name,
            "<namespace>/<name> of an existing Gateway, e.g. gateway-system/public-gateway",
        )
    tls_secret = read.string("tlsSecretName")
    if tls_secret is not None:
        raise SpecError(
            f"{PROJECT}:tlsSecretName",
            tls_secret,
            f"unset with {PROJECT}:gatewayName: that Gateway's HTTPS listener holds the certificate for "
            f"{PROJECT}:domain",
        )
    return name


def _install_gateway(read: ConfigReader, gateway: bool, existing: str | None) -> str | None:
    """vllm:installGateway: a Gateway implementation the stack installs (components/kubernetes/
    gateway_install.py), for the Gateway it creates."""
    name = read.string("installGateway")
    if name is None:
        return None
    if not gateway:
        raise SpecError(f"{PROJECT}:installGateway", name, f"set with {PROJECT}:router inference-gateway")
    if name not in IMPLEMENTATIONS:
        raise SpecError(
            f"{PROJECT}:installGateway",
            name,
            f"one of {', '.join(IMPLEMENTATIONS)} (GKE's gke-l7-* classes are built in and need no install: "
            f"set {PROJECT}:gatewayClassName instead)",
        )
    if existing is not None:
        raise SpecError(
            f"{PROJECT}:installGateway",
            name,
            f"unset with {PROJECT}:gatewayName (that Gateway's implementation runs already)",
        )
    return name


def _gateway_class_name(
    read: ConfigReader, gateway: bool, *, existing: bool, installed: str | None
) -> str | None:
    """vllm:gatewayClassName: the GatewayClass (a cluster's Gateway implementation) of the Gateway the
    inference gateway creates, or of the existing one (optional then), or the class of the implementation
    vllm:installGateway installs; a name of at most 253 characters (Gateway API v1.5.1's Gateway CRD)."""
    name = read.string("gatewayClassName")
    if installed is not None:
        installed_class = IMPLEMENTATIONS[installed].gateway_class
        if name is not None and name != installed_class:
            raise SpecError(
                f"{PROJECT}:gatewayClassName",
                name,
                f"unset or {installed_class} with {PROJECT}:installGateway {installed} (the class it "
                "creates)",
            )
        return installed_class
    if gateway and name is None and not existing:
        raise SpecError(
            f"{PROJECT}:gatewayClassName",
            "",
            f"the GatewayClass of your cluster's Gateway implementation, required with {PROJECT}:router "
            "inference-gateway (`kubectl get gatewayclass`: e.g. gke-l7-regional-external-managed, istio, "
            f"agentgateway), unless {PROJECT}:gatewayName names an existing Gateway or "
            f"{PROJECT}:installGateway installs one ({', '.join(IMPLEMENTATIONS)})",
        )
    if name is not None and not gateway:
        raise SpecError(f"{PROJECT}:gatewayClassName", name, f"set with {PROJECT}:router inference-gateway")
    if name is not None and not DNS_SUBDOMAIN.match(name):
        raise SpecError(
            f"{PROJECT}:gatewayClassName",
            name,
            "a GatewayClass name (DNS subdomain: lowercase letters, digits, '-' and '.', at most 253)",
        )
    return name


def _cache_storage_class(read: ConfigReader, cache_claim: str | None, create_namespace: bool) -> str | None:
    """vllm:cacheStorageClass, checked against the claim and the namespace: a claim the stack does not
    create must exist before the pods, so in a namespace that exists before ``up`` (pulumi-kubernetes
    >= 4.29 refuses to create an object that already exists, #4278: it cannot adopt a namespace you made)."""
    storage_class = read.string("cacheStorageClass")
    if storage_class is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", storage_class):
        raise SpecError(f"{PROJECT}:cacheStorageClass", storage_class, "a StorageClass name (DNS subdomain)")
    if storage_class is not None and cache_claim is None:
        raise SpecError(
            f"{PROJECT}:cacheStorageClass",
            storage_class,
            f"set with {PROJECT}:cacheClaim, the name of the ReadWriteMany claim the stack creates from it",
        )
    if cache_claim is not None and storage_class is None and create_namespace:
        raise SpecError(
            f"{PROJECT}:cacheClaim",
            cache_claim,
            f"a claim that exists before `up`, in a namespace that does too: set {PROJECT}:createNamespace "
            f"false (and create both), or {PROJECT}:cacheStorageClass for the stack to create the claim "
            "(a ReadWriteMany class: Filestore, EFS, NFS)",
        )
    return storage_class


def _prometheus_url(url: str | None) -> str | None:
    if url is not None and not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", url):
        raise SpecError(
            f"{PROJECT}:prometheusUrl", url, "an http(s) URL such as http://prometheus.monitoring:9090"
        )
    return url


def _check_autoscaling(spec: ServiceSpec) -> None:
    """KEDA reads vLLM's request rate from a Prometheus (vllm:prometheusUrl); with no replica left, vLLM
    reports nothing, so scaling back from zero needs a rate measured in front of it (vllm:activationQuery)."""
    k8s = settings(spec)
    if spec.autoscaling is None:
        for key, value in (
            ("prometheusUrl", k8s.prometheus_url),
            ("activationQuery", k8s.activation_query),
            ("coldStartTimeoutSeconds", k8s.cold_start_timeout_seconds),
            ("installKedaHttpAddOn", "true" if k8s.install_keda_http_add_on else None),
        ):
            if value is not None:
                raise SpecError(
                    f"{PROJECT}:{key}", value, "set with vllm:maxReplicas (it drives autoscaling)"
                )
        return
    if k8s.prometheus_url is None:
        raise SpecError(
            f"{PROJECT}:prometheusUrl",
            "",
            "the URL of the Prometheus that scrapes vLLM's /metrics (e.g. "
            "http://prometheus.monitoring:9090), required with vllm:maxReplicas: KEDA reads the request rate "
            "there",
        )
    if spec.autoscaling.min_replicas == 0 and k8s.activation_query is None:
        _check_cold_start(spec)
    elif k8s.cold_start_timeout_seconds is not None or k8s.install_keda_http_add_on:
        key, value = (
            ("coldStartTimeoutSeconds", k8s.cold_start_timeout_seconds)
            if k8s.cold_start_timeout_seconds is not None
            else ("installKedaHttpAddOn", "true")
        )
        raise SpecError(
            f"{PROJECT}:{key}",
            value,
            "set with vllm:minReplicas 0 and no vllm:activationQuery (requests then wake the service through "
            "the KEDA HTTP add-on's interceptor)",
        )
    if k8s.activation_query is not None and spec.autoscaling.target_qps_per_replica is None:
        raise SpecError(
            f"{PROJECT}:activationQuery",
            k8s.activation_query,
            "set with vllm:targetQpsPerReplica, the request rate per replica its trigger scales on",
        )
    if k8s.activation_query is not None and spec.autoscaling.min_replicas > 0:
        raise SpecError(
            f"{PROJECT}:activationQuery",
            k8s.activation_query,
            "set with vllm:minReplicas 0 (it wakes a service scaled to zero)",
        )


#: The longest vllm:coldStartTimeoutSeconds: the longest pod start budget the program gives (a large model
#: on a slow volume loads for well over an hour); a client holding a request longer is unlikely.
MAX_COLD_START_SECONDS = 7200


def _check_cold_start(spec: ServiceSpec) -> None:
    """Scale to zero through the KEDA HTTP add-on's interceptor (components/kubernetes/cold_start.py): the
    traffic must reach it, so your Ingress/Gateway routes to it (ClusterIP), over plain HTTP to the Service,
    and its wake-up signal is requests in flight, the meaning of vllm:targetQueuePerReplica."""
    k8s = settings(spec)
    instead = (
        "with vllm:minReplicas 0, requests reach the service through the KEDA HTTP add-on's interceptor, "
        "which your Ingress/Gateway routes to (or set vllm:activationQuery, a request rate measured in front "
        "of vLLM, and let requests fail until a pod serves)"
    )
    if k8s.inference_gateway:
        # The HTTPRoute's backend is the InferencePool: the Gateway sends each request straight to a pod the
        # endpoint picker chose, so the interceptor (in front of the Service) would never see one.
        raise SpecError(
            f"{PROJECT}:minReplicas",
            "0",
            f">= 1 with {PROJECT}:router inference-gateway, or set {PROJECT}:activationQuery (a request rate "
            "your Gateway measures): the Gateway routes to the InferencePool's pods directly, never through "
            "the KEDA HTTP add-on's interceptor that wakes a service at zero",
        )
    if k8s.service_type != "ClusterIP":
        raise SpecError(f"{PROJECT}:serviceType", k8s.service_type, f"ClusterIP: {instead}")
    if k8s.tls_secret_name is not None:
        raise SpecError(
            f"{PROJECT}:tlsSecretName",
            k8s.tls_secret_name,
            f"unset (TLS ends at your Ingress/Gateway): {instead}",
        )
    if spec.domain is None:
        # The interceptor is one proxy for the whole cluster and picks a route by host (then path and
        # headers); of two routes for any host ("*") with the same path, the older takes every request
        # (pkg/routing/tablememory.go, add-on v0.15.0), so a route without a host of its own would take other
        # stacks' requests, or lose its own to theirs.
        raise SpecError(
            f"{PROJECT}:domain",
            "",
            "the host name your clients call, required with vllm:minReplicas 0: the KEDA HTTP add-on's "
            "interceptor is shared by the cluster and routes each request by its Host (or set "
            "vllm:activationQuery)",
        )
    if spec.autoscaling is not None and spec.autoscaling.target_queue_per_replica is None:
        raise SpecError(
            f"{PROJECT}:targetQueuePerReplica",
            "",
            "a number > 0 with vllm:minReplicas 0: the interceptor scales on requests in flight per replica, "
            f"what vllm:targetQueuePerReplica sets ({instead})",
        )


#: Host memory of one GPU worker process (one per GPU: torch, the CUDA context, NCCL buffers), besides
#: the API server and engine core processes (``CPU_RUNTIME_GB`` in components/kubernetes/pods.py).
GPU_WORKER_HOST_GB = 2


def check_spec(spec: ServiceSpec) -> None:
    """HTTPS (``check_tls``), then the pod's sizes (``check_pod_size``), then a canary's router
    (``check_canary``)."""
    check_tls(spec)
    check_pod_size(spec)
    check_canary(spec)


def check_canary(spec: ServiceSpec) -> None:
    """A weighted second revision is an HTTPRoute's ``backendRefs`` weights over an InferencePool per
    revision (inference_gateway.py). A Service cannot weight: kube-proxy spreads connections over the ready
    endpoints its selector matches, so one Service over both revisions splits by their ready pods and
    cannot keep one warm at weight 0. Multi-node revisions are a LeaderWorkerSet each, whose leaders their
    pool selects (ray_replica.py)."""
    if spec.canary is None:
        return
    value = {"model": spec.canary.spec.model, "weight": spec.canary.weight}
    if not settings(spec).inference_gateway:
        raise SpecError(
            f"{PROJECT}:canary",
            value,
            f"set with {PROJECT}:router inference-gateway, whose HTTPRoute weights a pool per revision: a "
            "Service alone splits requests by ready-pod count, so it cannot honour vllm:canary.weight",
        )


def check_tls(spec: ServiceSpec) -> None:
    """Who serves TLS for ``vllm:domain``: vLLM itself from ``vllm:tlsSecretName``, the inference
    gateway's listener from that Secret, or with ClusterIP the user's Ingress/Gateway. A LoadBalancer
    Service is L4, so a domain without a certificate would be served as plain HTTP under an https://
    endpoint; a certificate without a domain has no host name for clients to verify it against."""
    k8s = settings(spec)
    if (
        spec.domain is not None
        and k8s.tls_secret_name is None
        and k8s.inference_gateway
        and not k8s.gateway_name
    ):
        raise SpecError(
            f"{PROJECT}:domain",
            spec.domain,
            f"set together with {PROJECT}:tlsSecretName (a kubernetes.io/tls Secret for it, which the "
            "inference gateway's HTTPS listener serves)",
        )
    if spec.domain is not None and k8s.tls_secret_name is None and k8s.service_type == "LoadBalancer":
        raise SpecError(
            f"{PROJECT}:domain",
            spec.domain,
            f"set together with {PROJECT}:tlsSecretName (a kubernetes.io/tls Secret for it, which vLLM "
            f"serves), or with {PROJECT}:serviceType ClusterIP behind your Ingress/Gateway's TLS",
        )
    if k8s.tls_secret_name is not None and spec.domain is None:
        raise SpecError(
            f"{PROJECT}:tlsSecretName",
            k8s.tls_secret_name,
            f"set together with {PROJECT}:domain, the host name its certificate is for",
        )


def check_pod_size(spec: ServiceSpec) -> None:
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
    _check_autoscaling(spec)
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


def weight_storage(spec: ServiceSpec) -> Storage:
    """Where a pod keeps the model's files: the shared claim, else its own cache volume (a network disk)."""
    return SHARED_CLAIM if settings(spec).cache_claim is not None else NETWORK_VOLUME


def public_view(spec: ServiceSpec) -> dict[str, Any]:
    k8s = settings(spec)
    return {
        "namespace": k8s.namespace,
        "gpuNodeSelector": k8s.gpu_node_selector,
        "storageClass": k8s.storage_class,
        "serviceType": k8s.service_type,
        "installLeaderWorkerSet": k8s.install_leader_worker_set,
        "tlsSecretName": k8s.tls_secret_name,
        "cacheClaim": k8s.cache_claim,
        "cacheStorageClass": k8s.cache_storage_class,
        "createNamespace": k8s.create_namespace,
        "prometheusOperator": k8s.prometheus_operator,
        # Shown when set: a stack on the default router prints the plan it printed before the key existed.
        "router": k8s.router if k8s.inference_gateway else None,
        "gatewayClassName": k8s.gateway_class_name,
        "gatewayName": k8s.gateway_name,
    }


PLATFORM = Platform(
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
        "prometheusUrl",
        "activationQuery",
        "coldStartTimeoutSeconds",
        "installKedaHttpAddOn",
        "tlsSecretName",
        "cacheClaim",
        "cacheStorageClass",
        "createNamespace",
        "prometheusOperator",
        "prometheusSelector",
        "router",
        "gatewayClassName",
        "gatewayName",
        "installGateway",
        "affinityHeader",  # refused: read_placement says what to use instead
    ),
    catalog=CATALOG,
    read_placement=read_placement,
    public_view=public_view,
    check_spec=check_spec,
    # A pod's cache volume holds only the weights and vLLM's compile cache.
    disk_overhead_gb=2,
    weight_storage=weight_storage,
    scale_out_steps=scale_out_steps,
    unsupported=MappingProxyType(
        {
            Feature.DNS_ZONE: "unset on kubernetes: create the record the dnsRecords output names at "
            "your DNS provider, or let external-dns do it",
            Feature.REGIONS: (
                "unset on kubernetes: a stack serves from its cluster (kubernetes:context); run a stack per "
                "cluster, or use vllm:cloud gcp, whose global load balancer spans regions"
            ),
            Feature.RESERVATION: (
                "unset on kubernetes: reserved capacity belongs to the cluster's node pools (a GKE node "
                "pool's --reservation-affinity, a Karpenter NodePool's reserved capacity), not to its pods"
            ),
            Feature.WEIGHT_CACHE_BUCKET: "hub on kubernetes (vllm:cacheClaim shares one cache between pods)",
        }
    ),
    plan_properties=MappingProxyType(
        {
            "kubernetes:apps/v1:Deployment": (
                "spec.replicas",
                "spec.strategy.rollingUpdate",
                "spec.template.spec.containers.*.image",
                "spec.template.spec.containers.*.resources.limits",
                "spec.template.spec.containers.*.readinessProbe.httpGet.path",
                "gpuNodes = spec.template.spec.affinity.nodeAffinity"
                ".requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.*.matchExpressions",
            ),
            "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet": (
                "spec.replicas",
                "spec.leaderWorkerTemplate.size",
                "spec.leaderWorkerTemplate.restartPolicy",
            ),
            "kubernetes:keda.sh/v1alpha1:ScaledObject": (
                "spec.scaleTargetRef.kind",
                "spec.minReplicaCount",
                "spec.maxReplicaCount",
                "spec.triggers.*.metadata.threshold",
                "upscaleWindow = spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp"
                ".stabilizationWindowSeconds",
                "downscaleWindow = spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown"
                ".stabilizationWindowSeconds",
            ),
            "kubernetes:core/v1:Service": ("spec.type", "spec.ports", "spec.selector"),
            "kubernetes:policy/v1:PodDisruptionBudget": ("spec.minAvailable", "spec.maxUnavailable"),
            "kubernetes:networking.k8s.io/v1:NetworkPolicy": ("spec.policyTypes",),
            "kubernetes:gateway.networking.k8s.io/v1:Gateway": ("spec.gatewayClassName", "spec.listeners"),
            # The pools each rule sends to, with vllm:canary their weights.
            "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute": (
                "spec.rules.*.matches",
                "spec.rules.*.backendRefs",
            ),
            "kubernetes:inference.networking.k8s.io/v1:InferencePool": (
                "spec.selector.matchLabels",
                "spec.targetPorts",
                "spec.endpointPickerRef",
            ),
        }
    ),
)
