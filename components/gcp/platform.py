"""The GCP platform: its keys, settings, checks and public view (no SDK: see components/platforms.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from components import replica_shares
from components.autoscaling import MULTI_NODE_ON_VMS
from components.config import PROJECT, ConfigReader, SpecError
from components.gcp.offerings import CATALOG
from components.platforms import Feature, Placement, Platform
from components.rates import Storage, gcp_balanced_disk, gcp_local_ssd

if TYPE_CHECKING:
    from components.offerings import Offering
    from components.service_spec import ServiceSpec

DEFAULT_REGION = "us-central1"


@dataclass(frozen=True, kw_only=True)
class GcpSettings:
    """The GCP keys of a stack, validated (docs/gcp.md)."""

    project: str | None = None  # gcp:project; None: the provider's own default (gcloud's)
    zone: str | None = None  # gcp:zone: pins every VM to one zone
    boot_image: str | None = None  # vllm:bootImage, a dated image (None: the default image family)
    reservation: str | None = None  # vllm:reservation: a reservation name its on-demand VMs consume
    #: vllm:affinityHeader: the request header whose value keeps a conversation on one replica (a consistent
    #: hash at the load balancer, components/gcp/load_balancer.py); None: least-request balancing.
    affinity_header: str | None = None


def settings(spec: ServiceSpec) -> GcpSettings:
    """The stack's GCP settings (``spec.platform`` of a GCP stack)."""
    if not isinstance(spec.platform, GcpSettings):
        raise TypeError(f"{spec.cloud} stack has no GCP settings")
    return spec.platform


def read_placement(read: ConfigReader, stack: str, offering: Offering | None) -> Placement:
    """``gcp:project``, ``gcp:region`` and ``gcp:zone`` (which must sell the machine), ``vllm:regions``,
    ``vllm:reservation``, ``vllm:bootImage``."""
    region = read.string("gcp:region", DEFAULT_REGION)
    zone = read.string("gcp:zone")
    if zone is not None and not zone.startswith(f"{region}-"):
        raise SpecError("gcp:zone", zone, f"a zone of gcp:region {region} (e.g. {region}-a)")
    regions = _gcp_regions(read, region, zone)
    if regions:
        region = regions[0]
    if offering is not None and offering.zones:
        for serving in regions or (region,):
            _check_gcp_placement(offering, serving, zone, "vllm:regions" if regions else "gcp:region")
    boot_image = _gcp_boot_image(read.string("bootImage"))
    return Placement(
        region=region,
        regions=regions,
        settings=GcpSettings(
            project=read.string("gcp:project"),
            zone=zone,
            boot_image=boot_image,
            reservation=_gcp_reservation(read, zone, regions),
            affinity_header=affinity_header(read),
        ),
    )


#: An HTTP header name: a token (RFC 9110 section 5.1, "field-name = token").
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


#: Headers every request to the stack carries with one value: the stack's one API key (``Authorization``)
#: and its one host name. A consistent hash on them sends all traffic to a single replica.
SAME_FOR_EVERY_REQUEST = ("authorization", "host")


def affinity_header(read: ConfigReader) -> str | None:
    """``vllm:affinityHeader``: a header name the clients send, such as ``x-session-id``, whose value differs
    between conversations (the hash spreads conversations over the replicas by it)."""
    name = read.string("affinityHeader")
    if name is not None and not HEADER_NAME.match(name):
        raise SpecError(
            f"{PROJECT}:affinityHeader", name, "an HTTP header name (letters, digits, '-'), e.g. x-session-id"
        )
    if name is not None and name.lower() in SAME_FOR_EVERY_REQUEST:
        raise SpecError(
            f"{PROJECT}:affinityHeader",
            name,
            "a header whose value differs between conversations, e.g. x-session-id: every request to the "
            f"stack carries {name} with one value (one API key, one host), which would hash them all to one "
            "replica",
        )
    return name


#: A GCP region name (``us-central1``, ``europe-west4``, ``northamerica-northeast2``).
GCP_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


