"""`python -m tools.logs`: the replicas' vLLM container logs, from recorded Kubernetes and Cloud Logging."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from components.observe import INSTALL_TOOLS, LogQuery, Replica, ReplicaSource
from tests.fake_api import FakeApi, serving
from tests.harness import run_program
from tests.test_status import _fake_pulumi
from tests.test_status_kubernetes import SELECTOR, pod
from tools import logs

pytest.importorskip("kubernetes", reason=INSTALL_TOOLS)
pytest.importorskip("google.cloud.logging", reason=INSTALL_TOOLS)
from google.auth.credentials import AnonymousCredentials

from components.gcp import status as gcp_status

pytestmark = pytest.mark.timeout(120)
NAMESPACE = "vllm-k8s-h100"


@pytest.fixture(scope="module")
def k8s_outputs() -> dict:
    run = run_program("k8s-h100", secrets={"vllm:hfToken": "hf_testtoken123"})
    return {"endpoint": "http://203.0.113.20", "replicaSource": run.outputs["replicaSource"]}


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch) -> Iterator[FakeApi]:
    """Two serving pods with their logs, behind a kubeconfig's current context."""
    with serving() as api:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            f"clusters: [{{name: test, cluster: {{server: '{api.url}'}}}}]\n"
            "users: [{name: test, user: {token: test-token}}]\n"
            "contexts: [{name: test, context: {cluster: test, user: test}}]\n"
        )
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        api.routes[("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/vllm-k8s-h100")] = {
            "metadata": {"name": "vllm-k8s-h100"},
            "spec": {"selector": {"matchLabels": SELECTOR}, "template": {}},
        }
        first, second = pod("vllm-a"), pod("vllm-b")
        second["status"]["startTime"] = "2026-11-25T10:00:00+00:00"
        api.routes[("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")] = {"items": [first, second]}
        for name in ("vllm-a", "vllm-b"):
            api.routes[("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/log")] = (
                f"2026-11-25T09:00:01.123456789Z INFO {name} loading weights\n"
                f"2026-11-25T09:00:02.000000000Z INFO {name} Application startup complete.\n"
            )
        yield api


