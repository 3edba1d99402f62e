"""The Kubernetes keys of a stack, validated: a leaf of the Kubernetes package, which its platform.py reads
into ``spec.platform`` and its resource modules read back (``settings(spec)``) without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.service_spec import ServiceSpec


@dataclass(frozen=True, kw_only=True)
class KubernetesSettings:
    """The Kubernetes keys of a stack, validated (docs/kubernetes.md)."""

    namespace: str = "vllm"  # the stack's own by default: see ``default_namespace``
    gpu_node_selector: str = "none"
    storage_class: str | None = None
    service_type: str = "LoadBalancer"
    cpu: float | None = None
    memory_gb: float | None = None
    install_leader_worker_set: bool = False
    context: str | None = None
    #: Pods (groups) a rollout may add above ``replicas``; None: the platform's default for the count.
    max_surge: int | None = None
    #: Autoscaling (components/kubernetes/autoscaler.py): where KEDA reads vLLM's request rate, and the
    #: request rate in front of vLLM that wakes a service scaled to zero.
    prometheus_url: str | None = None
    activation_query: str | None = None
    #: Scale to zero without vllm:activationQuery: requests enter through the KEDA HTTP add-on's interceptor
    #: (components/kubernetes/cold_start.py), which holds them for up to this long (None: the pod's start
    #: budget), and the stack installs the add-on when asked to.
    cold_start_timeout_seconds: int | None = None
    install_keda_http_add_on: bool = False
    #: vllm:tlsSecretName: a kubernetes.io/tls Secret in the namespace; vLLM serves HTTPS from it.
    tls_secret_name: str | None = None
    #: vllm:cacheClaim: a ReadWriteMany PVC every pod mounts as its HF cache; None: per-pod caches.
    cache_claim: str | None = None
    #: vllm:cacheStorageClass: the stack creates vllm:cacheClaim from this class (else the claim exists).
    cache_storage_class: str | None = None
    #: vllm:createNamespace: false uses vllm:namespace as it exists (created, and kept, by you).
    create_namespace: bool = True
    #: A PodMonitor and a Grafana dashboard ConfigMap (needs the Prometheus Operator's CRDs).
    prometheus_operator: bool = False
    #: vllm:prometheusSelector: the labels on the PodMonitor that the Prometheus' podMonitorSelector matches.
    prometheus_selector: tuple[tuple[str, str], ...] = (("release", "kube-prometheus-stack"),)
    #: vllm:router: ``service`` (a Service balances connections) or ``inference-gateway`` (the Gateway API
    #: Inference Extension picks a replica per request: components/kubernetes/inference_gateway.py).
    router: str = "service"
    #: vllm:gatewayClassName: the GatewayClass of the Gateway the stack creates for the inference gateway
    #: (or, with vllm:gatewayName, the class of that Gateway: it decides GKE's and Istio's extra objects).
    gateway_class_name: str | None = None
    #: vllm:gatewayName: ``<namespace>/<name>`` of an existing Gateway the route attaches to (none created).
    gateway_name: str | None = None
    #: vllm:installGateway: the Gateway implementation the stack installs, with the Gateway API and GIE CRDs
    #: (components/kubernetes/gateway_install.py); its class is then ``gateway_class_name``.
    install_gateway: str | None = None

    @property
    def inference_gateway(self) -> bool:
        return self.router == "inference-gateway"


def settings(spec: ServiceSpec) -> KubernetesSettings:
    """The stack's Kubernetes settings (``spec.platform`` of a Kubernetes stack)."""
    if not isinstance(spec.platform, KubernetesSettings):
        raise TypeError(f"{spec.cloud} stack has no Kubernetes settings")
    return spec.platform
