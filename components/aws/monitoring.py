"""The service dashboard in CloudWatch: vLLM's own metrics, which each serving machine's metrics agent
publishes into the stack's namespace (metrics.py, scripts/metrics_agent.py), beside what the load balancer
measures: requests, 5xx responses and the target group's healthy replicas.

Why not the CloudWatch agent, as on GCP the Ops Agent: its Prometheus support drops histograms ("Prometheus
metric type conversion by the CloudWatch agent", Amazon CloudWatch user guide) and its EMF exporter keeps
only min, max, sum and count of one, from which CloudWatch computes no percentiles; time to first token is
a histogram. CloudWatch's OTLP ingestion with PromQL queries would keep it, but is in public preview and
not charted by dashboards. The agent here is Python's standard library and the DLAMI's AWS CLI: nothing is
installed at boot, and it sends each histogram's per-minute bucket counts as PutMetricData ``Values`` and
``Counts``, from which CloudWatch computes p50/p95 itself, at the buckets' resolution (each bucket's
observations at its upper bound).

Every replica writes the same dimensionless metrics once a minute, on the minute: per period, ``Sum`` is the
service's total and ``SampleCount`` of a gauge the replicas that answered; ``60 * m / PERIOD(m)`` keeps the
per-minute meaning when CloudWatch widens the period for long time ranges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws.cloudwatch as cloudwatch

from components import vm
from components.aws import metrics
from components.aws.load_balancer import LoadBalancer
from components.scripts import metrics_agent
from components.service_spec import ServiceSpec

ELB = "AWS/ApplicationELB"
#: The agent's interval: each replica writes one data point per metric per period.
PERIOD_SECONDS = metrics.INTERVAL_SECONDS


def dashboard_body(region: str, namespace: str, load_balancer: str, target_group: str) -> str:
    """CloudWatch dashboard JSON (widgets on its 24-column grid): vLLM's metrics in ``namespace``, and
    the ALB and target group whose ARN suffixes (``app/<name>/<id>``, ``targetgroup/<name>/<id>``) are
    the load balancer metrics' dimensions."""
    lb = ["LoadBalancer", load_balancer]
    tg = ["TargetGroup", target_group, *lb]

    def hidden(metric: metrics_agent.Metric, metric_id: str, stat: str) -> list[Any]:
        return [namespace, metric.name, {"id": metric_id, "stat": stat, "visible": False}]

    def expression(text: str, label: str, expression_id: str) -> list[Any]:
        return [{"expression": text, "label": label, "id": expression_id}]

    def per_second(metric_id: str) -> str:
        return f"{metric_id}/PERIOD({metric_id})"

    def per_sample(metric_id: str) -> str:
        return f"{PERIOD_SECONDS}*{metric_id}/PERIOD({metric_id})"

    def widget(index: int, title: str, metric_rows: list, stat: str) -> dict:
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
                "metrics": metric_rows,
            },
        }

    ttft = metrics_agent.TIME_TO_FIRST_TOKEN
    per_replica = (
        f'{{"{namespace}",{metrics_agent.INSTANCE_DIMENSION}}} '
        f'MetricName="{metrics_agent.PREFIX_CACHE_HIT_RATE}"'
    )
    widgets = [
        widget(
            0,
            "Requests per second",
            [
                expression(per_second("m1"), "finished (vLLM)", "e1"),
                expression(per_second("m2"), "received (load balancer)", "e2"),
                hidden(metrics_agent.REQUESTS_FINISHED, "m1", "Sum"),
                [ELB, "RequestCount", *lb, {"id": "m2", "stat": "Sum", "visible": False}],
            ],
            "Sum",
        ),
        widget(
            1,
            "Time to first token",
            [
                [namespace, ttft.name, {"stat": "p50", "label": "p50"}],
                [namespace, ttft.name, {"stat": "p95", "label": "p95"}],
            ],
            "p50",
        ),
        widget(
            2,
            "Tokens per second",
            [
                expression(per_second("m1"), "generated", "e1"),
                expression(per_second("m2"), "prompt", "e2"),
                hidden(metrics_agent.GENERATION_TOKENS, "m1", "Sum"),
                hidden(metrics_agent.PROMPT_TOKENS, "m2", "Sum"),
            ],
            "Sum",
        ),
        widget(
            3,
            "Requests waiting and running (all replicas)",
            [
                expression(per_sample("m1"), "waiting", "e1"),
                expression(per_sample("m2"), "running", "e2"),
                hidden(metrics_agent.REQUESTS_WAITING, "m1", "Sum"),
                hidden(metrics_agent.REQUESTS_RUNNING, "m2", "Sum"),
            ],
            "Sum",
        ),
        widget(
            4,
            "KV-cache usage, % (busiest replica)",
            [
                expression("100*m1", "busiest replica", "e1"),
                hidden(metrics_agent.KV_CACHE_USAGE, "m1", "Maximum"),
            ],
            "Maximum",
        ),
        widget(
            5,
            "Healthy replicas",
            [
                [ELB, "HealthyHostCount", *tg, {"stat": "Minimum", "label": "healthy (target group)"}],
                expression(per_sample("m1"), "serving vLLM metrics", "e1"),
                hidden(metrics_agent.REQUESTS_RUNNING, "m1", "SampleCount"),
            ],
            "Minimum",
        ),
        widget(
            6,
            "5xx responses per minute",
            [[ELB, "HTTPCode_Target_5XX_Count", *lb], [ELB, "HTTPCode_ELB_5XX_Count", *lb]],
            "Sum",
        ),
        # A line per replica (its instance's PrefixCacheHitRate, found by SEARCH: replicas come and go), and
        # the service's from the dimensionless counters. Both weigh each minute by its queries.
        widget(
            7,
            "Prefix-cache hit rate, % (per replica, all replicas)",
            [
                expression(f"SEARCH('{per_replica}', 'Average', {PERIOD_SECONDS})", "replica", "e1"),
                expression("100*m2/m1", "all replicas", "e2"),
                hidden(metrics_agent.PREFIX_CACHE_QUERIES, "m1", "Sum"),
                hidden(metrics_agent.PREFIX_CACHE_HITS, "m2", "Sum"),
            ],
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
            lambda suffixes: dashboard_body(
                vm.vm_region(spec), metrics.namespace(spec), suffixes[0], suffixes[1]
            )
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