def _gcp_regions(read: ConfigReader, region: str, zone: str | None) -> tuple[str, ...]:
    """``vllm:regions``: the regions replicas spread over, ``gcp:region`` first when it is one of them
    (the stack's regional resources live there: the image mirror, the provider's default region). Every
    region holds one replica at least, and each region's group spreads over its own zones."""
    regions = read.string_list("regions", lambda r: GCP_REGION.match(r) is not None, "a GCP region: us-east4")
    if not regions:
        return ()
    key = f"{PROJECT}:regions"
    if len(set(regions)) != len(regions):
        raise SpecError(key, list(regions), "each region once")
    if zone is not None:
        raise SpecError("gcp:zone", zone, "unset with vllm:regions (each region's zones that sell it serve)")
    replicas = read.integer("replicas", 1, minimum=1)
    # With autoscaling (vllm:maxReplicas) the bounds decide how many regions a stack can fill: check().
    if read.raw("maxReplicas") is None and len(regions) > replicas:
        raise SpecError(key, list(regions), f"at most vllm:replicas ({replicas}) regions: one replica each")
    if read.integer("nodes", 1, minimum=1) > 1:
        raise SpecError(
            key,
            list(regions),
            "unset with vllm:nodes > 1 (each Ray group lives in one zone; serve from gcp:region)",
        )
    if read.raw("gcp:region") is None:
        return regions
    if region not in regions:
        raise SpecError(
            "gcp:region",
            region,
            f"one of vllm:regions ({', '.join(regions)}), where the stack's regional resources live; "
            "or unset",
        )
    return (region, *(other for other in regions if other != region))


