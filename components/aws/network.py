"""Where the service runs on AWS and who may talk to whom: VPC, subnets and the two security groups."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws.ec2 as ec2
import pulumi_aws.vpc as vpc

from components import vm
from components.aws.names import ec2_description
from components.aws.settings import AwsSettings
from components.aws.settings import settings as aws_settings
from components.launch import PORT
from components.service_spec import ServiceSpec

HTTP_PORT = 80
HTTPS_PORT = 443


def listener_ports(spec: ServiceSpec) -> dict[int, str]:
    """Ports the load balancer listens on, and what each serves: 80 alone, or with vllm:domain 443 too
    (and 80 only redirects to it)."""
    if spec.domain is None:
        return {HTTP_PORT: "HTTP"}
    return {HTTP_PORT: "HTTP redirect", HTTPS_PORT: "HTTPS"}


@dataclass(frozen=True, kw_only=True)
class NetworkArgs:
    spec: ServiceSpec


class Network(pulumi.ComponentResource):
    """The VPC and subnets the service uses, and the security groups that make the ALB its only door.

    Subnets: the region's default VPC and its default subnets unless ``vllm:vpcId`` and ``vllm:subnetIds``
    name others. The load balancer uses ``vllm:loadBalancerSubnetIds`` (public subnets, so the instances'
    subnets can be private behind the user's NAT) or else every instance subnet; either way two zones or
    more. Instances use only the subnets in zones that sell their instance type (``instance_subnets``: a
    canary's own GPU may sell elsewhere than the stable revision's; ``instance_subnet_ids`` the stable's),
    so an ASG never retries in a zone that cannot place it; with ``vllm:reservation``, only those in
    ``vllm:reservationZone``, the one zone whose reserved capacity they can use.

    Security groups: the ALB admits the listener ports from ``vllm:allowedCidrs`` and may only reach the
    instances' serving port; instances admit the serving port from the ALB's group and nothing else (no
    SSH, no other source), and reach out anywhere (image, weights, Secrets Manager).

    Attributes:
        vpc_id, load_balancer_subnet_ids, instance_subnet_ids: where the ALB and the machines go.
        load_balancer_security_group, instance_security_group: the ALB's and the machines' security groups.
        load_balancer_ingress_rules: the listener ports from each range of ``vllm:allowedCidrs``.
        load_balancer_egress_rule: the ALB to the machines' vLLM port, and nowhere else.
        instance_ingress_rule: the machines' vLLM port from the ALB's group, their only ingress.
        instance_egress_rule: the machines out to anywhere (image, weights, Secrets Manager).
        public_ips: whether machines get public IPv4 addresses (below).
    """

    vpc_id: pulumi.Output[str]
    load_balancer_subnet_ids: pulumi.Output[list[str]]
    instance_subnet_ids: pulumi.Output[list[str]]
    load_balancer_security_group: ec2.SecurityGroup
    instance_security_group: ec2.SecurityGroup
    load_balancer_ingress_rules: list[vpc.SecurityGroupIngressRule]
    load_balancer_egress_rule: vpc.SecurityGroupEgressRule
    instance_ingress_rule: vpc.SecurityGroupIngressRule
    instance_egress_rule: vpc.SecurityGroupEgressRule
    #: Instances get public IPv4 addresses in the default VPC (see components/aws/__init__.py); in a
    #: user's subnets the subnet's own setting decides.
    public_ips: bool | None

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:aws:Network", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        settings = aws_settings(spec)

        if settings.vpc_id is None:
            default_vpc = ec2.get_vpc_output(default=True, opts=invoke)
            self.vpc_id = default_vpc.id
            scope = [
                {"name": "vpc-id", "values": [self.vpc_id]},
                {"name": "default-for-az", "values": ["true"]},
            ]
            self.public_ips = True
        else:
            self.vpc_id = ec2.get_vpc_output(id=settings.vpc_id, opts=invoke).id
            scope = [
                {"name": "vpc-id", "values": [self.vpc_id]},
                {"name": "subnet-id", "values": list(settings.subnet_ids)},
            ]
            self.public_ips = None

        # The output-form invokes resolve the Outputs (VPC id, zones) inside these filters; the SDK's filter
        # TypedDicts type their values as plain strings, hence the ignores on the three subnet lookups.
        in_scope = ec2.get_subnets_output(filters=scope, opts=invoke).ids  # pyright: ignore[reportArgumentType]
        self._scope, self._invoke = scope, invoke
        self._selling: dict[str, pulumi.Output[list[str]]] = {}
        self._named = pulumi.Output.all(in_scope, self.vpc_id).apply(
            lambda found: _checked_scope("vllm:subnetIds", settings.subnet_ids, found[0], found[1])
        )
        self.instance_subnet_ids = self.instance_subnets(spec)
        if settings.vpc_id is None:
            self.load_balancer_subnet_ids = self._named  # one default subnet per zone of the region
        else:
            self.load_balancer_subnet_ids = self._balancer_subnets(settings, invoke)
        self.load_balancer_security_group = ec2.SecurityGroup(
            f"{name}-alb",
            vpc_id=self.vpc_id,
            description=ec2_description(f"{spec.name} load balancer: listener ports from vllm:allowedCidrs"),
            tags={"Name": f"{spec.name}-alb"},
            opts=child,
        )
        self.instance_security_group = ec2.SecurityGroup(
            f"{name}-instances",
            vpc_id=self.vpc_id,
            description=ec2_description(
                f"{spec.name} replicas: the serving port from the load balancer only"
            ),
            tags={"Name": f"{spec.name}-instances"},
            opts=child,
        )
        alb, instances = self.load_balancer_security_group, self.instance_security_group
        self.load_balancer_ingress_rules = []
        for port, what in listener_ports(spec).items():
            for index, cidr in enumerate(spec.allowed_cidrs):
                rule = vpc.SecurityGroupIngressRule(
                    f"{name}-alb-{port}-{index}",
                    security_group_id=alb.id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    description=ec2_description(f"{what} {port} from an allowed client range"),
                    cidr_ipv4=cidr,  # IPv4 only: the spec refuses IPv6 ranges (the ALB has no IPv6 address)
                    opts=child,
                )
                self.load_balancer_ingress_rules.append(rule)
        self.load_balancer_egress_rule = vpc.SecurityGroupEgressRule(
            f"{name}-alb-to-instances",
            security_group_id=alb.id,
            ip_protocol="tcp",
            from_port=PORT,
            to_port=PORT,
            referenced_security_group_id=instances.id,
            description=ec2_description("requests and health checks to the vLLM port of the replicas"),
            opts=child,
        )
        self.instance_ingress_rule = vpc.SecurityGroupIngressRule(
            f"{name}-instances-from-alb",
            security_group_id=instances.id,
            ip_protocol="tcp",
            from_port=PORT,
            to_port=PORT,
            referenced_security_group_id=alb.id,
            description=ec2_description("vLLM port from the load balancer only"),
            opts=child,
        )
        self.instance_egress_rule = vpc.SecurityGroupEgressRule(
            f"{name}-instances-out",
            security_group_id=instances.id,
            ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
            description=ec2_description("image registry, Hugging Face, Secrets Manager"),
            opts=child,
        )
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "loadBalancerSubnetIds": self.load_balancer_subnet_ids,
                "instanceSubnetIds": self.instance_subnet_ids,
            }
        )

    def instance_subnets(self, spec: ServiceSpec) -> pulumi.Output[list[str]]:
        """The subnets in scope in the zones that sell ``spec``'s instance type (a canary's own GPU may sell
        elsewhere than the stable revision's), looked up once per instance type."""
        instance_type = vm.machine_type(spec)
        if instance_type in self._selling:
            return self._selling[instance_type]
        settings, region, invoke = aws_settings(spec), vm.vm_region(spec), self._invoke
        offered_zones = ec2.get_instance_type_offerings_output(
            location_type="availability-zone",
            filters=[{"name": "instance-type", "values": [instance_type]}],
            opts=invoke,
        ).locations.apply(
            lambda zones: _checked_offered(instance_type, region, zones, settings.reservation_zone)
        )
        selling = ec2.get_subnets_output(
            filters=[*self._scope, {"name": "availability-zone", "values": offered_zones}],  # pyright: ignore[reportArgumentType]
            opts=invoke,
        ).ids
        found = pulumi.Output.all(selling, offered_zones, self._named).apply(
            lambda got: _checked_selling(instance_type, settings.vpc_id is None, got[0], got[1])
        )
        self._selling[instance_type] = found
        return found

    def _balancer_subnets(
        self, settings: AwsSettings, invoke: pulumi.InvokeOptions
    ) -> pulumi.Output[list[str]]:
        """``vllm:loadBalancerSubnetIds`` (public subnets, instances private) or else ``vllm:subnetIds``:
        in the VPC, and in two availability zones or more (an ALB refuses fewer). Subnet zones are the
        account's data, so this is a lookup (``ec2:DescribeSubnets``), before any resource is created."""
        key = "vllm:loadBalancerSubnetIds" if settings.load_balancer_subnet_ids else "vllm:subnetIds"
        requested = settings.load_balancer_subnet_ids or settings.subnet_ids
        found = ec2.get_subnets_output(
            filters=[  # an Output in a filter: see __init__
                {"name": "vpc-id", "values": [self.vpc_id]},  # pyright: ignore[reportArgumentType]
                {"name": "subnet-id", "values": list(requested)},
            ],
            opts=invoke,
        ).ids
        zones = [ec2.get_subnet_output(id=subnet, opts=invoke).availability_zone for subnet in requested]
        return pulumi.Output.all(found, self.vpc_id, *zones).apply(
            lambda got: _checked_balancer(
                key, requested, got[0], got[1], dict(zip(requested, got[2:], strict=True))
            )
        )


class NetworkError(pulumi.RunError):
    """The region or the subnets cannot host the service: found from the region's own data at preview,
    before any machine is launched. One message naming the key, like SpecError."""


def _checked_scope(key: str, requested: tuple[str, ...], found: list[str], vpc_id: str) -> list[str]:
    missing = sorted(set(requested) - set(found))
    if missing:
        raise NetworkError(f"{key}: {', '.join(missing)} not found in vllm:vpcId {vpc_id}")
    return sorted(found)


def _checked_balancer(
    key: str, requested: tuple[str, ...], found: list[str], vpc_id: str, zones: dict[str, str]
) -> list[str]:
    subnets = _checked_scope(key, requested, found, vpc_id)
    if len({zones[subnet] for subnet in subnets}) < 2:
        where = ", ".join(f"{subnet} ({zones[subnet]})" for subnet in subnets)
        raise NetworkError(f"{key}: {where}: an internet-facing ALB needs subnets in two availability zones")
    return subnets


def _checked_offered(
    instance_type: str, region: str, zones: list[str], reservation_zone: str | None = None
) -> list[str]:
    """The zones the machines may launch in: those that sell the type, or the reservation's zone alone (a
    reservation serves only instances in its own zone, components/aws/platform.py)."""
    if not zones:
        raise NetworkError(f"aws:region: {region} sells no {instance_type} in any availability zone")
    if reservation_zone is None:
        return sorted(zones)
    if reservation_zone not in zones:
        raise NetworkError(
            f"vllm:reservationZone: {region} sells no {instance_type} in {reservation_zone} (it does in "
            f"{', '.join(sorted(zones))}): name the zone of vllm:reservation"
        )
    return [reservation_zone]


def _checked_selling(instance_type: str, default_vpc: bool, found: list[str], zones: list[str]) -> list[str]:
    if not found:
        where = "the default VPC has no default subnet" if default_vpc else "no subnet is"
        raise NetworkError(
            f"vllm:subnetIds: {where} in a zone that sells {instance_type} ({', '.join(zones)}); "
            "name subnets in those zones"
        )
    return sorted(found)
