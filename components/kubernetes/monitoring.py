"""vLLM's metrics on a cluster with the Prometheus Operator (``vllm:prometheusOperator``): a PodMonitor
that scrapes every serving pod's ``/metrics``, and the service dashboard as a Grafana dashboard ConfigMap.

Behind a key because a PodMonitor needs the operator's CRDs (``monitoring.coreos.com/v1``, from
kube-prometheus-stack or the operator's bundle): on a cluster without them the API server refuses it.

A Prometheus scrapes only the PodMonitors its ``podMonitorSelector`` matches. kube-prometheus-stack's
default (``prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues: true`` with no selector) matches
``release: <its Helm release name>`` (prometheus-community/helm-charts, charts/kube-prometheus-stack
values.yaml and templates/prometheus/prometheus.yaml, chart 88.5.3, read 2026-12), so the PodMonitor carries
the labels of ``vllm:prometheusSelector``, by default ``release=kube-prometheus-stack``. The scrape interval
is ours (scrape.py), so the autoscaler's windows are sized on it. With
``vllm:tlsSecretName`` vLLM serves only HTTPS: the PodMonitor scrapes with ``scheme: https``, verifying the
certificate for ``vllm:domain`` (the name the stack's clients verify it for, against the public roots the
Prometheus image trusts), as the scrape goes to the pod's IP.
The ConfigMap carries ``grafana_dashboard: "1"``, the label kube-prometheus-stack's Grafana sidecar loads
dashboards from (its ``sidecar.dashboards.label`` default) in any namespace it is told to search.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core import v1 as core

from components import dashboard
from components.kubernetes import pods, tls
from components.kubernetes.scrape import SCRAPE_INTERVAL_SECONDS
from components.kubernetes.settings import settings
from components.service_spec import ServiceSpec

POD_MONITOR_API_VERSION = "monitoring.coreos.com/v1"
GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"


def metrics_endpoint(spec: ServiceSpec, scrape_seconds: int = SCRAPE_INTERVAL_SECONDS) -> dict[str, Any]:
    """The PodMonitor's endpoint: the serving container's named port, over HTTPS when vLLM serves TLS."""
    endpoint: dict[str, Any] = {"port": pods.PORT_NAME, "path": "/metrics", "interval": f"{scrape_seconds}s"}
    if tls.serves_tls(spec):
        endpoint |= {"scheme": "https", "tlsConfig": {"serverName": spec.domain}}
    return endpoint


def dashboard_uid(spec: ServiceSpec) -> str:
    """A Grafana dashboard uid (at most 40 characters) that is the stack's own on a shared Grafana."""
    return f"vllm-{hashlib.sha256(spec.name.encode()).hexdigest()[:16]}"


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    spec: ServiceSpec
    namespace: pulumi.Input[str]


class Monitoring(pulumi.ComponentResource):
    """The stack's PodMonitors (one per revision) and Grafana dashboard, in its namespace."""

    pod_monitors: list[CustomResource]  # one per revision slot
    dashboard: core.ConfigMap

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:kubernetes:Monitoring", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        # Only serving containers (single-node pods, Ray leaders) name the vLLM port: workers serve nothing.
        # With vllm:canary each revision's pods carry their slot's instance label: a PodMonitor per slot.
        self.pod_monitors = [
            CustomResource(
                f"{name}{revision.revision_suffix}-pod-monitor",
                api_version=POD_MONITOR_API_VERSION,
                kind="PodMonitor",
                metadata={
                    "namespace": args.namespace,
                    "labels": {
                        **dict(settings(spec).prometheus_selector),
                        **pods.slot_labels(revision, "metrics"),
                    },
                },
                spec={
                    "selector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": pods.APP,
                            "app.kubernetes.io/instance": pods.slot_name(revision),
                        }
                    },
                    "podMetricsEndpoints": [metrics_endpoint(revision)],
                },
                opts=child,
            )
            for revision in sorted(spec.revisions, key=lambda revision: revision.revision)
        ]
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