def run_logs(outputs: dict, tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = logs.main(["--stack", "k8s-h100", *argv], env=_fake_pulumi(tmp_path, outputs), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_every_pods_log_is_printed_with_its_replica_id_and_name(cluster, k8s_outputs, tmp_path):
    code, out, _ = run_logs(k8s_outputs, tmp_path)
    assert code == logs.EXIT_OK
    assert sorted(out.splitlines()) == [
        "(1 vllm-a) INFO vllm-a Application startup complete.",
        "(1 vllm-a) INFO vllm-a loading weights",
        "(2 vllm-b) INFO vllm-b Application startup complete.",
        "(2 vllm-b) INFO vllm-b loading weights",
    ]
    queries = [query for _, path, query, _ in cluster.requests if path.endswith("/log")]
    assert all("container=vllm" in query and "timestamps=true" in query for query in queries)
    assert all("sinceSeconds=" in query for query in queries)


def test_one_replica_by_id_prints_its_lines_alone(cluster, k8s_outputs, tmp_path):
    code, out, _ = run_logs(k8s_outputs, tmp_path, "--replica", "2", "--since", "30m")
    assert code == logs.EXIT_OK
    assert out.splitlines() == ["INFO vllm-b loading weights", "INFO vllm-b Application startup complete."]
    (query,) = [query for _, path, query, _ in cluster.requests if path.endswith("/log")]
    assert "sinceSeconds=1800" in query


def test_an_unknown_replica_exits_2_listing_the_replicas(cluster, k8s_outputs, tmp_path):
    code, _, err = run_logs(k8s_outputs, tmp_path, "--replica", "7")
    assert code == logs.EXIT_CONFIG
    assert "no replica '7': replicas are 1 (vllm-a), 2 (vllm-b)" in err


def test_logs_are_read_without_the_stacks_secrets(cluster, k8s_outputs, tmp_path):
    run_logs(k8s_outputs, tmp_path)
    assert "--show-secrets" not in (tmp_path / "argv").read_text().split()


def test_a_stack_without_replica_source_exits_2(tmp_path):
    code, _, err = run_logs({"endpoint": "http://x"}, tmp_path)
    assert code == logs.EXIT_CONFIG
    assert "has no replicaSource output" in err


def test_since_takes_a_number_and_a_unit():
    assert logs.parse_since("90s") == timedelta(seconds=90)
    assert logs.parse_since("2h") == timedelta(hours=2)
    with pytest.raises(Exception, match="a positive number and s, m, h or d"):
        logs.parse_since("2 weeks")


GCP_SOURCE = ReplicaSource(
    platform="gcp",
    location="us-central1",
    scope="test-project",
    replicas=2,
    startup_seconds=600,
    groups=(),
    balancer="vllm-gcp-h100-backend",
    logs="gcplogs-docker-driver",
)


def gcp_entry(insert_id: str, instance: str, message: str, second: int) -> dict:
    return {
        "logName": "projects/test-project/logs/gcplogs-docker-driver",
        "insertId": insert_id,
        "timestamp": f"2026-11-25T09:00:{second:02d}Z",
        "resource": {"type": "gce_instance", "labels": {"instance_id": "1", "zone": "us-central1-a"}},
        "jsonPayload": {"instance": {"name": instance, "zone": "us-central1-a"}, "message": f"{message}\n"},
    }


def test_gcp_logs_are_the_instances_gcplogs_entries_in_time_order():
    with serving() as api:
        api.routes[("POST", "/v2/entries:list")] = {
            "entries": [
                gcp_entry("a1", "vllm-a", "INFO loading", 1),
                gcp_entry("b1", "vllm-b", "INFO ready", 2),
            ]
        }
        lines = []
        query = LogQuery(
            replicas=[Replica(id="1", name="vllm-a")], since=datetime(2026, 11, 25, 8, tzinfo=UTC)
        )
        gcp_status.read_logs(
            GCP_SOURCE,
            query,
            lines.append,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": api.url},
        )
        (request,) = [body for _, path, _, body in api.requests if path == "/v2/entries:list"]
    assert [(line.replica.name, line.text) for line in lines] == [("vllm-a", "INFO loading")]
    assert b'logName=\\"projects/test-project/logs/gcplogs-docker-driver\\"' in request
    assert b'jsonPayload.instance.name=(\\"vllm-a\\")' in request
    assert b'timestamp>=\\"2026-11-25T08:00:00+00:00\\"' in request


def test_following_gcp_logs_asks_again_from_the_last_entry_and_prints_each_entry_once():
    with serving() as api:
        api.routes[("POST", "/v2/entries:list")] = {"entries": [gcp_entry("a1", "vllm-a", "INFO first", 1)]}
        lines, polls = [], []

        def keep_going() -> bool:
            polls.append(1)
            api.routes[("POST", "/v2/entries:list")] = {
                "entries": [
                    gcp_entry("a1", "vllm-a", "INFO first", 1),
                    gcp_entry("a2", "vllm-a", "INFO second", 5),
                ]
            }
            return len(polls) < 3

        query = LogQuery(
            replicas=[Replica(id="1", name="vllm-a")],
            since=datetime(2026, 11, 25, 8, tzinfo=UTC),
            follow=True,
            poll_seconds=0.01,
            keep_going=keep_going,
        )
        gcp_status.read_logs(
            GCP_SOURCE,
            query,
            lines.append,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": api.url},
        )
        bodies = [body for _, path, _, body in api.requests if path == "/v2/entries:list"]
    assert [line.text for line in lines] == ["INFO first", "INFO second"]
    assert len(bodies) == 3
    assert b'timestamp>=\\"2026-11-25T09:00:05+00:00\\"' in bodies[-1]


def test_the_logs_tool_without_the_pulumi_cli_suggests_nothing_it_does_not_offer():
    err = io.StringIO()
    assert logs.main(["--stack", "gcp-h100"], env={"PATH": ""}, err=err) == logs.EXIT_CONFIG
    assert "the pulumi CLI is not on PATH" in err.getvalue() and "--endpoint" not in err.getvalue()


@pytest.mark.parametrize("since", ["99999999999d", "366d", "0s", "1e3s"])
def test_since_beyond_a_year_or_not_a_count_is_a_usage_error_not_a_traceback(since):
    with pytest.raises(SystemExit) as caught:
        logs.parse_args(["--stack", "x", "--since", since])
    assert caught.value.code == 2


def filling(name: str) -> dict:
    """A pod still in its fill init container: vLLM's container waits to start."""
    waiting = pod(name)
    waiting["status"]["phase"] = "Pending"
    waiting["status"]["initContainerStatuses"] = [
        {"name": "fill-hf-cache", "image": "x", "imageID": "x", "ready": False, "restartCount": 0,
         "state": {"running": {"startedAt": "2026-11-25T09:00:00Z"}}}
    ]  # fmt: skip
    waiting["status"]["containerStatuses"][0].update(
        ready=False, started=False, state={"waiting": {"reason": "PodInitializing"}}
    )
    return waiting


def test_a_pod_in_its_fill_init_container_shows_the_fills_log(cluster, k8s_outputs, tmp_path):
    # The API server refuses the log of a container that has not started: 400 "container vllm in pod ...
    # is waiting to start: PodInitializing" (what `kubectl logs -c vllm` prints for such a pod).
    cluster.routes[("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")] = {"items": [filling("vllm-a")]}
    cluster.routes[("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/vllm-a/log")] = (
        "2026-11-25T09:00:01.000000000Z hf-cache-fill: lock taken: this pod fills the shared cache\n"
    )
    code, out, _ = run_logs(k8s_outputs, tmp_path)
    assert code == logs.EXIT_OK
    assert out.splitlines() == ["hf-cache-fill: lock taken: this pod fills the shared cache"]
    (query,) = [query for _, path, query, _ in cluster.requests if path.endswith("/log")]
    assert "container=fill-hf-cache" in query
