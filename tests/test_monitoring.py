"""Metrics and dashboards: Kubernetes' PodMonitor and Grafana dashboard behind vllm:prometheusOperator."""

from __future__ import annotations

import json
import re

import pytest

from components import dashboard
from components.kubernetes.monitoring import GRAFANA_DASHBOARD_LABEL, dashboard_uid
from components.spec import SpecError, build_spec
from tests.harness import Run, run_program
from tests.test_kubernetes import manifest, validate

POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


@pytest.fixture(scope="module")
def monitored() -> Run:
    return run_program("k8s-l4", config={"vllm:prometheusOperator": "true"})


def grafana_board(run: Run) -> tuple[dict, dict]:
    (config_map,) = [
        r for r in run.of_type(CONFIG_MAP) if GRAFANA_DASHBOARD_LABEL in r.inputs["metadata"]["labels"]
    ]
    body = manifest(config_map)
    (text,) = body["data"].values()
    return body, json.loads(text)


def test_without_the_key_no_prometheus_operator_object_is_declared():
    run = run_program("k8s-l4")
    assert not run.of_type(POD_MONITOR)
    assert not [
        r for r in run.of_type(CONFIG_MAP) if GRAFANA_DASHBOARD_LABEL in r.inputs["metadata"]["labels"]
    ]


def test_a_pod_monitor_scrapes_the_serving_pods_metrics_port(monitored):
    (monitor,) = monitored.of_type(POD_MONITOR)
    spec = monitor.inputs["spec"]
    assert monitor.inputs["metadata"]["namespace"] == "vllm-k8s-l4"
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": "vllm-k8s-l4",
    }
    assert spec["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    (deployment,) = monitored.of_type("kubernetes:apps/v1:Deployment")
    pod_labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert [port["name"] for port in ports] == ["http"]


def test_the_pod_monitor_carries_the_label_kube_prometheus_stacks_prometheus_selects(monitored):
    # kube-prometheus-stack's Prometheus selects PodMonitors labelled release: <its Helm release name> by
    # default (podMonitorSelectorNilUsesHelmValues: true; charts/kube-prometheus-stack, chart 88.5.3).
    labels = monitored.one(POD_MONITOR).inputs["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack"


def test_the_pod_monitor_carries_the_labels_of_prometheus_selector():
    run = run_program(
        "k8s-l4",
        config={"vllm:prometheusOperator": "true", "vllm:prometheusSelector": "release=monitoring, team=llm"},
    )
    labels = run.one(POD_MONITOR).inputs["metadata"]["labels"]
    assert (labels["release"], labels["team"]) == ("monitoring", "llm")
    assert labels["app.kubernetes.io/instance"] == "vllm-k8s-l4"  # ours are kept beside them


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"vllm:prometheusSelector": "release=x"}, "set with vllm:prometheusOperator true"),
        ({"vllm:prometheusOperator": "true", "vllm:prometheusSelector": "release"}, "key=value"),
        ({"vllm:prometheusOperator": "true", "vllm:prometheusSelector": "release=a b"}, "key=value"),
        ({"vllm:prometheusOperator": "true", "vllm:prometheusSelector": "=x"}, "key=value"),
        (
            {"vllm:prometheusOperator": "true", "vllm:prometheusSelector": "app.kubernetes.io/name=x"},
            "none under app.kubernetes.io/",
        ),
        ({"vllm:prometheusOperator": "true", "vllm:prometheusSelector": "release=a,release=b"}, "distinct"),
    ],
)
def test_a_bad_prometheus_selector_is_refused_naming_the_key(config, says):
    with pytest.raises(SpecError) as refused:
        build_spec("k8s-l4", config)
    assert refused.value.key == "vllm:prometheusSelector" and says in refused.value.valid


