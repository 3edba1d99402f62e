"""vLLM's metrics on a cluster with the Prometheus Operator (``vllm:prometheusOperator``): a PodMonitor
that scrapes every serving pod's ``/metrics``, and the service dashboard as a Grafana dashboard ConfigMap.

Behind a key because a PodMonitor needs the operator's CRDs (``monitoring.coreos.com/v1``, from
kube-prometheus-stack or the operator's bundle): on a cluster without them the API server refuses it.
The ConfigMap carries ``grafana_dashboard: "1"``, the label kube-prometheus-stack's Grafana sidecar loads
dashboards from (its ``sidecar.dashboards.label`` default) in any namespace it is told to search.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core import v1 as core

from components import dashboard
from components.kubernetes import pods
from components.service_spec import ServiceSpec

POD_MONITOR_API_VERSION = "monitoring.coreos.com/v1"
GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"
SCRAPE_INTERVAL = "30s"


def dashboard_uid(spec: ServiceSpec) -> str:
    """A Grafana dashboard uid (at most 40 characters) that is the stack's own on a shared Grafana."""
    return f"vllm-{hashlib.sha256(spec.name.encode()).hexdigest()[:16]}"


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    spec: ServiceSpec
    namespace: pulumi.Input[str]


class Monitoring(pulumi.ComponentResource):
    """The stack's PodMonitor and Grafana dashboard, in its namespace."""

    pod_monitor: CustomResource
    dashboard: core.ConfigMap

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:kubernetes:Monitoring", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        # Only serving containers (single-node pods, Ray leaders) name the vLLM port: workers serve nothing.
        self.pod_monitor = CustomResource(
            f"{name}-pod-monitor",
            api_version=POD_MONITOR_API_VERSION,
            kind="PodMonitor",
            metadata={"namespace": args.namespace, "labels": pods.labels(spec, "metrics")},
            spec={
                "selector": {
                    "matchLabels": {
                        "app.kubernetes.io/name": pods.APP,
                        "app.kubernetes.io/instance": spec.name,
                    }
                },
                "podMetricsEndpoints": [
                    {"port": pods.PORT_NAME, "path": "/metrics", "interval": SCRAPE_INTERVAL}
                ],
            },
            opts=child,
        )
        board = pulumi.Output.from_input(args.namespace).apply(
            lambda namespace: dashboard.grafana_dashboard(
                f"vLLM {spec.stack}", dashboard_uid(spec), f'{{namespace="{namespace}"}}'
            )
        )
        self.dashboard = core.ConfigMap(
            f"{name}-dashboard",
            metadata={
                "namespace": args.namespace,
                "labels": {**pods.labels(spec, "dashboard"), GRAFANA_DASHBOARD_LABEL: "1"},
            },
            data={f"{spec.name}.json": board},
            opts=child,
        )
        self.register_outputs({"dashboard": self.dashboard.metadata.name})
