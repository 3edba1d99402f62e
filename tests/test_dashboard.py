"""The dashboards chart metrics the pinned vLLM really exports, with the panels the operator needs."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from components import dashboard

SERIES = re.compile(r"vllm:[a-z0-9_]+")


def referenced(text: str) -> set[str]:
    return set(SERIES.findall(text))


def grafana_queries() -> list[str]:
    board = json.loads(dashboard.grafana_dashboard("vLLM", "vllm-test", '{namespace="ns"}'))
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def cloud_monitoring_queries() -> list[str]:
    board = json.loads(dashboard.cloud_monitoring_dashboard("vLLM"))
    return [
        data_set["timeSeriesQuery"]["prometheusQuery"]
        for tile in board["mosaicLayout"]["tiles"]
        for data_set in tile["widget"]["xyChart"]["dataSets"]
    ]


@pytest.mark.parametrize("queries", [grafana_queries, cloud_monitoring_queries])
def test_every_query_uses_only_series_vllm_exports(queries):
    used = set().union(*(referenced(query) for query in queries()))
    assert used and used <= dashboard.exported_series()


def test_the_panels_are_request_rate_ttft_tokens_queue_kv_cache_and_replicas():
    text = json.dumps([panel.queries for panel in dashboard.panels()])
    for needed in (
        "vllm:request_success_total",
        "histogram_quantile(0.5, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket",
        "vllm:generation_tokens_total",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "count(vllm:num_requests_running",
        "sum by (instance) (rate(vllm:prefix_cache_hits_total",
        "sum by (instance) (rate(vllm:prefix_cache_queries_total",
    ):
        assert needed in text


def test_the_selector_narrows_every_series_to_the_stack():
    for query in grafana_queries():
        assert all(f'{name}{{namespace="ns"}}' in query for name in referenced(query))


def test_cloud_monitoring_tiles_fit_its_48_column_grid():
    tiles = json.loads(dashboard.cloud_monitoring_dashboard("vLLM"))["mosaicLayout"]["tiles"]
    assert all(tile["xPos"] + tile["width"] <= 48 for tile in tiles)


def vllm_loggers_source() -> str | None:
    """vllm/v1/metrics/loggers.py of an installed vLLM, when this machine has one."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "v1" / "metrics" / "loggers.py"
    return path.read_text() if path.exists() else None


def test_the_recorded_metric_names_are_those_of_the_installed_vllm():
    source = vllm_loggers_source()
    if source is None:
        pytest.skip(
            "no vLLM installed here; the names are recorded from v0.33.0's vllm/v1/metrics/loggers.py"
        )
    declared = dict(
        (name, kind)
        for kind, name in re.findall(
            r'self\._(gauge|counter|histogram)_cls\(\s*name="(vllm:[a-z0-9_]+)"', source
        )
    )
    assert {name: "gauge" for name in dashboard.VLLM_GAUGES}.items() <= declared.items()
    assert {name: "counter" for name in dashboard.VLLM_COUNTERS}.items() <= declared.items()
    assert {name: "histogram" for name in dashboard.VLLM_HISTOGRAMS}.items() <= declared.items()


def test_the_prefix_cache_hit_rate_draws_a_line_per_replica():
    board = json.loads(dashboard.grafana_dashboard("vLLM", "vllm-test"))
    (panel,) = [p for p in board["panels"] if p["title"].startswith("Prefix-cache hit rate")]
    (target,) = panel["targets"]
    assert target["legendFormat"] == "{{instance}}" and target["expr"].count("sum by (instance)") == 2
    tiles = json.loads(dashboard.cloud_monitoring_dashboard("vLLM"))["mosaicLayout"]["tiles"]
    (tile,) = [t for t in tiles if t["widget"]["title"].startswith("Prefix-cache hit rate")]
    # Cloud Monitoring names each line by its labels when no legend template is given.
    assert "legendTemplate" not in tile["widget"]["xyChart"]["dataSets"][0]
