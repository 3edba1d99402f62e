"""The service's own VPC: private GPU VMs that reach out through Cloud NAT and are reached only by the LB."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as compute

from components import launch
from components.gcp.names import autoname
from components.service_spec import ServiceSpec

#: Where the health agent (scripts/health_agent.py) serves its verdict: apart from vLLM's 8000, Ray's
#: 6379 and Ray's worker port range (10002-19999), and open only to Google's health checkers.
HEALTH_AGENT_PORT = 8090

#: The subnet every VM of the stack lives in. The VPC is dedicated to the stack, so any private range works;
#: a /16 holds the largest spec (1000 replicas is the spec's bound, 64 nodes per replica).
SUBNET_CIDR = ipaddress.IPv4Network("10.64.0.0/16")

#: Where Google's health checkers and the global external Application Load Balancer's proxies (Google Front
#: Ends) connect from: https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges (the
#: ranges ``compute.get_lbip_ranges()`` returns; fixed values avoid an invoke at every preview).
GOOGLE_LB_RANGES = ("35.191.0.0/16", "130.211.0.0/22")


#: Every region's Cloud NAT. Hugging Face downloads open many parallel connections per VM (Xet): dynamic
#: port allocation lets one VM take up to 64k NAT ports while idle VMs keep few.
NAT_SETTINGS = {
    "nat_ip_allocate_option": "AUTO_ONLY",
    "source_subnetwork_ip_ranges_to_nat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
    "enable_dynamic_port_allocation": True,
    "enable_endpoint_independent_mapping": False,
    "min_ports_per_vm": 1024,
    "max_ports_per_vm": 65536,
    "log_config": {"enable": True, "filter": "ERRORS_ONLY"},
}


@dataclass(frozen=True, kw_only=True)
class NetworkArgs:
    spec: ServiceSpec


class Network(pulumi.ComponentResource):
    """VPC + subnet (Private Google Access), Cloud Router + NAT for image and weight pulls, and one firewall
    rule per port Google's ranges may reach: vLLM's on VMs tagged ``serving_tag``, the health agent's on VMs
    tagged ``health_tag``. A custom VPC denies every
    other ingress by default, so there is no SSH and no public port on any VM.

    Attributes:
        network, subnetwork: the VPC and the region's subnet (Private Google Access on).
        router, nat: the Cloud Router and its NAT, the VMs' only way out.
        serving_firewall: the vLLM port from Google's LB ranges, on VMs tagged ``serving_tag``.
        health_agent_firewall: the health agent's port from Google's LB ranges, on VMs tagged ``health_tag``.
    """

    network: compute.Network
    subnetwork: compute.Subnetwork
    router: compute.Router
    nat: compute.RouterNat
    serving_firewall: compute.Firewall
    health_agent_firewall: compute.Firewall
    serving_tag: str
    health_tag: str

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:gcp:Network", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        self.serving_tag = spec.name
        self.health_tag = f"{spec.name}-health"  # every VM of the stack: its health agent answers checks
        self.network = compute.Network(
            autoname(name, "vpc"),
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description=f"vLLM stack {spec.stack}: GPU VMs without external IPs",
            opts=child,
        )
        self.subnetwork = compute.Subnetwork(
            autoname(name, "subnet"),
            network=self.network.id,
            region=spec.region,
            ip_cidr_range=str(SUBNET_CIDR),
            private_ip_google_access=True,  # Secret Manager, Logging, Artifact Registry without NAT
            opts=child,
        )
        self.router = compute.Router(
            autoname(name, "router"), network=self.network.id, region=spec.region, opts=child
        )
        self.nat = compute.RouterNat(
            autoname(name, "nat"), router=self.router.name, region=spec.region, **NAT_SETTINGS, opts=child
        )
        self.serving_firewall = compute.Firewall(
            autoname(name, "allow-lb"),
            network=self.network.id,
            direction="INGRESS",
            description=f"vLLM port {launch.PORT} from Google health checkers and LB proxies only",
            allows=[{"protocol": "tcp", "ports": [str(launch.PORT)]}],
            source_ranges=list(GOOGLE_LB_RANGES),
            target_tags=[self.serving_tag],
            opts=child,
        )
        self.health_agent_firewall = compute.Firewall(
            autoname(name, "allow-health-checks"),
            network=self.network.id,
            direction="INGRESS",
            description=f"Health agent port {HEALTH_AGENT_PORT} from Google health checkers only",
            allows=[{"protocol": "tcp", "ports": [str(HEALTH_AGENT_PORT)]}],
            source_ranges=list(GOOGLE_LB_RANGES),
            target_tags=[self.health_tag],
            opts=child,
        )
        self.register_outputs({"network": self.network.id, "subnetwork": self.subnetwork.id})
