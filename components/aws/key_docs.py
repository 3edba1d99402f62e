"""What each of AWS's keys means, and its default: the rows tools/docs.py generates into the key tables
of docs/configuration.md (links are relative to docs/)."""

#: Each key of platform.py's ``keys`` (``vllm:``) and ``provider_keys``: (meaning, default).
KEYS: dict[str, tuple[str, str]] = {
    "vpcId": (
        "AWS: the VPC of `subnetIds` and `loadBalancerSubnetIds`; see [AWS](aws.md)",
        "the region's default VPC",
    ),
    "subnetIds": (
        "AWS: the instances' subnets in `vpcId`, a list; without `loadBalancerSubnetIds` the ALB's too, "
        "which must then be two or more in different zones and route to an internet gateway; see "
        "[AWS](aws.md)",
        "the default VPC's default subnets",
    ),
    "loadBalancerSubnetIds": (
        "AWS: public subnets for the ALB, two or more in different zones, in front of private instances "
        "in `subnetIds`; see [AWS](aws.md)",
        "`subnetIds`",
    ),
    "amiId": (
        "AWS: an `ami-...` every machine boots, with an NVIDIA driver >= 580; see [AWS](aws.md)",
        "the current Deep Learning AMI, resolved at each launch",
    ),
    "reservationZone": (
        "AWS: the Availability Zone of `reservation` (e.g. `us-east-1b`), required with it: the machines "
        "launch only there",
        "none",
    ),
    "aws:region": (
        "an AWS region that sells the instance type, per the catalog",
        "`us-east-1`",
    ),
    "affinityHeader": (
        "refused on AWS: ALB stickiness is cookie-based only; see [Routing](routing.md#aws)",
        "none",
    ),
}
