"""Autoscaling on load (``vllm:maxReplicas``): target tracking on the replicas' Auto Scaling group.

The group's ``min_size`` and ``max_size`` are the bounds (plus the rollout's surge machine, see
``machines.auto_scaling_group``), and its desired capacity is the policy's after the first ``up``. The
policy tracks ``ALBRequestCountPerTarget``: requests the ALB sent the target group per minute, divided by
its healthy targets (PredefinedMetricSpecification; resource label ``<lb arn suffix>/<tg arn suffix>``), at
``vllm:targetQpsPerReplica x 60``. That is SkyServe's replicas = ceil(qps / target) on AWS's own alarms.

How the other keys map (README "Autoscaling"): target tracking creates and owns its CloudWatch alarms
(scale out after 3 one-minute periods over target, in after 15 under it) and lets no delay be set, so
``upscaleDelaySeconds`` and ``downscaleDelaySeconds`` are refused when set (``Feature.UPSCALE_DELAY``,
``DOWNSCALE_DELAY``). The instance warm-up is the replica's load budget: a machine still loading the model
serves nothing, and counting it would dilute the per-target request count and scale in too early.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws.autoscaling as autoscaling
import pulumi_aws.lb as lb

from components.aws.load_balancer import LoadBalancer
from components.launch import LaunchSpec
from components.service_spec import Autoscaling, ServiceSpec

METRIC = "ALBRequestCountPerTarget"
#: ALBRequestCountPerTarget counts requests per target per minute; the target is per second.
SECONDS_PER_MINUTE = 60


def target_requests_per_minute(scaling: Autoscaling) -> float:
    return scaling.target_qps_per_replica * SECONDS_PER_MINUTE


@dataclass(frozen=True, kw_only=True)
class AutoscalerArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    group: autoscaling.Group
    load_balancer: LoadBalancer
    #: The group's target group when not the load balancer's first (a canary revision's own).
    target_group: lb.TargetGroup | None = None


class Autoscaler(pulumi.ComponentResource):
    """The group's size between ``vllm:minReplicas`` and ``vllm:maxReplicas``, owned by target tracking."""

    policy: autoscaling.Policy

    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:aws:Autoscaler", name, None, opts)
        spec = args.spec
        scaling = spec.autoscaling
        if scaling is None:
            raise ValueError(f"stack {spec.stack} does not autoscale")
        balancer = args.load_balancer
        target_group = args.target_group or balancer.target_group
        self.policy = autoscaling.Policy(
            f"{name}-requests-per-replica",
            autoscaling_group_name=args.group.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=args.launch.probes.startup_seconds,
            target_tracking_configuration={
                "predefined_metric_specification": {
                    "predefined_metric_type": METRIC,
                    "resource_label": pulumi.Output.concat(
                        balancer.alb.arn_suffix, "/", target_group.arn_suffix
                    ),
                },
                "target_value": target_requests_per_minute(scaling),
                "disable_scale_in": False,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"policy": self.policy.name})
