"""What the mocked kubernetes provider computes: outputs by resource type, results by invoke token.

The mock echoes a resource's inputs as its outputs; these add what the API server and the provider
compute: auto-generated names (``<name>-<suffix>``, as Pulumi auto-names) and a LoadBalancer Service's
ingress address (an IP, as GKE gives; ``service_outputs(hostname=...)`` for AWS-style hostnames), and a
Gateway's address.
"""

from collections.abc import Callable

LB_IP = "203.0.113.20"
LB_HOSTNAME = "a1b2c3-1234567890.us-east-1.elb.amazonaws.com"
AUTONAME_SUFFIX = "0a1b2c3d"

NAMESPACED_TYPES = (
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:Secret",
    "kubernetes:core/v1:ConfigMap",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:policy/v1:PodDisruptionBudget",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet",
    "kubernetes:keda.sh/v1alpha1:ScaledObject",
    "kubernetes:inference.networking.k8s.io/v1:InferencePool",
    "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
)
SERVICE = "kubernetes:core/v1:Service"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
GATEWAY_IP = "203.0.113.30"


def _named(inputs: dict, name: str) -> dict:
    metadata = dict(inputs.get("metadata") or {})
    metadata.setdefault("name", f"{name}-{AUTONAME_SUFFIX}")
    return {"metadata": metadata}


def service_outputs(ip: str | None = LB_IP, hostname: str | None = None) -> Callable[[dict, str], dict]:
    """A Service's outputs: its name, and for type LoadBalancer one ingress point (``ip`` or ``hostname``)."""

    def outputs(inputs: dict, name: str) -> dict:
        result = _named(inputs, name)
        if (inputs.get("spec") or {}).get("type") == "LoadBalancer":
            point = {"ip": ip} if ip else {"hostname": hostname}
            result["status"] = {"loadBalancer": {"ingress": [point]}}
        return result

    return outputs


def gateway_outputs(inputs: dict, name: str) -> dict:
    """A Programmed Gateway's outputs: its name and one address (an IP, as GKE's and most give)."""
    return {**_named(inputs, name), "status": {"addresses": [{"type": "IPAddress", "value": GATEWAY_IP}]}}


OUTPUTS: dict[str, Callable[[dict, str], dict]] = {
    **{resource_type: _named for resource_type in NAMESPACED_TYPES},
    SERVICE: service_outputs(),
    GATEWAY: gateway_outputs,
}
CALLS: dict[str, Callable[[dict], dict]] = {}
