"""The endpoint: one Service in front of the serving pods (single-node replicas or multi-node leaders).

``LoadBalancer`` (default) asks the cluster's cloud controller for an L4 load balancer on port 80. An L4
Service forwards every path, so ``/metrics``, ``/tokenize``, ``/pause`` and the rest of vLLM's unguarded
routes are as reachable as ``/v1``; ``vllm:allowedCidrs`` narrows who can reach it
(``loadBalancerSourceRanges``), not what they reach. ``ClusterIP`` keeps the Service inside the cluster,
for an Ingress or Gateway that routes only ``/v1/`` and ``/health`` (see docs/kubernetes.md).

The Service is named ``<name>-api``: a multi-node LeaderWorkerSet (named ``<name>``) gets a headless
Service of its own name from the LWS controller, which the leader addresses resolve through.

pulumi-kubernetes waits for a Service until ``serviceReady && endpointsSettled && !endpointsPending``
(provider/pkg/await/service.go, 4.17+): a LoadBalancer's ingress is assigned, and its Endpoints, unchanged
for 10 s, list no address that is not ready (none at all will do), 10 minutes unless told
(``DefaultServiceTimeoutMins``). A pod still loading is such an address, so the Service is created after
the workload it fronts (whose own await covers the model load) and waits up to one pod's start budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.core import v1 as core
from pulumi_kubernetes.meta import v1 as meta

from components.domain import HTTPS_PORT, DnsRecord, endpoint_purpose
from components.kubernetes import pods, tls
from components.kubernetes.settings import settings
from components.launch import LOAD_BALANCER_IDLE_SECONDS
from components.service_spec import ServiceSpec
from components.spec import OPEN_TO_ALL

SERVICE_PORT = 80
CLUSTER_DOMAIN = "cluster.local"
#: The load balancer's idle timeout, as on the VM backends (``LOAD_BALANCER_IDLE_SECONDS``): a completion
#: that sends nothing for a minute (a non-streamed answer, a long prefill) must not be cut, and vLLM's
#: keep-alive outlasts it. Each AWS implementation of a LoadBalancer Service reads its own annotation and
#: ignores the others (other clouds ignore them all):
#: - the in-tree / cloud-provider-aws controller makes a Classic ELB, idle timeout 60 s unless
#:   ``aws-load-balancer-connection-idle-timeout`` (cloud-provider-aws docs/service_controller.md: "ELB");
#: - the AWS Load Balancer Controller makes an NLB, whose TCP listeners drop a flow idle for 350 s unless
#:   the listener attribute ``tcp.idle_timeout.seconds`` (60-6000, AWS ELB API ListenerAttribute) says
#:   otherwise, set per listener by ``aws-load-balancer-listener-attributes.TCP-<port>`` (the controller's
#:   e2e tests, kubernetes-sigs/aws-load-balancer-controller test/e2e/service, set ``TCP-80:
#:   tcp.idle_timeout.seconds=400`` and read it back from the listener).
#: GKE's LoadBalancer Service is a passthrough Network Load Balancer: not a proxy, it terminates no
#: connection (cloud.google.com/load-balancing/docs/network), so there is no idle timeout to raise.
IDLE_TIMEOUT_SECONDS = LOAD_BALANCER_IDLE_SECONDS
CLASSIC_ELB_IDLE = "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout"
NLB_LISTENER_ATTRIBUTES = "service.beta.kubernetes.io/aws-load-balancer-listener-attributes"


@dataclass(frozen=True, kw_only=True)
class LoadBalancerArgs:
    spec: ServiceSpec
    namespace: pulumi.Input[str]
    workload: pulumi.Resource  # the Deployment or LeaderWorkerSet whose serving pods it selects
    start_seconds: int  # one pod's start budget (pods.start_budget_seconds)


def service_name(spec: ServiceSpec) -> str:
    """``<name>-api``; with vllm:canary each revision has its own, named by its slot (``<name>-rev2-api``)."""
    return f"{pods.slot_name(spec)}-api"


def service_port(spec: ServiceSpec) -> core.ServicePortArgsDict:
    """80 to vLLM's plain HTTP, or 443 when vLLM serves TLS from ``vllm:tlsSecretName``."""
    if tls.serves_tls(spec):
        return {"name": "https", "port": HTTPS_PORT, "target_port": pods.PORT_NAME, "protocol": "TCP"}
    return {"name": "http", "port": SERVICE_PORT, "target_port": pods.PORT_NAME, "protocol": "TCP"}


