"""Single-node replicas: one Auto Scaling group of GPU machines, each running vLLM, in the target group."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws.autoscaling as autoscaling
import pulumi_aws.ec2 as ec2

from components import vm
from components.aws import machines
from components.aws.identity import ServiceIdentity
from components.aws.network import Network
from components.launch import LaunchSpec
from components.spec import ServiceSpec


@dataclass
class VllmReplicaArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    network: Network
    identity: ServiceIdentity
    image: machines.MachineImage
    target_group_arn: pulumi.Input[str]
    provider: pulumi.ProviderResource


class VllmReplica(pulumi.ComponentResource):
    """``spec.replicas`` identical machines behind the load balancer, kept healthy by their ASG.

    The group spreads over every zone that sells the instance type, replaces a machine that fails EC2's
    checks or reports itself unhealthy (its vLLM not healthy for longer than the load budget, or crash-
    looping; the load balancer only routes), and rolls a changed launch template (vLLM release, rotated
    secret) one surge machine at a time.
    """

    launch_template: ec2.LaunchTemplate
    group: autoscaling.Group

    def __init__(self, name: str, args: VllmReplicaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:aws:VllmReplica", name, None, opts)
        spec, launch, network, identity = args.spec, args.launch, args.network, args.identity
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        script = vm.bootstrap_script(
            spec,
            launch,
            api_key_secret=identity.api_key_secret,
            hf_token_secret=identity.hf_token_secret,
            log_group=identity.log_group_name,
        )
        self.launch_template = machines.launch_template(
            f"{name}-serve",
            spec=spec,
            role="serve",
            image=args.image,
            script=script,
            instance_profile_arn=identity.instance_profile.arn,
            security_group_ids=[network.instance_security_group.id],
            public_ip=network.public_ips,
            secret_versions=identity.secret_versions,
            opts=child,
        )
        self.group = machines.auto_scaling_group(
            f"{name}-group",
            spec=spec,
            size=spec.replicas,
            template=self.launch_template,
            subnet_ids=network.instance_subnet_ids,
            target_group_arns=[args.target_group_arn],
            grace_seconds=launch.probes.startup_seconds,
            keep_serving=True,
            opts=child,
        )
        self.register_outputs({"group": self.group.name})
