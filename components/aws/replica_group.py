"""Single-node replicas: one Auto Scaling group of GPU machines, each running vLLM, in the target group."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_aws.autoscaling as autoscaling
import pulumi_aws.ec2 as ec2

from components import vm
from components.aws import lifecycle, machines, metrics, purchase_options
from components.aws.identity import ServiceIdentity
from components.aws.network import Network
from components.aws.weight_cache import WeightCache
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: This component's type token before it was renamed for what it is: the alias keeps the URNs of
#: existing stacks' resources (this component's and, through it, its children's), so nothing is replaced.
FORMER_TYPE = "vllm:aws:VllmReplica"


@dataclass(frozen=True, kw_only=True)
class ReplicaGroupArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    network: Network
    identity: ServiceIdentity
    image: machines.MachineImage
    target_group_arn: pulumi.Input[str]
    weight_cache: WeightCache | None = None  # the stack's bucket of the model's files (vllm:weightCache)
    #: With vllm:canary: every group is one of two revisions, and the canary's create waits until it serves.
    beside_a_canary: bool = False
    is_canary: bool = False


class ReplicaGroup(pulumi.ComponentResource):
    """``spec.replicas`` identical machines behind the load balancer, kept healthy by their ASG.

    The group spreads over every zone that sells the instance type, replaces a machine that fails EC2's
    checks or reports itself unhealthy (its vLLM not healthy for longer than the load budget, or crash-
    looping; the load balancer only routes), and rolls a changed launch template (vLLM release, rotated
    secret) one surge machine at a time. A new machine counts only once it serves: it waits at launch on
    the group's lifecycle hook until its health agent sees vLLM healthy (components/aws/lifecycle.py).

    Attributes:
        launch_template: the launch template of every machine of the group.
        auto_scaling_group: the ASG of ``spec.replicas`` machines, in the load balancer's target group.
        launch_hook: the launch lifecycle hook the machines' health agent completes once vLLM serves.
    """

    launch_template: ec2.LaunchTemplate
    auto_scaling_group: autoscaling.Group
    launch_hook: autoscaling.LifecycleHook

    def __init__(self, name: str, args: ReplicaGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=FORMER_TYPE)])
        super().__init__("vllm:aws:ReplicaGroup", name, None, pulumi.ResourceOptions.merge(opts, renamed))
        spec, launch, network, identity = args.spec, args.launch, args.network, args.identity
        child = pulumi.ResourceOptions(parent=self)
        weight_cache_url = (
            args.weight_cache.url if args.weight_cache is not None else pulumi.Output.from_input("")
        )
        script = pulumi.Output.all(weight_cache_url, args.target_group_arn).apply(
            lambda values: vm.bootstrap_script(
                spec,
                launch,
                api_key_secret=identity.api_key_secret,
                hf_token_secret=identity.hf_token_secret,
                health_report=[
                    *machines.health_report(spec),
                    *lifecycle.agent_args(launch.probes.startup_seconds),
                    *machines.drain_args(spec, values[1]),
                ],
                weight_cache_url=values[0],
                log_group=identity.log_group_name,
                metrics_agent=metrics.agent_args(spec, launch),
            )
        )
        # A spot group is a mixed instances group: its template launches both markets, so it asks for none.
        self.launch_template = machines.launch_template(
            f"{name}-serve",
            spec=replace(spec, spot=False),
            role="serve",
            image=args.image,
            script=script,
            instance_profile_arn=identity.instance_profile.arn,
            security_group_ids=[network.instance_security_group.id],
            public_ip=network.public_ips,
            secret_versions=identity.secret_versions,
            opts=child,
        )
        self.auto_scaling_group = machines.auto_scaling_group(
            f"{name}-group",
            spec=spec,
            size=spec.replicas,
            template=self.launch_template,
            subnet_ids=network.instance_subnets(spec),
            target_group_arns=[args.target_group_arn],
            grace_seconds=launch.probes.startup_seconds,
            keep_serving=True,
            bounds=(
                (spec.autoscaling.min_replicas, spec.autoscaling.max_replicas)
                if spec.autoscaling is not None
                else None
            ),
            mixed_instances_policy=(
                purchase_options.mixed_instances_policy(spec, self.launch_template) if spec.spot else None
            ),
            serving_wait=machines.serving_wait(spec.replicas, launch) if args.is_canary else None,
            beside_a_canary=args.beside_a_canary,
            opts=child,
        )
        self.launch_hook = autoscaling.LifecycleHook(
            f"{name}-serving",
            name=lifecycle.HOOK_NAME,
            autoscaling_group_name=self.auto_scaling_group.name,
            lifecycle_transition=lifecycle.LAUNCHING,
            default_result=lifecycle.DEFAULT_RESULT,
            heartbeat_timeout=lifecycle.heartbeat_seconds(launch.probes.startup_seconds),
            opts=child,
        )
        self.register_outputs({"group": self.auto_scaling_group.name})