def idle_timeout_annotations(spec: ServiceSpec) -> dict[str, str]:
    """The AWS load balancers' idle timeout (``IDLE_TIMEOUT_SECONDS``) on the Service's one port."""
    port = service_port(spec)["port"]
    return {
        CLASSIC_ELB_IDLE: str(IDLE_TIMEOUT_SECONDS),
        f"{NLB_LISTENER_ATTRIBUTES}.TCP-{port}": f"tcp.idle_timeout.seconds={IDLE_TIMEOUT_SECONDS}",
    }


def ingress_point(status: core.outputs.ServiceStatus | None) -> tuple[str, str]:
    """A LoadBalancer Service's first ingress point as a DNS record type and value: A to its IP, or CNAME
    to its host name (AWS's load balancers have names, not fixed addresses).

    The provider reports a LoadBalancer Service created only once the cloud has given it an address."""
    balancer = status.load_balancer if status is not None else None
    if balancer is None or not balancer.ingress:
        raise ValueError("the LoadBalancer Service has no ingress address, which the provider waits for")
    point = balancer.ingress[0]
    if point.ip:
        return "A", point.ip
    if point.hostname:
        return "CNAME", point.hostname
    raise ValueError("the LoadBalancer Service's ingress point has neither an IP nor a host name")


def domain_records(domain: str, status: core.outputs.ServiceStatus | None) -> list[dict[str, str]]:
    """The record that points ``domain`` at a LoadBalancer Service."""
    kind, value = ingress_point(status)
    return [DnsRecord(domain, kind, value, endpoint_purpose(domain)).as_output()]


def ingress_url(status: core.outputs.ServiceStatus | None) -> str:
    """``http://<ip or hostname>`` of a LoadBalancer Service (AWS gives hostnames)."""
    _, address = ingress_point(status)
    return f"http://{address}"


class LoadBalancer(pulumi.ComponentResource):
    """Port 80 (443 when vLLM serves TLS) -> the pods' vLLM port; ``endpoint`` is ``https://<domain>``
    with ``vllm:domain``, else the load balancer's address, or for ClusterIP the in-cluster DNS name
    (reach it with ``kubectl port-forward`` or through your Ingress/Gateway).

    Attributes:
        service: the Service in front of the serving pods.
        endpoint: where clients reach it.
    """

    service: core.Service
    endpoint: pulumi.Output[str]
    #: With vllm:domain on a LoadBalancer Service: the record to create (no zone on Kubernetes).
    dns_records: pulumi.Output[list[dict[str, str]]] | None

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:kubernetes:LoadBalancer", name, None, opts)
        spec = args.spec
        k8s = settings(spec)
        public = k8s.service_type == "LoadBalancer"
        service_spec: core.ServiceSpecArgsDict = {
            "type": k8s.service_type,
            "selector": pods.slot_selector(spec, pods.SERVER),
            "ports": [service_port(spec)],
        }
        if public and spec.allowed_cidrs != OPEN_TO_ALL:
            service_spec["load_balancer_source_ranges"] = list(spec.allowed_cidrs)
        metadata: meta.ObjectMetaArgsDict = {
            "name": service_name(spec),
            "namespace": args.namespace,
            "labels": pods.slot_labels(spec, "endpoint"),
        }
        if public:
            metadata["annotations"] = idle_timeout_annotations(spec)
        self.service = core.Service(
            f"{name}-service",
            metadata=metadata,
            spec=service_spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[args.workload],
                custom_timeouts=pulumi.CustomTimeouts(
                    create=f"{args.start_seconds}s", update=f"{args.start_seconds}s"
                ),
            ),
        )
        self.dns_records = None
        domain = spec.domain
        if domain is not None:
            # vLLM (vllm:tlsSecretName) or the user's Ingress/Gateway serves the domain's certificate.
            self.endpoint = pulumi.Output.from_input(f"https://{domain}")
            if public:
                self.dns_records = self.service.status.apply(lambda status: domain_records(domain, status))
        elif public:
            self.endpoint = self.service.status.apply(ingress_url)
        else:
            self.endpoint = pulumi.Output.concat(
                "http://", self.service.metadata.name, ".", args.namespace, f".svc.{CLUSTER_DOMAIN}"
            )
        self.register_outputs({"endpoint": self.endpoint})
