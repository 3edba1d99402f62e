"""The AWS platform: its keys, settings, checks and public view (no SDK: see components/platforms.py)."""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from components.autoscaling import MULTI_NODE_ON_VMS
from components.aws.offerings import AWS_REGIONS, AWS_REGIONS_SOURCE, CATALOG
from components.aws.settings import AwsSettings, settings
from components.aws.sizing import scale_out_surge, vcpu_quotas
from components.config import PROJECT, ConfigReader, SpecError
from components.platforms import Feature, Placement, Platform
from components.rates import Storage, ec2_instance_store, gp3

if TYPE_CHECKING:
    from components.offerings import Offering
    from components.service_spec import ServiceSpec

DEFAULT_REGION = "us-east-1"


def read_placement(read: ConfigReader, stack: str, offering: Offering | None) -> Placement:
    """``aws:region`` (a real region that sells the instance type) and the VPC, subnets and AMI keys."""
    region = read.string("aws:region", DEFAULT_REGION)
    _check_aws_placement(offering, region)
    _refuse_affinity_header(read)
    aws = _aws_settings(read)
    reservation, capacity_block = _aws_reservation(read)
    zone = _reservation_zone(read, region, reservation, capacity_block)
    return Placement(
        region=region,
        settings=replace(aws, reservation=reservation, capacity_block=capacity_block, reservation_zone=zone),
    )


def _refuse_affinity_header(read: ConfigReader) -> None:
    """An ALB keeps a client on one target only by cookie (target group stickiness ``lb_cookie``, the
    ALB's own AWSALB cookie, or ``app_cookie``, a cookie the application sets, which vLLM does not): "To
    use sticky sessions, the client must support cookies" (docs.aws.amazon.com/elasticloadbalancing/latest/
    application/sticky-sessions.html, read 2026-12-07). No ALB setting hashes a request header, so the key
    is refused rather than approximated by a cookie API clients do not return."""
    header = read.string("affinityHeader")
    if header is not None:
        raise SpecError(
            f"{PROJECT}:affinityHeader",
            header,
            "unset on aws: an ALB's stickiness is cookie-based only (lb_cookie or app_cookie), it cannot "
            "follow a header, and API clients rarely return cookies; use vllm:cloud gcp (consistent hash on "
            "the header) or kubernetes with vllm:router inference-gateway (prefix-aware routing)",
        )


#: An EC2 capacity reservation id (``CapacityReservationId``: ``cr-`` and 17 hex digits; older ids 8).
AWS_RESERVATION = re.compile(r"^cr-[0-9a-f]{8,17}$")
#: How ``vllm:reservation`` names a Capacity Block. A block is a capacity reservation too (the same ``cr-``
#: ids) whose ``ReservationType`` is ``capacity-block``, and it needs the launch's market type
#: ``capacity-block``; the pinned pulumi_aws has no lookup that tells the two kinds apart without failing on
#: the other (``ec2.get_capacity_block_reservation`` "returns only Capacity Reservations whose
#: reservation_type is capacity-block"), so the value says which it is.
CAPACITY_BLOCK_PREFIX = "capacity-block:"


def _aws_reservation(read: ConfigReader) -> tuple[str | None, bool]:
    """``vllm:reservation``: an On-Demand Capacity Reservation (``cr-...``) or a Capacity Block
    (``capacity-block:cr-...``) every machine targets. Reserved capacity is on-demand capacity: a spot stack
    cannot launch into it (a mixed-instances group's spot share never targets a reservation)."""
    value = read.string("reservation")
    if value is None:
        return None, False
    key = f"{PROJECT}:reservation"
    block = value.startswith(CAPACITY_BLOCK_PREFIX)
    reservation = value.removeprefix(CAPACITY_BLOCK_PREFIX)
    if not AWS_RESERVATION.match(reservation):
        raise SpecError(
            key,
            value,
            "a capacity reservation id (cr-0123456789abcdef0), or capacity-block:cr-... for a Capacity Block",
        )
    if read.boolean("spot", False):
        raise SpecError(key, value, "unset with vllm:spot true (a reservation is on-demand capacity)")
    return reservation, block


