"""The service dashboard every platform draws: the same panels over vLLM's own Prometheus metrics.

vLLM serves them on ``/metrics`` (private: the load balancers route only ``/v1/*`` and ``/health``). Each
platform collects them its way and renders these panels in its dashboard format (GCP: a Cloud Monitoring
dashboard of PromQL queries; Kubernetes: a Grafana dashboard ConfigMap). Pure data: no Pulumi, no SDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Metric names vLLM v0.33.0 exports (vllm/v1/metrics/loggers.py, PrometheusStatLogger; prometheus_client
#: adds ``_total`` to counters and ``_bucket``/``_sum``/``_count`` to histograms). Every series carries the
#: labels ``model_name`` and ``engine``. Renamed metrics are a common trap: ``vllm:gpu_cache_usage_perc``
#: became ``vllm:kv_cache_usage_perc`` (0.10), ``vllm:time_per_output_token_seconds`` became
#: ``vllm:inter_token_latency_seconds``; the old names are gone in 0.33.
VLLM_GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
VLLM_COUNTERS = (
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:request_success",
    "vllm:num_preemptions",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
)
VLLM_HISTOGRAMS = (
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
)


def exported_series() -> frozenset[str]:
    """Every series name a query may use, as Prometheus stores them."""
    return frozenset(
        (
            *VLLM_GAUGES,
            *(f"{name}_total" for name in VLLM_COUNTERS),
            *(f"{name}_{suffix}" for name in VLLM_HISTOGRAMS for suffix in ("bucket", "sum", "count")),
        )
    )


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # Grafana's unit ids: reqps, s, percentunit, short
    queries: tuple[tuple[str, str], ...]  # (legend, PromQL over the whole service)


def _quantile(q: float, histogram: str, selector: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{selector}[5m])))"


def panels(selector: str = "") -> tuple[Panel, ...]:
    """The issue's panels: request rate, time to first token p50/p95, tokens per second, queue depth,
    KV-cache usage, the replicas serving, and each replica's prefix-cache hit rate. ``selector``: a PromQL
    label matcher (``{namespace="x"}``) narrowing every series to the stack's replicas, where one
    Prometheus sees several stacks."""
    s = selector
    ttft = "vllm:time_to_first_token_seconds"
    return (
        Panel(
            "Requests per second", "reqps", (("finished", f"sum(rate(vllm:request_success_total{s}[5m]))"),)
        ),
        Panel(
            "Time to first token", "s", (("p50", _quantile(0.5, ttft, s)), ("p95", _quantile(0.95, ttft, s)))
        ),
        Panel(
            "Tokens per second",
            "short",
            (
                ("generated", f"sum(rate(vllm:generation_tokens_total{s}[5m]))"),
                ("prompt", f"sum(rate(vllm:prompt_tokens_total{s}[5m]))"),
            ),
        ),
        Panel(
            "Requests waiting and running",
            "short",
            (
                ("waiting", f"sum(vllm:num_requests_waiting{s})"),
                ("running", f"sum(vllm:num_requests_running{s})"),
            ),
        ),
        Panel(
            "KV-cache usage (busiest replica)", "percentunit", (("max", f"max(vllm:kv_cache_usage_perc{s})"),)
        ),
        # A replica's API server answers /metrics only once its model is loaded, as /health does.
        Panel("Replicas serving", "short", (("replicas", f"count(vllm:num_requests_running{s})"),)),
        Panel(
            "Prefix-cache hit rate (per replica)",
            "percentunit",
            ((REPLICA_LEGEND, prefix_cache_hit_rate(s)),),
        ),
    )


#: The label that tells replicas apart: Prometheus sets ``instance`` (the scraped target's host:port) on
#: every series it scrapes, as Managed Service for Prometheus keeps it for the Ops Agent's (GCP).
REPLICA_LABEL = "instance"
#: A legend naming each replica's line by that label (Grafana's ``{{label}}`` template).
REPLICA_LEGEND = "{{" + REPLICA_LABEL + "}}"


def prefix_cache_hit_rate(selector: str = "") -> str:
    """Each replica's share of prompt tokens its prefix cache already held, over 5 minutes. vLLM counts
    both in tokens: ``vllm:prefix_cache_queries`` the prompt tokens looked up, ``vllm:prefix_cache_hits``
    those found cached (vllm/v1/metrics/loggers.py, v0.33.0). What routing by prefix raises: a
    conversation's next turn on the replica that served the last one hits its whole history."""

    def per_replica(counter: str) -> str:
        return f"sum by ({REPLICA_LABEL}) (rate({counter}_total{selector}[5m]))"

    return f"{per_replica('vllm:prefix_cache_hits')} / {per_replica('vllm:prefix_cache_queries')}"


def grafana_dashboard(title: str, uid: str, selector: str = "") -> str:
    """A Grafana dashboard (schemaVersion 39) of ``panels`` on the default Prometheus data source."""
    width, height = 12, 8
    grafana_panels: list[dict[str, Any]] = [
        {
            "id": index + 1,
            "type": "timeseries",
            "title": panel.title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": (index % 2) * width, "y": (index // 2) * height, "w": width, "h": height},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "targets": [
                {"refId": chr(ord("A") + at), "expr": expr, "legendFormat": legend}
                for at, (legend, expr) in enumerate(panel.queries)
            ],
        }
        for index, panel in enumerate(panels(selector))
    ]
    return json.dumps(
        {
            "uid": uid,
            "title": title,
            "schemaVersion": 39,
            "time": {"from": "now-6h", "to": "now"},
            "refresh": "30s",
            "templating": {
                "list": [
                    {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}
                ]
            },
            "panels": grafana_panels,
        },
        indent=2,
        sort_keys=True,
    )


def cloud_monitoring_dashboard(title: str, selector: str = "") -> str:
    """A Cloud Monitoring dashboard (mosaic layout, 48 columns) of ``panels`` as PromQL queries, over
    what the Ops Agent's Prometheus receiver writes (Managed Service for Prometheus: the original names)."""
    width, height = 24, 16
    tiles = [
        {
            "xPos": (index % 2) * width,
            "yPos": (index // 2) * height,
            "width": width,
            "height": height,
            "widget": {
                "title": panel.title,
                "xyChart": {
                    "dataSets": [
                        {
                            "timeSeriesQuery": {"prometheusQuery": expr},
                            "plotType": "LINE",
                            # A per-replica line is named by its labels, which Cloud Monitoring shows
                            # when no template is set.
                            **({} if legend == REPLICA_LEGEND else {"legendTemplate": legend}),
                        }
                        for legend, expr in panel.queries
                    ],
                },
            },
        }
        for index, panel in enumerate(panels(selector))
    ]
    return json.dumps(
        {"displayName": title, "mosaicLayout": {"columns": 48, "tiles": tiles}}, indent=2, sort_keys=True
    )
