"""Autoscaling on load (``vllm:maxReplicas``): target tracking on the replicas' Auto Scaling group.

The group's ``min_size`` and ``max_size`` are the bounds (plus the rollout's surge machine, see
``machines.auto_scaling_group``), and its desired capacity is the policies' after the first ``up``. One
target tracking policy per target the stack sets:

- ``vllm:targetQpsPerReplica``: ``ALBRequestCountPerTarget``, requests the ALB sent the target group per
  minute, divided by its healthy targets (PredefinedMetricSpecification; resource label
  ``<lb arn suffix>/<tg arn suffix>``), at the target x 60. That is SkyServe's replicas = ceil(qps / target)
  on AWS's own alarms.
- ``vllm:targetQueuePerReplica``: the requests a machine holds, running plus waiting, from the metrics agent
  (scripts/metrics_agent.py) that every serving machine runs: each minute it writes ``RequestsRunning`` and
  ``RequestsWaiting`` (vLLM's gauges summed over its engines) without a dimension into the stack's own
  namespace ``vLLM/<stack>`` (metrics.py), stamped on the minute. The namespace is the stack's and an
  autoscaled stack has one group (deployment.py), so the namespace is the group; the ``Average`` statistic
  over a minute is the mean over the machines that reported, i.e. per machine (a machine still loading
  reports nothing), and metric math adds the two (TargetTrackingMetricDataQuery, EC2 Auto Scaling API
  reference: "Any expressions used in a metric specification must eventually return a single time
  series"; an ``Id`` starts with a lowercase letter; read 2026-12).

With both, target tracking scales out when either policy asks and in only when both allow it (EC2 Auto
Scaling user guide, "Target tracking scaling policies": multiple policies).

How the other keys map (docs/autoscaling.md): target tracking creates and owns its CloudWatch alarms
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

from components.aws import metrics
from components.aws.load_balancer import LoadBalancer
from components.launch import LaunchSpec
from components.scripts import metrics_agent
from components.service_spec import ServiceSpec

METRIC = "ALBRequestCountPerTarget"
#: ALBRequestCountPerTarget counts requests per target per minute; the target is per second.
SECONDS_PER_MINUTE = 60


def target_requests_per_minute(target_qps: float) -> float:
    return target_qps * SECONDS_PER_MINUTE


def queue_metric(
    spec: ServiceSpec,
) -> autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgsDict:
    """Requests running plus waiting per machine, per minute (the agent's interval), by metric math."""

    def average(
        metric_id: str, metric: metrics_agent.Metric
    ) -> autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricArgsDict:
        return {
            "id": metric_id,
            "metric_stat": {
                "metric": {"metric_name": metric.name, "namespace": metrics.namespace(spec)},
                "stat": "Average",  # over target tracking's one-minute period, the agent's interval
            },
            "return_data": False,
        }

    return {
        "metrics": [
            average("running", metrics_agent.REQUESTS_RUNNING),
            average("waiting", metrics_agent.REQUESTS_WAITING),
            {
                "id": "held",
                "expression": "running + waiting",
                "label": "RequestsHeldPerMachine",
                "return_data": True,
            },
        ]
    }


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

    policies: list[autoscaling.Policy]

    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:aws:Autoscaler", name, None, opts)
        spec = args.spec
        scaling = spec.autoscaling
        if scaling is None:
            raise ValueError(f"stack {spec.stack} does not autoscale")
        balancer = args.load_balancer
        target_group = args.target_group or balancer.target_group
        child = pulumi.ResourceOptions(parent=self)

        def tracking(
            signal: str, configuration: autoscaling.PolicyTargetTrackingConfigurationArgsDict
        ) -> autoscaling.Policy:
            """A target-tracking policy of the group on one signal (the group scales out when any asks)."""
            return autoscaling.Policy(
                f"{name}-{signal}-per-replica",
                autoscaling_group_name=args.group.name,
                policy_type="TargetTrackingScaling",
                estimated_instance_warmup=args.launch.probes.startup_seconds,
                target_tracking_configuration=configuration,
                opts=child,
            )

        self.policies = []
        if scaling.target_qps_per_replica is not None:
            resource_label = pulumi.Output.concat(balancer.alb.arn_suffix, "/", target_group.arn_suffix)
            requests: autoscaling.PolicyTargetTrackingConfigurationArgsDict = {
                "predefined_metric_specification": {
                    "predefined_metric_type": METRIC,
                    "resource_label": resource_label,
                },
                "target_value": target_requests_per_minute(scaling.target_qps_per_replica),
                "disable_scale_in": False,
            }
            self.policies.append(tracking("requests", requests))
        if scaling.target_queue_per_replica is not None:
            queue: autoscaling.PolicyTargetTrackingConfigurationArgsDict = {
                "customized_metric_specification": queue_metric(spec),
                "target_value": scaling.target_queue_per_replica,
                "disable_scale_in": False,
            }
            self.policies.append(tracking("queue", queue))
        self.register_outputs({"policies": [policy.name for policy in self.policies]})