def test_with_vllm_serving_tls_the_pod_monitor_scrapes_https_verifying_the_domain():
    run = run_program(
        "k8s-l4",
        config={
            "vllm:prometheusOperator": "true",
            "vllm:domain": "llm.example.com",
            "vllm:tlsSecretName": "llm-tls",
        },
    )
    (endpoint,) = run.one(POD_MONITOR).inputs["spec"]["podMetricsEndpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"serverName": "llm.example.com"}


def test_the_grafana_dashboard_configmap_is_valid_and_labelled_for_grafanas_sidecar(monitored):
    body, board = grafana_board(monitored)
    validate(body)
    assert body["metadata"]["labels"][GRAFANA_DASHBOARD_LABEL] == "1"
    assert board["uid"] == dashboard_uid(build_spec("k8s-l4", {}))
    assert len(board["uid"]) <= 40  # Grafana's limit on a dashboard uid
    assert list(body["data"]) == ["vllm-k8s-l4.json"]


def test_the_dashboard_charts_only_this_namespaces_series_of_metrics_vllm_exports(monitored):
    _, board = grafana_board(monitored)
    queries = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    assert len(board["panels"]) == len(dashboard.panels())
    for query in queries:
        names = set(re.findall(r"vllm:[a-z0-9_]+", query))
        assert names and names <= dashboard.exported_series()
        assert all(f'{name}{{namespace="vllm-k8s-l4"}}' in query for name in names)


def test_monitoring_objects_use_the_stacks_explicit_provider(monitored):
    provider = monitored.one(POD_MONITOR).provider
    assert provider and "pulumi:providers:kubernetes" in provider
    assert all(r.provider == provider for r in monitored.of_type(CONFIG_MAP) if r.name.endswith("-dashboard"))


def test_no_dashboard_url_on_kubernetes(monitored):
    assert "dashboardUrl" not in monitored.outputs


@pytest.fixture(scope="module")
def gcp() -> Run:
    return run_program("gcp-h100", secrets={"vllm:hfToken": "hf_testtoken123"})


def test_gcp_has_a_cloud_monitoring_dashboard_of_this_stacks_job(gcp):
    (resource,) = gcp.of_type("gcp:monitoring/dashboard:Dashboard")
    board = json.loads(resource.inputs["dashboardJson"])
    queries = [
        data_set["timeSeriesQuery"]["prometheusQuery"]
        for tile in board["mosaicLayout"]["tiles"]
        for data_set in tile["widget"]["xyChart"]["dataSets"]
    ]
    assert len(board["mosaicLayout"]["tiles"]) == len(dashboard.panels())
    for query in queries:
        names = set(re.findall(r"vllm:[a-z0-9_]+", query))
        assert names and names <= dashboard.exported_series()
        assert all(f'{name}{{job="vllm-gcp-h100"}}' in query for name in names)  # the VMs' scrape job
    assert "pulumi:providers:gcp::gcp::" in resource.provider


def test_gcp_exports_the_dashboards_console_url(gcp):
    url = gcp.outputs["dashboardUrl"]
    assert url.startswith("https://console.cloud.google.com/monitoring/dashboards/builder/")
    assert url.endswith("?project=test-project")


@pytest.fixture(scope="module")
def aws() -> Run:
    return run_program("aws-h100", secrets={"vllm:hfToken": "hf_testtoken123"})


def test_aws_has_a_cloudwatch_dashboard_of_vllms_metrics_and_the_load_balancers(aws):
    (resource,) = aws.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", resource.inputs["dashboardName"])  # CloudWatch's name rule
    widgets = json.loads(resource.inputs["dashboardBody"])["widgets"]
    alb = aws.one("aws:lb/loadBalancer:LoadBalancer").outputs["arnSuffix"]
    target_group = aws.one("aws:lb/targetGroup:TargetGroup").outputs["arnSuffix"]
    rows = [row for widget in widgets for row in widget["properties"]["metrics"] if isinstance(row[0], str)]
    charted = {(row[0], row[1]): [word for word in row[2:] if isinstance(word, str)] for row in rows}
    assert charted[("AWS/ApplicationELB", "RequestCount")] == ["LoadBalancer", alb]
    assert charted[("AWS/ApplicationELB", "HealthyHostCount")] == [
        "TargetGroup",
        target_group,
        "LoadBalancer",
        alb,
    ]
    assert {name for namespace, name in charted if namespace == "vLLM/vllm-aws-h100"} == {
        "RequestsFinished",
        "TimeToFirstToken",
        "PromptTokens",
        "GenerationTokens",
        "RequestsWaiting",
        "RequestsRunning",
        "KvCacheUsage",
        "PrefixCacheQueries",
        "PrefixCacheHits",
    }
    ttft = [row[-1]["stat"] for row in rows if row[1] == "TimeToFirstToken"]
    assert ttft == ["p50", "p95"]
    assert all(widget["x"] + widget["width"] <= 24 for widget in widgets)  # CloudWatch's 24-column grid
    assert all(widget["properties"]["region"] == "us-east-1" for widget in widgets)


def test_aws_charts_the_prefix_cache_hit_rate_per_replica_beside_the_services(aws):
    (resource,) = aws.of_type("aws:cloudwatch/dashboard:Dashboard")
    widgets = json.loads(resource.inputs["dashboardBody"])["widgets"]
    (widget,) = [w for w in widgets if w["properties"]["title"].startswith("Prefix-cache hit rate")]
    lines = {
        row[0]["label"]: row[0]["expression"]
        for row in widget["properties"]["metrics"]
        if "expression" in row[0]
    }
    # A line per instance that sent its rate in the window: SEARCH finds replicas as they come and go.
    assert lines["replica"] == (
        """SEARCH('{"vLLM/vllm-aws-h100",InstanceId} MetricName="PrefixCacheHitRate"', 'Average', 60)"""
    )
    # The service's: all replicas' hits over all their queries (the dimensionless counters).
    hidden = {row[-1]["id"]: row[1] for row in widget["properties"]["metrics"] if isinstance(row[0], str)}
    assert lines["all replicas"] == "100*m2/m1"
    assert (hidden["m1"], hidden["m2"]) == ("PrefixCacheQueries", "PrefixCacheHits")


def test_aws_exports_the_dashboards_console_url(aws):
    assert aws.outputs["dashboardUrl"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#dashboards/dashboard/vllm-aws-h100"
    )
