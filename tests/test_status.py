"""`python -m tools.status` against a local server that answers like vLLM with ``--api-key``."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from components.observe import (
    NOT_READY,
    RAY_HEAD,
    RAY_WORKER,
    READY,
    ROUTER,
    SHUTTING_DOWN,
    STARTING,
    Replica,
    ReplicaSource,
)
from tools import endpoint, stack, status

pytestmark = pytest.mark.timeout(30)

API_KEY = "sk-test-3f9c2a71d4e8"
SERVED_MODEL = "llama-3-8b"
FAST_POLL = ["--interval", "0.02"]


@dataclass
class FakeVllm:
    """vLLM's observable behaviour: /health 503 while loading, then 200; /v1 routes need the Bearer key."""

    loading_polls: int  # /health requests answered 503 before the model is loaded
    health_seconds: float = 0.0  # how long /health takes to answer (a loaded host)
    completions: list[dict] = field(default_factory=list)

    def answer(self, method: str, path: str, authorization: str | None, body: bytes) -> tuple[int, dict]:
        if method == "GET" and path == "/health":
            time.sleep(self.health_seconds)
            if self.loading_polls > 0:
                self.loading_polls -= 1
                return 503, {"error": "model loading"}
            return 200, {}
        if authorization != f"Bearer {API_KEY}":
            return 401, {"error": "Unauthorized"}
        if method == "GET" and path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": SERVED_MODEL, "object": "model"}]}
        if method == "POST" and path == "/v1/chat/completions":
            request = json.loads(body)
            self.completions.append(request)
            if request.get("model") != SERVED_MODEL:
                return 404, {"error": {"message": f"The model `{request.get('model')}` does not exist."}}
            return 200, {"choices": [{"message": {"role": "assistant", "content": "I"}}], "usage": {}}
        return 404, {"detail": "Not Found"}


def _handler(fake: FakeVllm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code, payload = fake.answer(method, self.path, self.headers.get("Authorization"), body)
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, *args: object) -> None:
            """Keep test output quiet."""

    return Handler


@pytest.fixture
def serve() -> Iterator:
    servers: list[ThreadingHTTPServer] = []

    def start(loading_polls: int = 0, health_seconds: float = 0.0) -> tuple[str, FakeVllm]:
        fake = FakeVllm(loading_polls, health_seconds)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", fake

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = status.main(list(argv), env={"PATH": ""} if env is None else env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_ready_server_exits_0_with_a_row_per_check(serve):
    url, _ = serve()
    code, out, _ = run("--endpoint", url, "--api-key", API_KEY)
    assert code == status.EXIT_READY
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines() if line.startswith("/")}
    assert rows == {check: ["OK", "200"] for check in ("/health", "/v1/models", "/v1/chat/completions")}
    assert SERVED_MODEL in out
    assert out.rstrip().endswith("READY")


def test_probe_is_skyserves_one_token_chat_completion(serve):
    url, fake = serve()
    run("--endpoint", url, "--api-key", API_KEY)
    assert fake.completions == [
        {
            "model": SERVED_MODEL,
            "messages": [{"role": "user", "content": "Hello! What is your name?"}],
            "max_tokens": 1,
        }
    ]


def test_wrong_key_exits_1_naming_the_models_check(serve):
    url, _ = serve()
    code, out, _ = run("--endpoint", url, "--api-key", "sk-wrong")
    assert code == status.EXIT_NOT_READY
    assert "NOT READY: /v1/models 401" in out
    assert "the API key was refused" in out


def test_missing_key_is_named_as_the_reason(serve):
    url, _ = serve()
    code, out, _ = run("--endpoint", url)
    assert code == status.EXIT_NOT_READY
    assert "no API key given" in out


def test_loading_server_exits_1_and_skips_the_api_checks(serve):
    url, fake = serve(loading_polls=100)
    code, out, _ = run("--endpoint", url, "--api-key", API_KEY)
    assert code == status.EXIT_NOT_READY
    assert "NOT READY: /health 503" in out
    assert out.count("SKIP") == 2
    assert fake.completions == []


