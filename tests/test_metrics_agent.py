"""AWS's metrics agent: what it reads from vLLM's /metrics and sends to CloudWatch, the real script run by
the unit the boot script installs (a fake vLLM /metrics, a fake ``aws`` on PATH), and its agreement with
the dashboard and the instance role."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components import dashboard, scripts
from components.aws.monitoring import dashboard_body
from tests.harness import Run, run_program
from tests.test_vm_bootstrap import rendered, run_script, sandbox  # noqa: F401 - the boot script's fixture

sys.path.insert(0, str(scripts.SCRIPTS_DIR))
import metrics_agent

DEADLINE_SECONDS = 60  # generous: the machine is shared and loaded
NAMESPACE = "vLLM/vllm-aws-h100"
TTFT_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5)


def exposition(finished: int, ttft: dict[float, int], waiting: tuple[int, int] = (3, 1)) -> str:
    """/metrics as vLLM 0.33 writes it (two engines), with ``finished`` requests and, per TTFT bucket
    upper bound, the observations in that bucket (cumulated here as Prometheus does)."""
    model = 'model_name="meta-llama/Llama-3.1-8B-Instruct"'
    lines = [
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        f'vllm:num_requests_waiting{{engine="0",{model}}} {waiting[0]:.1f}',
        f'vllm:num_requests_waiting{{engine="1",{model}}} {waiting[1]:.1f}',
        f'vllm:num_requests_running{{engine="0",{model}}} 2.0',
        f'vllm:num_requests_running{{engine="1",{model}}} 4.0',
        f'vllm:kv_cache_usage_perc{{engine="0",{model}}} 0.25',
        f'vllm:kv_cache_usage_perc{{engine="1",{model}}} 0.75',
        "# TYPE vllm:request_success_total counter",
        f'vllm:request_success_total{{engine="0",finished_reason="stop",{model}}} {finished - 1}.0',
        f'vllm:request_success_total{{engine="0",finished_reason="length",{model}}} 1.0',
        f'vllm:prompt_tokens_total{{engine="0",{model}}} {100 * finished}.0',
        f'vllm:generation_tokens_total{{engine="0",{model}}} {50 * finished}.0',
        f'vllm:prefix_cache_queries_total{{engine="0",{model}}} {100 * finished}.0',
        f'vllm:prefix_cache_hits_total{{engine="0",{model}}} {60 * finished}.0',
        "# TYPE vllm:time_to_first_token_seconds histogram",
    ]
    cumulative = 0
    for bound in (*TTFT_BOUNDS, float("inf")):
        cumulative += ttft.get(bound, 0)
        le = "+Inf" if bound == float("inf") else str(bound)
        lines.append(
            f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="{le}",{model}}} {cumulative}.0'
        )
    lines.append(f'vllm:time_to_first_token_seconds_count{{engine="0",{model}}} {cumulative}.0')
    return "\n".join(lines) + "\n"


def publisher() -> metrics_agent.Publisher:
    return metrics_agent.Publisher(list(metrics_agent.PUBLISHED))


def by_name(data: list[dict]) -> dict[str, dict]:
    return {datum["MetricName"]: datum for datum in data}


def sent(first: str, second: str) -> dict[str, dict]:
    agent = publisher()
    agent.data(metrics_agent.parse_exposition(first), "2026-01-01T00:00:00Z")
    return by_name(agent.data(metrics_agent.parse_exposition(second), "2026-01-01T00:01:00Z"))


# --- what it sends ---------------------------------------------------------------------------------------


def test_labels_with_slashes_and_escaped_quotes_parse():
    samples = metrics_agent.parse_exposition(
        'vllm:x{model_name="a/b \\"c\\"",le="+Inf"} 1e3\n# TYPE x gauge\n'
    )
    assert samples == {"vllm:x": [({"model_name": 'a/b "c"', "le": "+Inf"}, 1000.0)]}


def test_the_first_read_sends_gauges_and_only_sets_the_counters_baseline():
    data = by_name(publisher().data(metrics_agent.parse_exposition(exposition(10, {})), "t"))
    assert set(data) == {"RequestsWaiting", "RequestsRunning", "KvCacheUsage"}


def test_gauges_are_summed_over_engines_and_kv_cache_usage_is_the_busiest_engines():
    data = sent(exposition(10, {}), exposition(10, {}, waiting=(5, 2)))
    assert data["RequestsWaiting"]["Value"] == 7.0 and data["RequestsRunning"]["Value"] == 6.0
    assert data["KvCacheUsage"]["Value"] == 0.75


def test_counters_send_their_increase_over_every_label_set():
    data = sent(exposition(10, {}), exposition(25, {}))
    assert data["RequestsFinished"] == {
        "MetricName": "RequestsFinished",
        "Timestamp": "2026-01-01T00:01:00Z",
        "Unit": "Count",
        "Value": 15.0,
    }
    assert data["PromptTokens"]["Value"] == 1500.0 and data["GenerationTokens"]["Value"] == 750.0


def test_a_restarted_vllm_counts_everything_it_has_counted_as_new():
    assert sent(exposition(500, {}), exposition(4, {}))["RequestsFinished"]["Value"] == 4.0


def test_time_to_first_token_is_sent_as_bucket_upper_bounds_and_their_new_counts():
    before = {0.1: 5, 0.5: 2}
    after = {0.1: 9, 0.5: 2, 1.0: 3, float("inf"): 1}  # four more under 0.1 s, three in (0.5, 1], one > 2.5
    ttft = sent(exposition(10, before), exposition(20, after))["TimeToFirstToken"]
    assert ttft["Unit"] == "Seconds"
    assert dict(zip(ttft["Values"], ttft["Counts"], strict=True)) == {0.1: 4.0, 1.0: 3.0, 2.5: 1.0}


def test_no_time_to_first_token_datum_in_a_minute_without_requests():
    assert "TimeToFirstToken" not in sent(exposition(10, {0.1: 5}), exposition(10, {0.1: 5}))


def test_a_restarted_vllms_histogram_counts_all_its_observations_as_new():
    ttft = sent(exposition(10, {0.1: 50}), exposition(1, {0.25: 1}))["TimeToFirstToken"]
    assert (ttft["Values"], ttft["Counts"]) == ([0.25], [1.0])


INSTANCE = "i-0123456789abcdef0"


def sent_by_replica(first: str, second: str, instance_id: str = INSTANCE) -> list[dict]:
    agent = metrics_agent.Publisher(list(metrics_agent.PUBLISHED), instance_id=instance_id)
    agent.data(metrics_agent.parse_exposition(first), "2026-01-01T00:00:00Z")
    data = agent.data(metrics_agent.parse_exposition(second), "2026-01-01T00:01:00Z")
    return [datum for datum in data if "Dimensions" in datum]


def test_a_replica_sends_its_prefix_cache_hit_rate_weighted_by_its_queries():
    # 10 more requests: 1,000 prompt tokens looked up in the prefix cache, 600 found.
    (datum,) = sent_by_replica(exposition(10, {}), exposition(20, {}))
    assert datum == {
        "MetricName": "PrefixCacheHitRate",
        "Dimensions": [{"Name": "InstanceId", "Value": INSTANCE}],
        "Timestamp": "2026-01-01T00:01:00Z",
        "Unit": "Percent",
        "Values": [60.0],
        "Counts": [1000.0],  # CloudWatch's Average over replicas and minutes: hits over queries
    }


def test_no_hit_rate_in_a_minute_without_prefix_cache_queries():
    assert sent_by_replica(exposition(10, {}), exposition(10, {})) == []


def test_without_an_instance_id_every_metric_is_the_services():
    assert sent_by_replica(exposition(10, {}), exposition(20, {}), instance_id="") == []


def test_every_metric_the_agent_sends_is_of_a_kind_it_reads():
    assert {metric.kind for metric in metrics_agent.PUBLISHED} <= set(metrics_agent.KINDS)


def test_every_series_the_agent_reads_is_one_vllm_exports():
    for metric in metrics_agent.PUBLISHED:
        read = f"{metric.series}_bucket" if metric.kind == "histogram" else metric.series
        assert read in dashboard.exported_series(), metric


# --- the dashboard charts what the agents send -----------------------------------------------------------


def charted(body: str) -> list[tuple[str, str, tuple[str, ...], dict]]:
    """(namespace, metric, dimensions, options) of every metric row of a CloudWatch dashboard body."""
    rows = []
    for widget in json.loads(body)["widgets"]:
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):  # a metric math expression
                continue
            options = row[-1] if isinstance(row[-1], dict) else {}
            names = [word for word in row if isinstance(word, str)]
            rows.append((names[0], names[1], tuple(names[2:]), options))
    return rows


def test_the_dashboards_vllm_panels_chart_only_metrics_the_agent_sends_as_it_sends_them():
    published = {metric.name: metric for metric in metrics_agent.PUBLISHED}
    rows = [row for row in charted(dashboard_body("us-east-1", NAMESPACE, "app/a/1", "targetgroup/t/2"))]
    ours = [row for row in rows if row[0] == NAMESPACE]
    assert {name for _, name, _, _ in ours} == set(published)  # every metric sent is charted
    for _, name, dimensions, options in ours:
        assert dimensions == ()  # the service's metrics carry no dimension
        if options.get("stat", "").startswith("p"):  # percentiles: only over Values/Counts data
            assert published[name].kind == "histogram"


def test_the_per_replica_metric_is_charted_by_a_search_of_its_namespace_and_dimension():
    body = dashboard_body("us-east-1", NAMESPACE, "app/a/1", "targetgroup/t/2")
    expressions = [
        row[0]["expression"]
        for widget in json.loads(body)["widgets"]
        for row in widget["properties"]["metrics"]
        if isinstance(row[0], dict)
    ]
    searches = [text for text in expressions if text.startswith("SEARCH(")]
    assert searches == [
        f"""SEARCH('{{"{NAMESPACE}",InstanceId}} MetricName="PrefixCacheHitRate"', 'Average', 60)"""
    ]


def test_every_expression_uses_only_ids_of_its_own_widget():
    for widget in json.loads(dashboard_body("us-east-1", NAMESPACE, "a", "t"))["widgets"]:
        rows = widget["properties"]["metrics"]
        ids = {row[-1]["id"] for row in rows if isinstance(row[-1], dict) and "id" in row[-1]}
        for row in rows:
            if isinstance(row[0], dict):
                assert set(re.findall(r"\b[me]\d+\b", row[0]["expression"])) <= ids


@pytest.fixture(scope="module")
def aws() -> Run:
    return run_program("aws-h100", secrets={"vllm:hfToken": "hf_testtoken123"})


def test_the_instance_role_may_put_metric_data_into_the_stacks_namespace_only(aws):
    (policy,) = aws.of_type("aws:iam/rolePolicy:RolePolicy")
    document = json.loads(policy.inputs["policy"])
    statements = [s for s in document["Statement"] if "cloudwatch:PutMetricData" in str(s["Action"])]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
        }
    ]
    (board,) = aws.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert NAMESPACE in {row[0] for row in charted(board.inputs["dashboardBody"])}


# --- the real script, as the boot script's unit runs it ---------------------------------------------------


class FakeMetrics:
    """A vLLM /metrics whose counters and TTFT histogram grow at every read, answered with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.reads = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.reads += 1
                body = exposition(10 * fake.reads, {0.25: fake.reads, float("inf"): fake.reads}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def unit_agent(sandbox) -> Iterator[Callable[[str], tuple[Path, subprocess.Popen]]]:  # noqa: F811
    """Boots the AWS script, then runs its metrics unit's command line (a one-second interval, /metrics
    at ``url``) with a fake ``aws`` that records each call's argv as a JSON line."""
    env = {**sandbox, "VLLM_PYTHON": sys.executable}
    calls = Path(env["TMP"]) / "aws-calls.jsonl"
    started: list[subprocess.Popen] = []

    def start(url: str) -> tuple[Path, subprocess.Popen]:
        fake_curl = Path(env["PATH"].split(":")[0]) / "curl"  # IMDSv2: a token, then the instance id
        fake_curl.write_text(
            "#!/usr/bin/env bash\n"
            'case "$*" in *api/token*) echo imds-token;;'
            f' *"token: imds-token"*instance-id) echo {INSTANCE};; *) exit 22;; esac\n'
        )
        result = run_script(rendered("aws-h100"), env, "boot")
        assert result.returncode == 0, result.stdout + result.stderr
        fake_aws = Path(env["PATH"].split(":")[0]) / "aws"
        fake_aws.write_text(
            f"#!{sys.executable}\nimport json, sys\n"
            f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        )
        unit = Path(env["VLLM_METRICS_UNIT_FILE"]).read_text()
        (command,) = [
            line.removeprefix("ExecStart=") for line in unit.splitlines() if line.startswith("ExecStart=")
        ]
        argv = command.split()
        argv[argv.index("--url") + 1] = url
        argv[argv.index("--interval") + 1] = "1"
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(process)
        return calls, process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=DEADLINE_SECONDS)


