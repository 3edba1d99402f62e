"""Serving from several regions (``vllm:regions``): each region beyond the stack's own gets a subnet of the
stack's VPC and its own Cloud NAT, and groups of its own behind the one global load balancer.

A VPC is global and its firewall rules select VMs by tag, so the stack's rules (Google's ranges to the
serving and health agent ports) already cover every region; a subnet, a Cloud Router and a NAT are
regional (compute API: Subnetwork, Router and RouterNat are regional resources), so each region needs its
own. The global external Application Load Balancer sends each request to the closest region with healthy
capacity (its backends are the groups of every region), which is SkyServe's replicas in us-central1 and
us-east4 behind one endpoint.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

import pulumi
import pulumi_gcp.compute as compute

from components import vm
from components.gcp.names import autoname
from components.gcp.network import NAT_SETTINGS, SUBNET_CIDR, Network
from components.gcp.platform import settings
from components.replica_shares import Share, share_scaling, shares
from components.service_spec import ServiceSpec


def region_cidr(index: int) -> str:
    """The subnet of the stack's ``index``-th region: the next /16 after the stack's own (10.64.0.0/16,
    10.65.0.0/16, ...); subnets of one VPC may not overlap."""
    first = int(SUBNET_CIDR.network_address) + index * SUBNET_CIDR.num_addresses
    return str(ipaddress.IPv4Network((first, SUBNET_CIDR.prefixlen)))


def serving_zones(spec: ServiceSpec, region: str | None = None) -> tuple[str, ...]:
    """The pinned ``gcp:zone``, else every zone of the region that sells the machine (platform.py checks
    both; a pinned zone is refused with several regions)."""
    zone = settings(spec).zone
    return (zone,) if zone is not None else tuple(vm.vm_offering(spec).zones[region or vm.vm_region(spec)])


@dataclass(frozen=True)
class ServingGroup:
    """One managed group of single-node replicas: a region's on-demand or spot share."""

    name: str  # its component's name
    base_instance_name: str  # its VMs' name prefix
    share: Share

    def spec(self, spec: ServiceSpec) -> ServiceSpec:
        """The stack's spec as this group sees it: its region, its replicas, its purchase option, and its
        own bounds when an autoscaler scales it (None: a fixed size, as the on-demand base's)."""
        share = self.share
        return replace(
            spec,
            region=share.region,
            replicas=share.replicas,
            spot=share.spot,
            autoscaling=share_scaling(spec, share.region, share.spot),
        )


def serving_groups(spec: ServiceSpec) -> list[ServingGroup]:
    """One group per share (``components.replica_shares``). A stack of one share keeps the plain names it
    always had; otherwise names say the region (when there are several) and the purchase option (when
    mixed). VM names only need to differ within a zone, so their prefix says the purchase option alone, which
    keeps it within GCP's 58 characters (63 for a VM name, less the group's ``-xxxx``). A revision in the
    second slot (vllm:canary, vllm:stableRevision) ends both with ``-rev2``."""
    found, revision = shares(spec), spec.revision_suffix
    if len(found) == 1:
        return [ServingGroup(spec.name + revision, spec.name + revision, found[0])]
    several_regions = len({share.region for share in found}) > 1
    mixed = len({share.spot for share in found}) > 1
    groups = []
    for share in found:
        market = f"-{'spot' if share.spot else 'od'}" if mixed else ""
        name = spec.name + (f"-{share.region}" if several_regions else "") + market + revision
        groups.append(ServingGroup(name, spec.name + market + revision, share))
    return groups


@dataclass(frozen=True, kw_only=True)
class RegionNetworkArgs:
    spec: ServiceSpec
    network: Network
    region: str
    index: int  # the region's place in vllm:regions (0 is the stack's own, built by Network)


class RegionNetwork(pulumi.ComponentResource):
    """A region's subnet of the stack's VPC (Private Google Access) and its Cloud Router + NAT, as
    ``Network`` builds them for the stack's own region.

    Attributes:
        subnetwork: the region's subnet (Private Google Access).
        router: its Cloud Router.
        nat: its Cloud NAT, for image pulls and weight downloads.
    """

    subnetwork: compute.Subnetwork
    router: compute.Router
    nat: compute.RouterNat

    def __init__(
        self, name: str, args: RegionNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:gcp:RegionNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        network, region = args.network.network, args.region
        self.subnetwork = compute.Subnetwork(
            autoname(name, "subnet"),
            network=network.id,
            region=region,
            ip_cidr_range=region_cidr(args.index),
            private_ip_google_access=True,
            opts=child,
        )
        self.router = compute.Router(autoname(name, "router"), network=network.id, region=region, opts=child)
        self.nat = compute.RouterNat(
            autoname(name, "nat"), router=self.router.name, region=region, **NAT_SETTINGS, opts=child
        )
        self.register_outputs({"subnetwork": self.subnetwork.id})