def test_unreachable_endpoint_exits_1_with_connection_failed():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code, out, _ = run("--endpoint", f"http://127.0.0.1:{port}", "--api-key", API_KEY)
    assert code == status.EXIT_NOT_READY
    assert "connection failed" in out


def test_endpoint_and_key_come_from_the_environment(serve):
    url, _ = serve()
    code, _, _ = run(env={"PATH": "", "VLLM_ENDPOINT": f"{url}/v1/", "VLLM_API_KEY": API_KEY})
    assert code == status.EXIT_READY


def test_wait_polls_until_ready_with_one_progress_line_per_poll(serve):
    url, _ = serve(loading_polls=3)
    code, out, err = run("--endpoint", url, "--api-key", API_KEY, "--wait", "--timeout", "10", *FAST_POLL)
    assert code == status.EXIT_READY
    progress = err.splitlines()
    assert len(progress) == 3
    assert all(line.startswith(f"waiting for {url}: /health 503 (") for line in progress)
    assert progress[0].endswith("s of 10 s)")
    assert out.rstrip().endswith("READY")


def test_wait_times_out_with_exit_3_against_a_server_that_never_loads(serve):
    url, _ = serve(loading_polls=10**6)
    code, out, _ = run("--endpoint", url, "--api-key", API_KEY, "--wait", "--timeout", "0.2", *FAST_POLL)
    assert code == status.EXIT_TIMEOUT
    assert "TIMED OUT waiting: /health 503" in out


def test_the_last_look_before_the_deadline_waits_long_enough_to_hear_the_answer(serve):
    url, _ = serve(loading_polls=10**6, health_seconds=0.5)
    code, out, _ = run("--endpoint", url, "--api-key", API_KEY, "--wait", "--timeout", "0.2", *FAST_POLL)
    assert code == status.EXIT_TIMEOUT
    assert "TIMED OUT waiting: /health 503" in out  # the blocker, not the look's own timeout


def test_no_endpoint_exits_2_with_what_to_pass(capsys):
    code, _, err = run()
    assert code == status.EXIT_CONFIG
    assert "no endpoint: pass --stack NAME, or --endpoint URL" in err


def test_stack_without_pulumi_cli_exits_2_saying_so():
    code, _, err = run("--stack", "gcp-h100", env={"PATH": ""})
    assert code == status.EXIT_CONFIG
    assert "the pulumi CLI is not on PATH" in err


def _fake_pulumi(directory: Path, outputs: dict) -> dict[str, str]:
    """A `pulumi` on PATH that prints the given stack outputs, and records how it was called."""
    script = directory / "pulumi"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {directory}/argv\nprintf '%s\\n' '{json.dumps(outputs)}'\n")
    script.chmod(0o755)
    return {"PATH": str(directory)}


def test_stack_outputs_supply_endpoint_key_and_model(serve, tmp_path):
    url, fake = serve()
    env = _fake_pulumi(tmp_path, {"endpoint": url, "apiKey": API_KEY, "model": SERVED_MODEL})
    code, _, _ = run("--stack", "gcp-h100", env=env)
    assert code == status.EXIT_READY
    assert (tmp_path / "argv").read_text().split() == [
        *("stack", "output", "--json", "--show-secrets", "--stack", "gcp-h100")
    ]
    assert fake.completions[0]["model"] == SERVED_MODEL


def test_stack_without_endpoint_output_exits_2(tmp_path):
    code, _, err = run("--stack", "gcp-h100", env=_fake_pulumi(tmp_path, {}))
    assert code == status.EXIT_CONFIG
    assert "stack gcp-h100 has no endpoint output" in err