#: A reservation name (RFC 1035, up to 63 characters), or a shared one of another project
#: (``projects/P/reservations/NAME``): the values the reservation affinity's
#: ``compute.googleapis.com/reservation-name`` key takes (compute API, ReservationAffinity.values).
GCP_RESERVATION = re.compile(
    r"^(projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/reservations/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)


def _gcp_reservation(read: ConfigReader, zone: str | None, regions: tuple[str, ...]) -> str | None:
    """``vllm:reservation``: a specific reservation the on-demand VMs consume. A reservation lives in one
    zone, so the stack pins that zone (``gcp:zone``); Spot VMs cannot consume reservations, so a spot stack
    needs an on-demand base to use it."""
    name = read.string("reservation")
    if name is None:
        return None
    key = f"{PROJECT}:reservation"
    if not GCP_RESERVATION.match(name):
        raise SpecError(
            key, name, "a reservation name (my-h100-reservation) or projects/PROJECT/reservations/NAME"
        )
    if regions:
        raise SpecError(key, name, "unset with vllm:regions (a reservation is in one zone: set gcp:zone)")
    if zone is None:
        raise SpecError(key, name, "set together with gcp:zone, the reservation's zone")
    if read.boolean("spot", False) and not read.integer("onDemandBaseReplicas", 0, minimum=0):
        raise SpecError(
            key,
            name,
            "unset with vllm:spot true, or with vllm:onDemandBaseReplicas > 0 (Spot VMs do not consume "
            "reservations; the on-demand base does)",
        )
    return name


#: A Compute Engine image name (RFC 1035, up to 63 characters), alone or as ``projects/P/global/images/NAME``.
GCP_IMAGE = re.compile(
    r"^(projects/[a-z][-a-z0-9.:]*[a-z0-9]/global/images/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)
#: The date suffix of a Deep Learning VM image (``...-v20260818``); its family's name is the same without it.
DATED_IMAGE = re.compile(r"-v\d{8}$")
#: vLLM 0.33's image is built on CUDA 13, which needs an NVIDIA driver of the 580 series or newer.
MIN_NVIDIA_DRIVER = 580


def _gcp_boot_image(image: str | None) -> str | None:
    """A dated boot image (a family resolves anew for each VM, so VMs of one template could differ)."""
    if image is None:
        return None
    valid = (
        "a dated Deep Learning VM image with NVIDIA driver >= 580 for vLLM's CUDA 13, e.g. "
        "common-cu129-ubuntu-2204-nvidia-580-v20260818 or projects/P/global/images/NAME (not a family)"
    )
    if "/family/" in image or not GCP_IMAGE.match(image):
        raise SpecError(f"{PROJECT}:bootImage", image, valid)
    if not image.startswith("projects/") and not DATED_IMAGE.search(image):
        # A bare name is an image of the Deep Learning VM project (machine.py), whose images are all dated:
        # an undated name there is a family, which resolves anew for each VM.
        raise SpecError(
            f"{PROJECT}:bootImage",
            image,
            f"a dated image of {image}, not the family (each VM would boot whatever it is then): gcloud "
            f"compute images describe-from-family {image} --project deeplearning-platform-release names "
            "its current one, e.g. common-cu129-ubuntu-2204-nvidia-580-v20260818",
        )
    driver = re.search(r"nvidia-(\d{3})", image)
    if driver is not None and int(driver.group(1)) < MIN_NVIDIA_DRIVER:
        raise SpecError(f"{PROJECT}:bootImage", image, valid)
    return image


def _check_gcp_placement(offering: Offering, region: str, zone: str | None, key: str = "gcp:region") -> None:
    """The region, and the zone when pinned, must sell the machine (GPU capacity is per zone)."""
    sold = offering.zones.get(region, ())
    if not sold:
        regions = ", ".join(sorted(offering.zones))
        raise SpecError(key, region, f"a region that sells {offering.machine_type}: {regions}")
    if zone is not None and zone not in sold:
        raise SpecError(
            "gcp:zone", zone, f"a zone of {region} that sells {offering.machine_type}: {', '.join(sold)}"
        )


#: A Cloud DNS managed zone's name (not its DNS name): 1-63 characters, starting with a letter, ending with
#: a letter or digit, lowercase letters, digits and hyphens only (Cloud DNS API, managedZones.name).
DNS_ZONE_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")


def check_spec(spec: ServiceSpec) -> None:
    """``vllm:dnsZone``: the managed zone's name, not its DNS name (``example-com``, not ``example.com.``);
    the bounds of an autoscaled stack (``check_scaled_groups``)."""
    check_scaled_groups(spec)
    if spec.dns_zone is not None and not DNS_ZONE_NAME.match(spec.dns_zone):
        raise SpecError(
            f"{PROJECT}:dnsZone",
            spec.dns_zone,
            "a Cloud DNS managed zone name such as example-com (gcloud dns managed-zones list: NAME, not "
            "DNS_NAME): 1-63 lowercase letters, digits and hyphens, starting with a letter",
        )


def check_scaled_groups(spec: ServiceSpec) -> None:
    """Every group an autoscaler scales keeps one VM at least: one per region (``vllm:regions``), besides
    the fixed on-demand base of a spot stack (components/replica_shares.py). GCP scales a group on the load
    balancer's serving capacity: with RATE balancing a group's capacity is ``maxRatePerInstance`` x its
    VMs ("Scaling based on load balancing serving capacity": fullness is the target capacity of the
    backend's balancing mode), so a group without VMs has no capacity, gets no request and reports no
    utilization, and nothing would ever scale it out again."""
    policy = spec.autoscaling
    if policy is None:
        return
    regions, base = len(spec.regions) or 1, replica_shares.fixed_base_replicas(spec)
    if policy.min_replicas - base < regions:
        besides = f" besides the vllm:onDemandBaseReplicas {base} on-demand" if base else ""
        raise SpecError(
            f"{PROJECT}:minReplicas",
            policy.min_replicas,
            f">= {base + regions} on GCP: one autoscaled VM in each of the {regions} region(s){besides}, "
            "since GCP's autoscaler scales a group on the load balancer's utilization of it, and a group "
            "without VMs has none to measure (it gets no requests)",
        )


#: Local SSDs bundled with a machine type, each 375 GiB (402 GB), NVMe. a3-highgpu-8g's 16: the project's
#: reference notes (GCP A3 machine table); the others as GCP's accelerator-optimized machine tables list
#: them (A3 High: 2 per GPU; A3 Ultra and A4: 32, 12 TiB; A2 Ultra: 1 per GPU). Each holds far more than
#: the GPUs' memory, so any model that serves fits. G2, A2 High and N1 bundle none.
BUNDLED_LOCAL_SSDS = MappingProxyType(
    {
        "a3-highgpu-1g": 2,
        "a3-highgpu-2g": 4,
        "a3-highgpu-4g": 8,
        "a3-highgpu-8g": 16,
        "a3-megagpu-8g": 16,
        "a3-ultragpu-8g": 32,
        "a4-highgpu-8g": 32,
        "a2-ultragpu-1g": 1,
        "a2-ultragpu-2g": 2,
        "a2-ultragpu-4g": 4,
        "a2-ultragpu-8g": 8,
    }
)

#: Boot disk type per machine series (GCP "disk types per machine series" table, read 2026-11): A3 Ultra and
#: A4 take Hyperdisk only, A3 High takes both (Hyperdisk Balanced reads the weights faster), while A2, G2 and
#: N1 do not take Hyperdisk Balanced; pd-balanced is their SSD-backed default.
HYPERDISK_SERIES = ("a3", "a4")


def boot_disk_type(machine_type: str) -> str:
    return "hyperdisk-balanced" if machine_type.split("-")[0] in HYPERDISK_SERIES else "pd-balanced"


def weight_storage(spec: ServiceSpec) -> Storage:
    """The bundled local SSDs when the machine has them (scripts/local_nvme.sh stripes them), else the boot
    disk, at their rates in components/rates.py."""
    machine = spec.offering.machine_type if spec.offering else None
    disks = BUNDLED_LOCAL_SSDS.get(machine) if machine else None
    if disks:
        return gcp_local_ssd(disks)
    return gcp_balanced_disk(boot_disk_type(machine or ""), spec.disk_size_gb)


def public_view(spec: ServiceSpec) -> dict[str, Any]:
    gcp = settings(spec)
    return {
        "project": gcp.project,
        "region": spec.region,
        "regions": list(spec.regions) if len(spec.regions) > 1 else None,
        "zone": gcp.zone,
        "bootImage": gcp.boot_image,
        "reservation": gcp.reservation,
        "affinityHeader": gcp.affinity_header,
    }


def scale_out_steps(spec: ServiceSpec) -> tuple[tuple[str, int], ...]:
    """From a load step to GCP's autoscaler asking for another VM: no delay to set, and none documented
    (it "constantly monitors" the group's load-balancer utilization: "Understanding autoscaler decisions",
    read 2026-12), so 0 s here, a lower bound."""
    if spec.autoscaling is None:
        return ()
    return (("utilization over target (sampling undocumented)", 0),)


PLATFORM = Platform(
    name="gcp",
    title="GCP",
    provider_namespace="gcp",
    provider_sdk="pulumi_gcp",
    provider_keys=("gcp:project", "gcp:region", "gcp:zone"),
    keys=("bootImage", "regions", "affinityHeader"),
    catalog=CATALOG,
    read_placement=read_placement,
    public_view=public_view,
    check_spec=check_spec,
    weight_storage=weight_storage,
    vm_hooks=Path(__file__).with_name("vm_hooks.sh"),
    # the group's health check reads the verdict over HTTP; the phase goes to guest attributes
    agent_omits=("AwsReporter", "InstanceTags"),
    scale_out_steps=scale_out_steps,
    # A VM's boot disk also holds the OS and the image (~30 GB).
    disk_overhead_gb=30,
    # Its VMs serve from GPUs: CPU-only replicas are for laptop clusters.
    unsupported=MappingProxyType(
        {
            Feature.CPU_REPLICAS: "a GPU as TYPE:COUNT (e.g. H100:8)",
            Feature.AUTOSCALING_MULTI_NODE: MULTI_NODE_ON_VMS,
            # The autoscaler scales on the load balancer's serving capacity, and a group without VMs has
            # none: nothing would ever scale it out again.
            Feature.SCALE_TO_ZERO: ">= 1 on GCP (scaling on load-balancer utilization needs a VM to "
            "measure); scale to zero on Kubernetes, with KEDA's activation",
            Feature.UPSCALE_DELAY: "unset on GCP: its autoscaler adds VMs as soon as utilization is over "
            "target and has no delay to set (docs/autoscaling.md)",
            # Compute Engine's autoscaler takes a per-instance metric only from the gce_instance monitored
            # resource, and no per-group metric on a regional group (this program's groups are regional);
            # the Ops Agent writes vLLM's Prometheus metrics to prometheus_target (see components/gcp/
            # autoscaler.py for the sources).
            Feature.QUEUE_SCALING: "unset on GCP: Compute Engine's autoscaler reads per-instance metrics "
            "only from gce_instance and no per-group metric on a regional group, and the Ops Agent writes "
            "vLLM's queue as prometheus_target; scale on vllm:targetQpsPerReplica (the load balancer's "
            "serving capacity), or on queue depth on AWS or Kubernetes (docs/autoscaling.md)",
            # The global address is IPV4 (load_balancer.py): an IPv6 range admits no client, and a list of
            # IPv6 ranges alone makes Cloud Armor deny every (IPv4) client with 403.
            Feature.IPV6_CLIENTS: "IPv4 ranges on GCP: the load balancer's global address is IPv4 only",
        }
    ),
    plan_properties=MappingProxyType(
        {
            "gcp:compute/instanceTemplate:InstanceTemplate": (
                "machineType",
                "guestAccelerators",
                "scheduling.onHostMaintenance",
                "scheduling.provisioningModel",
                "reservationAffinity",
                "disks.*.diskSizeGb",
                "disks.*.diskType",
                "networkInterfaces.*.nicType",
                "networkInterfaces.*.accessConfigs",
            ),
            "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": (
                "targetSize",
                "distributionPolicyZones",
                "autoHealingPolicies.initialDelaySec",
                "namedPorts",
            ),
            "gcp:compute/instanceGroupManager:InstanceGroupManager": (
                "targetSize",
                "zone",
                "autoHealingPolicies.initialDelaySec",
                "namedPorts",
            ),
            "gcp:compute/healthCheck:HealthCheck": (
                "httpHealthCheck.requestPath",
                "httpHealthCheck.port",
                "tcpHealthCheck.port",
                "checkIntervalSec",
                "unhealthyThreshold",
            ),
            "gcp:compute/regionAutoscaler:RegionAutoscaler": (
                "autoscalingPolicy.minReplicas",
                "autoscalingPolicy.maxReplicas",
                "autoscalingPolicy.cooldownPeriod",
                "autoscalingPolicy.loadBalancingUtilization.target",
                "autoscalingPolicy.scaleInControl",
            ),
            "gcp:compute/backendService:BackendService": (
                "backends.*.balancingMode",
                "backends.*.maxRatePerInstance",
                "loadBalancingScheme",
                "localityLbPolicy",
                "timeoutSec",
            ),
            "gcp:compute/uRLMap:URLMap": (
                "pathMatchers.*.pathRules.*.paths",
                "defaultRouteAction",
                "defaultUrlRedirect",
            ),
            "gcp:compute/firewall:Firewall": (
                "direction",
                "sourceRanges",
                "sourceTags",
                "allows",
                "targetTags",
            ),
            "gcp:compute/globalForwardingRule:GlobalForwardingRule": ("loadBalancingScheme", "portRange"),
            "gcp:compute/managedSslCertificate:ManagedSslCertificate": ("managed.domains",),
            "gcp:compute/sSLPolicy:SSLPolicy": ("minTlsVersion", "profile"),
            "gcp:dns/recordSet:RecordSet": ("name", "type", "managedZone"),
            "gcp:compute/resourcePolicy:ResourcePolicy": ("groupPlacementPolicy",),
            "gcp:compute/securityPolicy:SecurityPolicy": (
                "rules.*.match.config.srcIpRanges",
                "rules.*.action",
            ),
            "gcp:secretmanager/secret:Secret": ("secretId",),
            "gcp:secretmanager/secretIamMember:SecretIamMember": ("role", "member"),
            "gcp:storage/bucket:Bucket": (
                "location",
                "uniformBucketLevelAccess",
                "publicAccessPrevention",
                "forceDestroy",
            ),
            "gcp:storage/bucketIAMMember:BucketIAMMember": ("role", "member"),
        }
    ),
)