def _reservation_zone(
    read: ConfigReader, region: str, reservation: str | None, capacity_block: bool
) -> str | None:
    """``vllm:reservationZone``: the Availability Zone of ``vllm:reservation``, required with it. A capacity
    reservation or Capacity Block serves only instances launched in its own zone ("Your instance can't
    launch in a subnet in a different Availability Zone from the Availability Zone where your Capacity Block
    is located", EC2 user guide, Capacity Blocks; the Auto Scaling guide has the group use "the Capacity
    Block's Availability Zone"), so the machines launch only there. The pinned pulumi_aws has no lookup of an
    On-Demand Capacity Reservation (only ``ec2.get_capacity_block_reservation``), so the zone is given, for
    both kinds alike, and a group never spreads into zones where every launch fails."""
    key = f"{PROJECT}:reservationZone"
    zone = read.string("reservationZone")
    if reservation is None:
        if zone is not None:
            raise SpecError(key, zone, "unset without vllm:reservation (it is the reservation's zone)")
        return None
    shown = f"{CAPACITY_BLOCK_PREFIX if capacity_block else ''}{reservation}"
    where = (
        f"the Availability Zone of vllm:reservation {shown}, e.g. {region}a (aws ec2 "
        f"describe-capacity-reservations --capacity-reservation-ids {reservation} --query "
        "'CapacityReservations[0].AvailabilityZone')"
    )
    if zone is None:
        raise SpecError(key, None, where)
    if not re.fullmatch(rf"{re.escape(region)}[a-z]", zone):
        raise SpecError(key, zone, f"{where}, in aws:region {region}")
    return zone