def test_api_key_never_appears_in_any_output(serve, tmp_path):
    url, _ = serve(loading_polls=2)
    env = _fake_pulumi(tmp_path, {"endpoint": url, "apiKey": API_KEY, "model": SERVED_MODEL})
    outputs = [
        run("--stack", "s", "--wait", "--timeout", "10", *FAST_POLL, env=env),
        run("--stack", "s", "--json", env=env),
        run("--endpoint", url, "--api-key", API_KEY, "--wait", "--timeout", "0.05", *FAST_POLL),
    ]
    assert all(API_KEY not in out + err for _, out, err in outputs)


def test_json_report_shape(serve):
    url, _ = serve()
    code, out, _ = run("--endpoint", url, "--api-key", API_KEY, "--json")
    report = json.loads(out)
    assert code == status.EXIT_READY
    assert set(report) == {"endpoint", "ready", "timedOut", "checks"}
    assert (report["endpoint"], report["ready"], report["timedOut"]) == (url, True, False)
    assert [check["check"] for check in report["checks"]] == ["/health", "/v1/models", "/v1/chat/completions"]
    assert all(
        set(check) == {"check", "status", "httpStatus", "latencyMs", "detail"} and check["status"] == "OK"
        for check in report["checks"]
    )
    assert all(isinstance(check["latencyMs"], int) for check in report["checks"])


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        status.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert all(line in help_text for line in ("0  ready", "1  not ready", "2  usage", "3  timed out"))


def test_base_url_accepts_a_bare_host_or_an_openai_base_url():
    assert stack.base_url("203.0.113.7") == "http://203.0.113.7"
    assert stack.base_url("https://llm.example.com/v1/") == "https://llm.example.com"


def test_a_stack_whose_replicas_cannot_be_listed_still_gets_its_endpoint_checked(
    serve, tmp_path, monkeypatch
):
    """No credentials or client library for the platform: the replica table says why, the probe runs."""
    url, _ = serve()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    source = {
        "platform": "kubernetes",
        "location": "no-such-context",
        "scope": "vllm-k8s-l4",
        "replicas": 1,
        "startupSeconds": 900,
        "groups": [{"kind": "Deployment", "name": "vllm-k8s-l4", "role": "serve"}],
        "balancer": "vllm-k8s-l4-api",
    }
    outputs = {"endpoint": url, "apiKey": API_KEY, "model": SERVED_MODEL, "replicaSource": source}
    env = {**_fake_pulumi(tmp_path, outputs), "KUBECONFIG": str(tmp_path / "missing-kubeconfig")}
    code, out, _ = run("--stack", "k8s-l4", env=env)
    assert code == status.EXIT_READY  # the endpoint is the verdict when the replicas cannot be asked
    assert "replicas unavailable: " in out
    assert out.rstrip().endswith("READY")


def test_a_stack_without_replica_source_is_checked_as_before(serve, tmp_path):
    url, _ = serve()
    env = _fake_pulumi(tmp_path, {"endpoint": url, "apiKey": API_KEY, "model": SERVED_MODEL})
    code, out, _ = run("--stack", "old-stack", "--json", env=env)
    assert code == status.EXIT_READY
    assert set(json.loads(out)) == {"endpoint", "ready", "timedOut", "checks"}


def test_a_multi_node_replica_table_shows_each_machines_role_and_counts_heads_only():
    source = ReplicaSource(
        platform="gcp",
        location="us-central1",
        scope="p",
        replicas=2,
        startup_seconds=600,
        groups=(),
        balancer="b",
    )
    machines = [
        Replica(id="0", name="r0-head", role=RAY_HEAD, status=READY),
        Replica(id="0", name="r0-worker", role=RAY_WORKER, status=READY),
        Replica(id="1", name="r1-head", role=RAY_HEAD, status=STARTING, detail="loading"),
    ]
    target = status.Target("http://lb", None, None, stack="gcp-h100-multinode", replica_source=source)
    checks = [status.CheckResult("/health", "OK", 200, 3, "")]
    text = status.render_table(target, status.Report(checks, machines, None, 2), timed_out=False)
    lines = text.splitlines()
    assert lines[lines.index("Service Replicas") + 1].split()[:3] == ["ID", "ROLE", "NAME"]
    assert "gcp-h100-multinode  NOT_READY  1/2" in text
    assert any(line.split()[:3] == ["0", "ray-worker", "r0-worker"] for line in lines)
    assert "STARTING (loading)" in text
    assert text.endswith("NOT READY: READY 1/2 replicas")


