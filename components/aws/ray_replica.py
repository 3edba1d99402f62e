"""Multi-node replicas: one Ray cluster of ``vllm:nodes`` GPU machines per replica, serving through its head.

Layout of one group (replica ``index``):

- a cluster placement group in ONE availability zone (the replica's subnet: replica ``i`` takes the
  ``i``-th zone that sells the instance type, so replicas spread over zones and each group stays close);
- the head: an ASG of one machine, a member of the ALB's target group (the only member that serves)
  and of the group's internal Network Load Balancer on the Ray GCS port;
- the workers: an ASG of ``nodes - 1`` machines, never behind the ALB;
- a group security group admitting all traffic from its own members (Ray, NCCL, the NLB) and nothing
  else: Ray ports are unreachable from the internet, from the ALB and from other replicas.

Head address: workers join ``RAY_HEAD_ADDRESS`` = the internal NLB's DNS name. An ASG cannot pin an IP
or a network interface to its machine, so a replaced head comes back elsewhere; the NLB target group
follows the ASG (new head registered, old one drained) with no code on the machines, no DNS write
permission on the instance role. Its health check only routes: like the ALB's, it never decides
whether the head is replaced (EC2 health and the machine's own report do, see machines.py), so a head
re-forming its group keeps its machine. The alternative, a Route 53 private record the head UPSERTs at
boot, needs a boot-time script, ``route53:ChangeResourceRecordSets`` on the instance role and a DNS TTL
to wait out; the NLB costs about $16 a month per group, noise next to the GPUs. The NLB does not
preserve client IPs, so a machine may reach the head through it too (no hairpin failure); Ray
identifies nodes by the IP they announce, not by the source address.

EFA is not enabled. Tensor parallelism stays inside a machine (NVLink) and only pipeline stages cross
machines, which exchange activations, not all-reduce traffic: the ENA network carries that well. EFA
would also need one EFA interface per network card in the launch template (32 on p5) -- and EC2 gives
no public IP to a machine with several interfaces, so the default VPC would need NAT -- plus the
aws-ofi-nccl plugin inside the vLLM image, which the stock image lacks. The group security group
already admits the all-traffic self-reference EFA requires, and the boot script passes
``/dev/infiniband`` to the container when present.

Rollouts replace a group's machines in place (minimum healthy 0%): a Ray cluster cannot mix old and new
machines, so a changed launch template restarts the group.

With ``vllm:canary`` each revision slot has its own replicas, named by the slot (the first slot's keep the
names every stack had) and joined to the slot's own target group, so promoting a canary renames nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws.autoscaling as autoscaling
import pulumi_aws.ec2 as ec2
import pulumi_aws.lb as lb
import pulumi_aws.vpc as vpc

from components import vm
from components.aws import machines, metrics
from components.aws.identity import ServiceIdentity
from components.aws.names import ec2_description, elb_name
from components.aws.network import Network
from components.aws.weight_cache import WeightCache
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: This component's type token before it was renamed for what it is: the alias keeps the URNs of
#: existing stacks' resources (this component's and, through it, its children's), so nothing is replaced.
FORMER_TYPE = "vllm:aws:RayGroup"

#: Ray's gRPC connections may sit idle between keepalives: keep them open as long as an NLB allows.
RAY_IDLE_TIMEOUT_SECONDS = 6000
NLB_CHECK_INTERVAL_SECONDS = 10
NLB_CHECK_TIMEOUT_SECONDS = 5


@dataclass(frozen=True, kw_only=True)
class RayReplicaArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    network: Network
    identity: ServiceIdentity
    image: machines.MachineImage
    target_group_arn: pulumi.Input[str]  # its revision's target group behind the ALB
    index: int  # which replica of its revision this group is
    weight_cache: WeightCache | None = None  # the stack's bucket of the model's files (vllm:weightCache)
    #: With vllm:canary: the replica is one revision's of two, and a canary's head group's create waits until
    #: the head serves (machines.ServingWait).
    beside_a_canary: bool = False
    is_canary: bool = False


class RayReplica(pulumi.ComponentResource):
    """One replica of ``spec.nodes`` machines: a Ray head serving vLLM, and its workers.

    Attributes:
        placement_group: the cluster placement group that keeps the replica's machines close.
        security_group: the replica's own group; its members reach each other and nothing else does.
        ray_ingress_rule, ray_egress_rule: all traffic from and to members of ``security_group`` only.
        head_load_balancer: the internal NLB whose DNS name is the workers' ``RAY_HEAD_ADDRESS``.
        head_target_group: the NLB's target group on the Ray GCS port; the head's ASG registers the head.
        head_listener: the NLB's TCP listener on the Ray GCS port, forwarding to ``head_target_group``.
        head_template, worker_template: the head's and the workers' launch templates.
        head_group: the Auto Scaling group of the one head, in the ALB's and the NLB's target groups.
        worker_group: the Auto Scaling group of the ``nodes - 1`` workers, behind no load balancer.
    """

    placement_group: ec2.PlacementGroup
    security_group: ec2.SecurityGroup
    ray_ingress_rule: vpc.SecurityGroupIngressRule
    ray_egress_rule: vpc.SecurityGroupEgressRule
    head_load_balancer: lb.LoadBalancer
    head_target_group: lb.TargetGroup
    head_listener: lb.Listener
    head_template: ec2.LaunchTemplate
    worker_template: ec2.LaunchTemplate
    head_group: autoscaling.Group
    worker_group: autoscaling.Group

    def __init__(self, name: str, args: RayReplicaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=FORMER_TYPE)])
        super().__init__("vllm:aws:RayReplica", name, None, pulumi.ResourceOptions.merge(opts, renamed))
        spec, launch, network, identity = args.spec, args.launch, args.network, args.identity
        child = pulumi.ResourceOptions(parent=self)
        subnet_id = network.instance_subnets(spec).apply(lambda ids: ids[args.index % len(ids)])

        self.placement_group = ec2.PlacementGroup(f"{name}-placement", strategy="cluster", opts=child)
        self.security_group = ec2.SecurityGroup(
            f"{name}-ray",
            vpc_id=network.vpc_id,
            description=ec2_description(f"{name} Ray group: all traffic between its own members only"),
            tags={"Name": f"{name}-ray"},
            opts=child,
        )
        group_id = self.security_group.id
        self.ray_ingress_rule = vpc.SecurityGroupIngressRule(
            f"{name}-ray-in",
            security_group_id=group_id,
            ip_protocol="-1",
            referenced_security_group_id=group_id,
            description=ec2_description("Ray, NCCL and the NLB of the head, from members of this group"),
            opts=child,
        )
        self.ray_egress_rule = vpc.SecurityGroupEgressRule(
            f"{name}-ray-out",
            security_group_id=group_id,
            ip_protocol="-1",
            referenced_security_group_id=group_id,
            description=ec2_description("to members of this group"),
            opts=child,
        )

        # The load balancers' names: the first revision slot's as every stack had them, the second's apart.
        role = f"rev{spec.revision}-r{args.index}" if spec.revision_suffix else f"r{args.index}"
        self.head_load_balancer = lb.LoadBalancer(
            f"{name}-head",
            name=subnet_id.apply(lambda subnet: elb_name(spec, f"{role}-nlb", "network", "internal", subnet)),
            load_balancer_type="network",
            internal=True,
            subnets=[subnet_id],
            security_groups=[group_id],
            tags={"Name": f"{name}-ray-head"},
            opts=child,
        )
        self.head_target_group = lb.TargetGroup(
            f"{name}-gcs",
            name=network.vpc_id.apply(
                lambda vpc_id: elb_name(spec, f"{role}-gcs", vm.RAY_GCS_PORT, "TCP", "instance", vpc_id)
            ),
            target_type="instance",
            port=vm.RAY_GCS_PORT,
            protocol="TCP",
            vpc_id=network.vpc_id,
            preserve_client_ip="false",
            deregistration_delay=0,
            # NLB health checks: timeout 2-120 s (configurable since Nov 2022, aws-cdk#26031) and below the
            # interval ("Health check timeout '10' must be smaller than the interval '10'",
            # terraform-provider-aws#2366); 3 missed checks take the head out of the NLB, nothing more.
            health_check={
                "enabled": True,
                "protocol": "TCP",
                "port": "traffic-port",
                "interval": NLB_CHECK_INTERVAL_SECONDS,
                "timeout": NLB_CHECK_TIMEOUT_SECONDS,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            tags={"Name": f"{name}-ray-gcs"},
            opts=child,
        )
        self.head_listener = lb.Listener(
            f"{name}-gcs",
            load_balancer_arn=self.head_load_balancer.arn,
            port=vm.RAY_GCS_PORT,
            protocol="TCP",
            tcp_idle_timeout_seconds=RAY_IDLE_TIMEOUT_SECONDS,
            default_actions=[{"type": "forward", "target_group_arn": self.head_target_group.arn}],
            opts=child,
        )

        weight_cache_url = (
            args.weight_cache.url if args.weight_cache is not None else pulumi.Output.from_input("")
        )

        def script(role: str) -> pulumi.Output[str]:
            return pulumi.Output.all(
                self.head_load_balancer.dns_name, weight_cache_url, args.target_group_arn
            ).apply(
                lambda values: vm.bootstrap_script(
                    spec,
                    launch,
                    api_key_secret=identity.api_key_secret,
                    hf_token_secret=identity.hf_token_secret,
                    role=role,
                    ray_env=vm.ray_env(spec, values[0]),
                    health_report=[
                        *machines.health_report(spec),
                        *(machines.drain_args(spec, values[2]) if role == "ray-head" else []),
                    ],
                    weight_cache_url=values[1],
                    log_group=identity.log_group_name,
                    metrics_agent=metrics.agent_args(spec, launch),
                )
            )

        security_groups = [network.instance_security_group.id, group_id]
        self.head_template, self.worker_template = (
            machines.launch_template(
                f"{name}-{role}",
                spec=spec,
                role=role,
                image=args.image,
                script=script(role),
                instance_profile_arn=identity.instance_profile.arn,
                security_group_ids=security_groups,
                public_ip=network.public_ips,
                secret_versions=identity.secret_versions,
                opts=child,
            )
            for role in ("ray-head", "ray-worker")
        )
        grace = launch.probes.startup_seconds
        self.head_group = machines.auto_scaling_group(
            f"{name}-head",
            spec=spec,
            size=1,
            template=self.head_template,
            subnet_ids=[subnet_id],
            target_group_arns=[args.target_group_arn, self.head_target_group.arn],
            grace_seconds=grace,
            keep_serving=False,
            placement_group=self.placement_group.id,
            serving_wait=machines.serving_wait(1, launch) if args.is_canary else None,
            beside_a_canary=args.beside_a_canary,
            opts=child,
        )
        self.worker_group = machines.auto_scaling_group(
            f"{name}-workers",
            spec=spec,
            size=spec.nodes - 1,
            template=self.worker_template,
            subnet_ids=[subnet_id],
            target_group_arns=[],
            grace_seconds=grace,
            keep_serving=False,
            placement_group=self.placement_group.id,
            beside_a_canary=args.beside_a_canary,
            opts=child,
        )
        self.register_outputs({"headAddress": self.head_load_balancer.dns_name, "head": self.head_group.name})
