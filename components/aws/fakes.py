"""What the mocked aws provider computes: outputs by resource type, results by invoke token.

A small fake region (us-east-1): a default VPC with one default subnet per zone, a user VPC with three
subnets, and per instance type the zones that sell it. The lookups honour their filters, so tests can
see which subnets the program picks.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable

ACCOUNT = "123456789012"
REGION = "us-east-1"
DEFAULT_VPC = "vpc-0de0fa0170000000a"
USER_VPC = "vpc-0123456789abcdef0"
DLAMI_ID = "ami-0dl0000000000b45e"

#: subnet id -> (vpc, zone, default for its zone)
SUBNETS: dict[str, tuple[str, str, bool]] = {
    **{f"subnet-0def{zone}0000000000{zone}": (DEFAULT_VPC, f"{REGION}{zone}", True) for zone in "abcdef"},
    "subnet-0a5e40000000000a1": (USER_VPC, f"{REGION}a", False),
    "subnet-0a5e40000000000b1": (USER_VPC, f"{REGION}b", False),
    "subnet-0a5e40000000000d1": (USER_VPC, f"{REGION}d", False),
    # the user VPC's public subnets (for its load balancer)
    "subnet-0a5e4000000000a2a": (USER_VPC, f"{REGION}a", False),
    "subnet-0a5e4000000000c2c": (USER_VPC, f"{REGION}c", False),
}
#: instance type -> zones of the fake region that sell it (every zone when not listed)
OFFERED_ZONES: dict[str, tuple[str, ...]] = {
    "p5.48xlarge": (f"{REGION}a", f"{REGION}c"),
    "p5en.48xlarge": (f"{REGION}c", f"{REGION}d"),
    "g6.xlarge": tuple(f"{REGION}{zone}" for zone in "abcd"),
    "g4dn.xlarge": (f"{REGION}e",),
}
ALL_ZONES = tuple(f"{REGION}{zone}" for zone in "abcdef")


def _filters(args: dict) -> dict[str, list[str]]:
    return {f["name"]: list(f["values"]) for f in args.get("filters") or []}


def _get_vpc(args: dict) -> dict:
    wanted = DEFAULT_VPC if args.get("default") else args.get("id")
    if wanted not in (DEFAULT_VPC, USER_VPC):
        raise ValueError(f"no matching EC2 VPC found for {wanted}")
    return {
        "id": wanted,
        "arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{wanted}",
        "default": wanted == DEFAULT_VPC,
    }


def _get_subnets(args: dict) -> dict:
    filters = _filters(args)
    checks: dict[str, Callable[[str, tuple[str, str, bool]], str]] = {
        "vpc-id": lambda _, subnet: subnet[0],
        "availability-zone": lambda _, subnet: subnet[1],
        "default-for-az": lambda _, subnet: str(subnet[2]).lower(),
        "subnet-id": lambda subnet_id, _: subnet_id,
    }
    unknown = set(filters) - checks.keys()
    assert not unknown, f"fake getSubnets has no filter {unknown}"
    ids = [
        subnet_id
        for subnet_id, subnet in SUBNETS.items()
        if all(checks[name](subnet_id, subnet) in values for name, values in filters.items())
    ]
    return {"id": REGION, "ids": ids, "filters": args.get("filters")}


def _get_subnet(args: dict) -> dict:
    vpc, zone, default = SUBNETS[args["id"]]
    return {"id": args["id"], "vpcId": vpc, "availabilityZone": zone, "defaultForAz": default}


def _get_instance_type_offerings(args: dict) -> dict:
    assert args.get("locationType") == "availability-zone", args
    (instance_type,) = _filters(args)["instance-type"]
    zones = list(OFFERED_ZONES.get(instance_type, ALL_ZONES))
    return {
        "id": REGION,
        "locations": zones,
        "locationTypes": ["availability-zone"] * len(zones),
        "instanceTypes": [instance_type] * len(zones),
    }


def _get_parameter(args: dict) -> dict:
    name = args["name"]
    assert name.startswith("/aws/service/deeplearning/ami/"), name
    return {"id": name, "name": name, "type": "String", "value": DLAMI_ID, "insecureValue": DLAMI_ID}


#: The fake DLAMI's root snapshot in GiB. Illustrative: the DLAMI release notes list packages, the NVMe
#: location and the gp3 volume type, not the snapshot's size (read 2026-12); ``aws ec2 describe-images``
#: shows a real one's (BlockDeviceMappings[].Ebs.VolumeSize).
DLAMI_ROOT_SNAPSHOT_GB = 75


def _get_ami(args: dict) -> dict:
    """An EBS-backed AMI as ``ec2:DescribeImages`` describes it; the ``ebs`` map's values are strings, as
    the data source returns them (pulumi_aws GetAmiBlockDeviceMappingResult)."""
    (image_id,) = _filters(args)["image-id"]
    root = {
        "deviceName": "/dev/sda1",
        "ebs": {
            "delete_on_termination": "true",
            "encrypted": "false",
            "iops": "3000",
            "snapshot_id": "snap-0d1a0000000000001",
            "throughput": "125",
            "volume_size": str(DLAMI_ROOT_SNAPSHOT_GB),
            "volume_type": "gp3",
        },
        "noDevice": "",
        "virtualName": "",
    }
    ephemeral = {"deviceName": "/dev/sdb", "ebs": {}, "noDevice": "", "virtualName": "ephemeral0"}
    return {
        "id": image_id,
        "imageId": image_id,
        "rootDeviceName": "/dev/sda1",
        "architecture": "x86_64",
        "blockDeviceMappings": [root, ephemeral],
    }


#: quota code -> its value in the fake region (vCPUs); a quota not listed is ample.
QUOTAS: dict[str, float] = {}


def _get_service_quota(args: dict) -> dict:
    assert args["serviceCode"] == "ec2", args
    code = args["quotaCode"]
    return {"id": code, "quotaCode": code, "serviceCode": "ec2", "value": QUOTAS.get(code, 100000.0)}


CALLS: dict[str, Callable[[dict], dict]] = {
    "aws:ec2/getVpc:getVpc": _get_vpc,
    "aws:ec2/getSubnets:getSubnets": _get_subnets,
    "aws:ec2/getSubnet:getSubnet": _get_subnet,
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": _get_instance_type_offerings,
    "aws:ssm/getParameter:getParameter": _get_parameter,
    "aws:ec2/getAmi:getAmi": _get_ami,
    "aws:servicequotas/getServiceQuota:getServiceQuota": _get_service_quota,
}


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


#: The hosted zone of us-east-1's Application Load Balancers (ELB endpoints, "Route 53 hosted zone ID").
ALB_HOSTED_ZONE = "Z35SXDOTRQ7X7K"
#: ACM's DNS validation record for a domain: a CNAME under it to a name under acm-validations.aws.
ACM_VALIDATION_LABEL = "_0123456789abcdef0123456789abcdef"


def _certificate(inputs: dict, name: str) -> dict:
    domain = inputs["domainName"]
    return {
        "arn": _arn("acm", f"certificate/{name}"),
        "domainValidationOptions": [
            {
                "domainName": domain,
                "resourceRecordName": f"{ACM_VALIDATION_LABEL}.{domain}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_fedcba9876543210.{name}.acm-validations.aws.",
            }
        ],
    }


OUTPUTS: dict[str, Callable[[dict, str], dict]] = {
    "aws:secretsmanager/secret:Secret": lambda inputs, name: {
        "arn": _arn("secretsmanager", f"secret:{inputs['name']}-Ab12Cd")
    },
    # a new value is a new version (Secrets Manager version ids are UUIDs; this one is derived from the value)
    "aws:secretsmanager/secretVersion:SecretVersion": lambda inputs, name: {
        "versionId": str(
            uuid.UUID(
                hashlib.sha256(json.dumps(inputs.get("secretString"), default=str).encode()).hexdigest()[:32]
            )
        )
    },
    "aws:iam/role:Role": lambda inputs, name: {"arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "name": name},
    "aws:iam/instanceProfile:InstanceProfile": lambda inputs, name: {
        "arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{name}"
    },
    "aws:lb/loadBalancer:LoadBalancer": lambda inputs, name: {
        "arn": _arn("elasticloadbalancing", f"loadbalancer/{name}"),
        "dnsName": f"{name}-1234567890.{REGION}.elb.amazonaws.com",
        # the ARN's last part: <type>/<name>/<id> (the id is 16 hex digits)
        "arnSuffix": f"{'net' if inputs.get('loadBalancerType') == 'network' else 'app'}/"
        f"{inputs.get('name', name)}/50dc6c495c0c9188",
        "zoneId": ALB_HOSTED_ZONE,
    },
    "aws:acm/certificate:Certificate": _certificate,
    "aws:route53/record:Record": lambda inputs, name: {"fqdn": str(inputs["name"]).rstrip(".")},
    "aws:lb/targetGroup:TargetGroup": lambda inputs, name: {
        "arn": _arn("elasticloadbalancing", f"targetgroup/{name}"),
        "arnSuffix": f"targetgroup/{inputs.get('name', name)}/73e2d6bc24d8a067",
    },
    "aws:lb/listener:Listener": lambda inputs, name: {
        "arn": _arn("elasticloadbalancing", f"listener/{name}")
    },
    "aws:ec2/launchTemplate:LaunchTemplate": lambda inputs, name: {"latestVersion": 1},
    "aws:autoscaling/group:Group": lambda inputs, name: {"name": name},
    "aws:s3/bucket:Bucket": lambda inputs, name: {
        "id": f"{inputs['bucketPrefix']}0a1b2c3d",  # the provider's unique suffix
        "bucket": f"{inputs['bucketPrefix']}0a1b2c3d",
        "arn": f"arn:aws:s3:::{inputs['bucketPrefix']}0a1b2c3d",
    },
    "aws:cloudwatch/logGroup:LogGroup": lambda inputs, name: {
        "arn": _arn("logs", f"log-group:{inputs['name']}")
    },
    "aws:lambda/function:Function": lambda inputs, name: {
        "arn": _arn("lambda", f"function:{inputs['name']}")
    },
    "aws:lambda/invocation:Invocation": lambda inputs, name: {"result": _let_everything_through(inputs)},
}


def _let_everything_through(inputs: dict) -> str:
    """The serving gate's answer (components/scripts/alb_serving_gate.py) when every revision serves: each
    slot's weight as asked."""
    slots = json.loads(inputs["input"])["slots"]
    return json.dumps({slot: {"weight": asked["weight"], "refused": ""} for slot, asked in slots.items()})
