"""The service dashboard in CloudWatch, from what AWS measures without an agent: the load balancer's
requests, errors and response times, and the target group's healthy replicas.

vLLM's own metrics (queue depth, KV-cache usage, tokens per second, time to first token) are not on it:
the CloudWatch agent's Prometheus support drops histogram metrics ("Prometheus metric type conversion by
the CloudWatch agent", Amazon CloudWatch user guide), and time to first token is one. Charting them needs
a Prometheus-compatible store (Amazon Managed Service for Prometheus with an ADOT collector), not built here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws.cloudwatch as cloudwatch

from components import vm
from components.aws.load_balancer import LoadBalancer
from components.spec import ServiceSpec

ELB = "AWS/ApplicationELB"
PERIOD_SECONDS = 60


def dashboard_body(region: str, load_balancer: str, target_group: str) -> str:
    """CloudWatch dashboard JSON (widgets on its 24-column grid) for the ALB and target group whose ARN
    suffixes (``app/<name>/<id>``, ``targetgroup/<name>/<id>``) are the metrics' dimensions."""
    lb = ["LoadBalancer", load_balancer]
    tg = ["TargetGroup", target_group, *lb]

    def widget(index: int, title: str, metrics: list, stat: str, **extra: object) -> dict:
        return {
            "type": "metric",
            "x": (index % 2) * 12,
            "y": (index // 2) * 6,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "view": "timeSeries",
                "stat": stat,
                "period": PERIOD_SECONDS,
                "metrics": metrics,
                **extra,
            },
        }

    widgets = [
        widget(0, "Requests per minute", [[ELB, "RequestCount", *lb]], "Sum"),
        widget(1, "Healthy replicas (target group)", [[ELB, "HealthyHostCount", *tg]], "Minimum"),
        widget(
            2,
            "Target response time p50/p95 (streams: until the first byte)",
            [
                [ELB, "TargetResponseTime", *lb, {"stat": "p50"}],
                [ELB, "TargetResponseTime", *lb, {"stat": "p95"}],
            ],
            "p50",
        ),
        widget(
            3,
            "5xx responses per minute",
            [[ELB, "HTTPCode_Target_5XX_Count", *lb], [ELB, "HTTPCode_ELB_5XX_Count", *lb]],
            "Sum",
        ),
    ]
    return json.dumps({"widgets": widgets}, sort_keys=True)


@dataclass(frozen=True, kw_only=True)
class ServiceDashboardArgs:
    spec: ServiceSpec
    load_balancer: LoadBalancer


class ServiceDashboard(pulumi.ComponentResource):
    """A CloudWatch dashboard named after the service (names: up to 255 of ``[A-Za-z0-9_-]``)."""

    dashboard: cloudwatch.Dashboard
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceDashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:aws:ServiceDashboard", name, None, opts)
        spec, balancer = args.spec, args.load_balancer
        body = pulumi.Output.all(balancer.alb.arn_suffix, balancer.target_group.arn_suffix).apply(
            lambda suffixes: dashboard_body(vm.vm_region(spec), suffixes[0], suffixes[1])
        )
        self.dashboard = cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=spec.name,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = pulumi.Output.concat(
            f"https://{spec.region}.console.aws.amazon.com/cloudwatch/home?region={spec.region}",
            "#dashboards/dashboard/",
            self.dashboard.dashboard_name,
        )
        self.register_outputs({"dashboardUrl": self.url})