def recorded(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_the_units_agent_sends_every_charted_metric_to_the_stacks_namespace(unit_agent):
    vllm = FakeMetrics()
    calls, _ = unit_agent(vllm.url)
    wait_until(lambda: len(recorded(calls)) >= 2, "two put-metric-data calls")
    argv = recorded(calls)[1]
    assert argv[:3] == ["cloudwatch", "put-metric-data", "--region"]
    assert argv[argv.index("--region") + 1] == "us-east-1"
    assert argv[argv.index("--namespace") + 1] == NAMESPACE
    data = by_name(json.loads(argv[argv.index("--metric-data") + 1]))
    body = dashboard_body("us-east-1", NAMESPACE, "app/a/1", "targetgroup/t/2")
    for namespace, name, _, _ in charted(body):
        if namespace == NAMESPACE:
            assert name in data and "Dimensions" not in data[name]
    assert (data["TimeToFirstToken"]["Values"], data["TimeToFirstToken"]["Counts"]) == (
        [0.25, 2.5],
        [1.0, 1.0],
    )


def test_the_units_agent_sends_the_replicas_hit_rate_under_its_instance_id_from_imds(unit_agent):
    vllm = FakeMetrics()  # 10 more requests a read: 1,000 prompt tokens looked up, 600 found
    calls, _ = unit_agent(vllm.url)
    wait_until(lambda: len(recorded(calls)) >= 2, "two put-metric-data calls")
    argv = recorded(calls)[1]
    (datum,) = [d for d in json.loads(argv[argv.index("--metric-data") + 1]) if "Dimensions" in d]
    assert datum["Dimensions"] == [{"Name": "InstanceId", "Value": INSTANCE}]
    assert (datum["MetricName"], datum["Values"], datum["Counts"]) == ("PrefixCacheHitRate", [60.0], [1000.0])


def test_the_units_agent_waits_quietly_while_vllm_does_not_answer(unit_agent):
    vllm = FakeMetrics(status=503)  # vLLM's API server answers /metrics once its model is loaded
    calls, process = unit_agent(vllm.url)
    wait_until(lambda: vllm.reads >= 3, "three reads of /metrics")
    process.kill()
    output = process.communicate(timeout=DEADLINE_SECONDS)[0]
    assert not recorded(calls) and output.count("cannot read") == 1, output


def test_the_agent_reads_metrics_on_the_host_itself():
    (line,) = [line for line in rendered("aws-h100").splitlines() if line.startswith("METRICS_AGENT_ARGS=(")]
    assert "--url http://127.0.0.1:8000/metrics" in line