def test_the_router_shows_as_a_row_of_its_own_and_counts_in_no_replica_total():
    machines = [
        Replica(id="1", name="vllm-a", status=READY),
        Replica(
            id="-", name="vllm-epp-a", role=ROUTER, status=NOT_READY, detail="InferencePool p: not Accepted"
        ),
    ]
    target = status.Target("http://gw", None, None, stack="k8s-l4", replica_source=_source())
    checks = [status.CheckResult("/health", "OK", 200, 3, "")]
    report = status.Report(checks, machines, None, 1)
    text = status.render_table(target, report, timed_out=False)
    assert any(line.split()[:3] == ["-", "router", "vllm-epp-a"] for line in text.splitlines())
    assert "NOT_READY (InferencePool p: not Accepted)" in text
    service = next(line for line in text.splitlines() if line.startswith("k8s-l4"))
    assert report.ready and service.split()[:4] == ["k8s-l4", "READY", "1/1", "1"]


def _source(bounds: tuple[int, int] | None = None) -> ReplicaSource:
    return ReplicaSource(
        platform="gcp",
        location="us-central1",
        scope="p",
        replicas=1,
        startup_seconds=600,
        groups=(),
        balancer="b",
        bounds=bounds,
    )


def test_the_scale_column_shows_current_against_desired_within_the_bounds():
    machines = [
        Replica(id="1", name="a", status=READY),
        Replica(id="2", name="b", status=STARTING),
        Replica(id="3", name="c", status=SHUTTING_DOWN),
    ]
    report = status.Report([], machines, None, 4, (1, 6))
    assert status.scale(report) == "2 -> 4 (autoscaled 1-6)"


def test_the_scale_column_of_a_fixed_count_at_its_size_shows_the_count():
    report = status.Report([], [Replica(id="1", name="a", status=READY)], None, 1)
    assert status.scale(report) == "1 (fixed)"


def test_look_counts_ready_against_the_platforms_desired_count_not_the_first_ups(serve):
    """The autoscaler moved the count from the stack's initial 1 to 3: READY 2/3 is not ready."""
    url, _ = serve()
    target = status.Target(url, API_KEY, SERVED_MODEL, stack="s", replica_source=_source((1, 4)))
    ready = [Replica(id=str(i), name=f"r{i}", status=READY) for i in (1, 2)]
    with requests.Session() as session:
        report = status.look(session, target, replicas=lambda source: ready, desired=lambda source: 3)
    assert all(result.passed for result in report.results)
    assert (report.ready, report.expected, report.bounds) == (False, 3, (1, 4))
    assert report.blocker() == "READY 2/3 replicas"


@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        ("GET https://llm.example.invalid/v1/models", "xample", "GET https://llm.example.invalid/v1/models"),
        ("ready: 1 replica", "ready", "***: 1 replica"),
        (
            "Authorization: Bearer sk-key-0123456789abcdef.",
            "sk-key-0123456789abcdef",
            "Authorization: Bearer ***.",
        ),
        ("key=sk-key-0123456789abcdefXYZ", "sk-key-0123456789abcdef", "key=sk-key-0123456789abcdefXYZ"),
    ],
)
def test_masking_the_key_masks_it_as_a_whole_token_and_never_alters_other_text(text, key, shown):
    assert endpoint.redact(text, key) == shown


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "0", "1e308"])
@pytest.mark.parametrize("option", ["--timeout", "--interval"])
def test_a_wait_that_is_not_a_positive_bounded_number_is_a_usage_error(option, seconds):
    with pytest.raises(SystemExit) as caught:
        status.parse_args(["--endpoint", "http://127.0.0.1:9", "--wait", option, seconds])
    assert caught.value.code == 2
