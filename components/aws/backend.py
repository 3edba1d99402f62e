"""The AWS backend: its keys, settings, checks and public view (no SDK: see components/backend.py)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from components.aws.offerings import AWS_REGIONS, AWS_REGIONS_SOURCE, CATALOG
from components.backend import Backend, Feature, Placement
from components.spec import PROJECT, ConfigReader, SpecError

if TYPE_CHECKING:
    from components.catalog import Offering
    from components.spec import ServiceSpec

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, kw_only=True)
class AwsSettings:
    """The AWS keys of a stack, validated (README "AWS")."""

    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()  # the instances' subnets (and the ALB's, unless named apart)
    load_balancer_subnet_ids: tuple[str, ...] = ()  # public subnets for the internet-facing ALB
    ami_id: str | None = None  # pinned AMI; None: the current Deep Learning AMI, resolved at launch


def settings(spec: ServiceSpec) -> AwsSettings:
    """The stack's AWS settings (``spec.platform`` of an AWS stack)."""
    if not isinstance(spec.platform, AwsSettings):
        raise TypeError(f"{spec.cloud} stack has no AWS settings")
    return spec.platform


def read_placement(read: ConfigReader, stack: str, offering: Offering | None) -> Placement:
    """``aws:region`` (a real region that sells the instance type) and the VPC, subnets and AMI keys."""
    region = read.string("aws:region", DEFAULT_REGION)
    _check_aws_placement(offering, region)
    return Placement(region=region, settings=_aws_settings(read))


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


def public_view(spec: ServiceSpec) -> dict[str, Any]:
    aws = settings(spec)
    return {
        "region": spec.region,
        "vpcId": aws.vpc_id,
        "subnetIds": list(aws.subnet_ids),
        "loadBalancerSubnetIds": list(aws.load_balancer_subnet_ids),
        "amiId": aws.ami_id,
    }


BACKEND = Backend(
    name="aws",
    title="AWS",
    provider_namespace="aws",
    provider_sdk="pulumi_aws",
    provider_keys=("aws:region",),
    keys=("vpcId", "subnetIds", "loadBalancerSubnetIds", "amiId"),
    catalog=CATALOG,
    read_placement=read_placement,
    public_view=public_view,
    # A VM's boot disk also holds the OS and the image (~30 GB).
    disk_overhead_gb=30,
    # Its VMs serve from GPUs: CPU-only replicas are for laptop clusters.
    unsupported=MappingProxyType({Feature.CPU_REPLICAS: "a GPU as TYPE:COUNT (e.g. H100:8)"}),
    plan_properties=MappingProxyType(
        {
            "aws:ec2/launchTemplate:LaunchTemplate": (
                "instanceType",
                "blockDeviceMappings.*.ebs.volumeSize",
                "metadataOptions.httpTokens",
                "instanceMarketOptions.marketType",
                "placement.groupName",
            ),
            "aws:autoscaling/group:Group": (
                "desiredCapacity",
                "minSize",
                "maxSize",
                "healthCheckType",
                "healthCheckGracePeriod",
            ),
            "aws:lb/loadBalancer:LoadBalancer": ("loadBalancerType", "internal", "idleTimeout"),
            "aws:lb/targetGroup:TargetGroup": (
                "port",
                "healthCheck.path",
                "healthCheck.matcher",
                "loadBalancingAlgorithmType",
                "deregistrationDelay",
            ),
            "aws:lb/listener:Listener": ("port", "defaultActions.*.type"),
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