def _check_aws_placement(offering: Offering | None, region: str) -> None:
    """The region must exist, and sell the instance type where the catalog knows where it is sold."""
    if region not in AWS_REGIONS:
        close = difflib.get_close_matches(region, AWS_REGIONS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        known = f"one of the {len(AWS_REGIONS)} in the {AWS_REGIONS_SOURCE}"
        raise SpecError("aws:region", region, f"an AWS region such as us-east-1 ({known}){hint}")
    if offering is not None and offering.regions and region not in offering.regions:
        raise SpecError(
            "aws:region",
            region,
            f"a region that sells {offering.machine_type}: {', '.join(sorted(offering.regions))}",
        )


AWS_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
AWS_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")


def _aws_settings(read: ConfigReader) -> AwsSettings:
    """The default VPC, or a named VPC with the instances' subnets and, optionally, public subnets for the
    internet-facing ALB (private instances behind a public load balancer). An ALB spans two zones or more,
    so whichever subnets it uses number two or more. What needs the account's data (that the subnets are
    in the VPC, in two zones, in zones that sell the instance type) is checked by lookups before any
    resource is created (components/aws/network.py)."""
    vpc_id = read.string("vpcId")
    if vpc_id is not None and not re.match(r"^vpc-[0-9a-f]{8,17}$", vpc_id):
        raise SpecError(f"{PROJECT}:vpcId", vpc_id, "a VPC id such as vpc-0abc1234def567890")

    def subnet_list(key: str) -> tuple[str, ...]:
        subnets = read.string_list(
            key, lambda s: AWS_SUBNET.match(s) is not None, "subnet ids like subnet-0abc1234"
        )
        if subnets and vpc_id is None:
            raise SpecError(f"{PROJECT}:{key}", list(subnets), "set together with vllm:vpcId")
        return subnets

    subnets = subnet_list("subnetIds")
    balancer_subnets = subnet_list("loadBalancerSubnetIds")
    if vpc_id is not None and balancer_subnets and len(set(balancer_subnets)) < 2:
        raise SpecError(
            f"{PROJECT}:loadBalancerSubnetIds",
            list(balancer_subnets),
            f"two or more public subnets of vllm:vpcId {vpc_id} in different availability zones (an ALB "
            "spans two)",
        )
    if vpc_id is not None and not balancer_subnets and len(set(subnets)) < 2:
        raise SpecError(
            f"{PROJECT}:subnetIds",
            list(subnets),
            f"two or more subnets of vllm:vpcId {vpc_id} in different availability zones (an ALB spans two), "
            "or one or more with vllm:loadBalancerSubnetIds naming the ALB's",
        )
    if vpc_id is not None and not subnets:
        raise SpecError(
            f"{PROJECT}:subnetIds", [], f"the subnets of vllm:vpcId {vpc_id} the instances run in"
        )
    ami_id = read.string("amiId")
    if ami_id is not None and not AWS_AMI.match(ami_id):
        raise SpecError(f"{PROJECT}:amiId", ami_id, "an AMI id such as ami-0abc1234def567890")
    return AwsSettings(
        vpc_id=vpc_id, subnet_ids=subnets, load_balancer_subnet_ids=balancer_subnets, ami_id=ami_id
    )


#: A Route 53 hosted zone id as the API returns it without the ``/hostedzone/`` prefix: ``Z`` and upper-case
#: letters and digits, up to 32 characters (Route 53 API, HostedZone.Id: "Length Constraints: Maximum
#: length of 32").
HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")


def check_spec(spec: ServiceSpec) -> None:
    """``vllm:dnsZone``: a Route 53 hosted zone id (``Z0123456789ABCDEFGHIJ``), not the zone's name. And no
    queue-depth target beside a canary: the metrics agent publishes without a dimension (one namespace per
    stack), so each revision's policy would average the other revision's queues into its own."""
    scaling = spec.autoscaling
    if spec.canary is not None and scaling is not None and scaling.target_queue_per_replica is not None:
        raise SpecError(
            f"{PROJECT}:targetQueuePerReplica",
            str(scaling.target_queue_per_replica),
            f"unset with {PROJECT}:canary on AWS (the queue metrics carry no revision); scale the "
            f"revisions on {PROJECT}:targetQpsPerReplica, which each revision's target group counts alone",
        )
    if spec.dns_zone is not None and not HOSTED_ZONE_ID.match(spec.dns_zone.removeprefix("/hostedzone/")):
        raise SpecError(
            f"{PROJECT}:dnsZone",
            spec.dns_zone,
            "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ (aws route53 list-hosted-zones: Id), "
            "not the zone's name",
        )


#: NVMe instance store volumes per instance type: (count, GB each), EC2 "instance store volumes" table (P5:
#: 8 x 3.84 TB; P4d/P4de: 8 x 1 TB; G6e: 1 x 250 GB, 2 x 1.9 TB at 12xlarge/24xlarge, 4 x 1.9 TB at
#: 48xlarge). The Deep Learning AMI stripes them into /opt/dlami/nvme at boot; scripts/local_nvme.sh puts
#: the HF cache there. Other types keep the gp3 root volume.
INSTANCE_STORE = MappingProxyType(
    {
        "p5.48xlarge": (8, 3840),
        "p5en.48xlarge": (8, 3840),
        "p4d.24xlarge": (8, 1000),
        "p4de.24xlarge": (8, 1000),
        "g6e.xlarge": (1, 250),
        "g6e.12xlarge": (2, 1900),
        "g6e.24xlarge": (2, 1900),
        "g6e.48xlarge": (4, 1900),
    }
)


#: gp3 at its 1000 MiB/s ceiling (the 4000 IOPS that ratio requires): the weights are written to and read
#: back from this volume, and gp3's baseline 125 MiB/s would take over two hours for a 1 TB checkpoint,
#: far beyond the launch spec's load budget. Cost: about $40 per volume-month over the baseline.
ROOT_THROUGHPUT_MIBPS = 1000


def weight_storage(spec: ServiceSpec) -> Storage:
    """The instance store when the type has NVMe volumes (each type's exceeds its GPU memory), else the root
    volume, at their rates in components/rates.py."""
    machine = spec.offering.machine_type if spec.offering else None
    store = INSTANCE_STORE.get(machine) if machine else None
    return ec2_instance_store(*store) if store else gp3(ROOT_THROUGHPUT_MIBPS, spec.disk_size_gb)


def public_view(spec: ServiceSpec) -> dict[str, Any]:
    """The settings, and the EC2 vCPU quotas ``up`` checks before it declares anything (``tools.plan``
    shows them offline)."""
    aws = settings(spec)
    return {
        "region": spec.region,
        "vpcId": aws.vpc_id,
        "subnetIds": list(aws.subnet_ids),
        "loadBalancerSubnetIds": list(aws.load_balancer_subnet_ids),
        "amiId": aws.ami_id,
        "reservation": aws.reservation,
        "capacityBlock": aws.capacity_block or None,
        "reservationZone": aws.reservation_zone,
        "vcpuQuotas": [quota.as_output() for quota in vcpu_quotas(spec)],
        "scaleOutSurge": scale_out_surge(spec) or None,
    }


#: Target tracking's CloudWatch alarms read one-minute data points (ALBRequestCountPerTarget; the metrics
#: agent's interval, components/aws/metrics.py), and the scale-out alarm wants 3 of them over target (EC2
#: Auto Scaling user guide, "Target tracking scaling policies", read 2026-12; docs/autoscaling.md).
METRIC_PERIOD_SECONDS = 60
SCALE_OUT_PERIODS = 3


def scale_out_steps(spec: ServiceSpec) -> tuple[tuple[str, int], ...]:
    """From a load step to target tracking asking for another machine: the minute the step lands in, then
    the scale-out alarm's periods."""
    if spec.autoscaling is None:
        return ()
    return (
        ("metric minute", METRIC_PERIOD_SECONDS),
        (f"alarm: {SCALE_OUT_PERIODS} minutes over target", SCALE_OUT_PERIODS * METRIC_PERIOD_SECONDS),
    )


PLATFORM = Platform(
    name="aws",
    title="AWS",
    provider_namespace="aws",
    provider_sdk="pulumi_aws",
    provider_keys=("aws:region",),
    keys=("vpcId", "subnetIds", "loadBalancerSubnetIds", "amiId", "reservationZone", "affinityHeader"),
    catalog=CATALOG,
    read_placement=read_placement,
    public_view=public_view,
    check_spec=check_spec,
    weight_storage=weight_storage,
    scale_out_surge=scale_out_surge,
    vm_hooks=Path(__file__).with_name("vm_hooks.sh"),
    # the verdict goes to the Auto Scaling group (no health check reads it over HTTP), the phase to tags
    agent_omits=("serve", "GuestAttributes"),
    scale_out_steps=scale_out_steps,
    # A VM's boot disk also holds the OS and the image (~30 GB).
    disk_overhead_gb=30,
    # Its VMs serve from GPUs: CPU-only replicas are for laptop clusters.
    unsupported=MappingProxyType(
        {
            Feature.CPU_REPLICAS: "a GPU as TYPE:COUNT (e.g. H100:8)",
            # The ALB keeps its default IpAddressType, ipv4 (load_balancer.py): no IPv6 client reaches it.
            Feature.IPV6_CLIENTS: "IPv4 ranges on AWS: the ALB's address type is ipv4 (no IPv6 address)",
            Feature.AUTOSCALING_MULTI_NODE: MULTI_NODE_ON_VMS,
            # ALBRequestCountPerTarget divides the target group's requests by its healthy targets: without
            # one there is no metric to scale out on.
            Feature.SCALE_TO_ZERO: ">= 1 on AWS (ALBRequestCountPerTarget needs a target to measure); "
            "scale to zero on Kubernetes, with KEDA's activation",
            Feature.UPSCALE_DELAY: "unset on AWS: target tracking scales out once its own CloudWatch "
            "alarm has seen 3 one-minute periods over target, which it does not let you change "
            "(docs/autoscaling.md)",
            Feature.DOWNSCALE_DELAY: "unset on AWS: target tracking scales in once its own CloudWatch alarm "
            "has seen 15 one-minute periods under target, which it does not let you change "
            "(docs/autoscaling.md)",
            Feature.REGIONS: (
                "unset on aws: one stack serves from one aws:region (an ALB is regional); run a stack per "
                "region, or use vllm:cloud gcp, whose global load balancer spans regions"
            ),
        }
    ),
    plan_properties=MappingProxyType(
        {
            "aws:s3/bucket:Bucket": ("bucketPrefix", "forceDestroy"),
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            ),
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("rule.objectOwnership",),
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
                "rules.*.applyServerSideEncryptionByDefault.sseAlgorithm",
            ),
            "aws:ec2/launchTemplate:LaunchTemplate": (
                "instanceType",
                "blockDeviceMappings.*.ebs.volumeSize",
                "metadataOptions.httpTokens",
                "instanceMarketOptions.marketType",
                "capacityReservationSpecification.capacityReservationTarget.capacityReservationId",
                "placement.groupName",
            ),
            "aws:autoscaling/group:Group": (
                "desiredCapacity",
                "minSize",
                "maxSize",
                "healthCheckType",
                "healthCheckGracePeriod",
                "defaultInstanceWarmup",
            ),
            "aws:autoscaling/lifecycleHook:LifecycleHook": (
                "lifecycleTransition",
                "defaultResult",
                "heartbeatTimeout",
            ),
            "aws:autoscaling/policy:Policy": (
                "policyType",
                "estimatedInstanceWarmup",
                "targetTrackingConfiguration.predefinedMetricSpecification.predefinedMetricType",
                "targetTrackingConfiguration.targetValue",
                "capacityRebalance",
                "mixedInstancesPolicy.instancesDistribution",
                "instanceTypes = mixedInstancesPolicy.launchTemplate.overrides.*.instanceType",
            ),
            "aws:lb/loadBalancer:LoadBalancer": ("loadBalancerType", "internal", "idleTimeout"),
            "aws:lb/targetGroup:TargetGroup": (
                "port",
                "healthCheck.path",
                "healthCheck.matcher",
                "loadBalancingAlgorithmType",
                "deregistrationDelay",
            ),
            "aws:lb/listener:Listener": ("port", "sslPolicy", "defaultActions.*.type"),
            "aws:acm/certificate:Certificate": ("domainName", "validationMethod"),
            "aws:route53/record:Record": ("name", "type"),
            "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
            "aws:lb/listenerRule:ListenerRule": ("conditions.*.pathPattern.values", "actions.*.type"),
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
                "ipProtocol",
                "fromPort",
                "toPort",
                "cidrIpv4",
                "cidrIpv6",
                "referencedSecurityGroupId",
            ),
            "aws:ec2/placementGroup:PlacementGroup": ("strategy",),
            "aws:secretsmanager/secret:Secret": ("name",),
        }
    ),
)
