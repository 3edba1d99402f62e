"""The metrics path of Kubernetes autoscaling, proven by a real Prometheus (issue 30).

A Prometheus (Debian's ``prometheus``, .ci/run installs it) runs on loopback with the scrape jobs the stacks'
PodMonitors imply (path, scheme and TLS server name from ``monitoring.metrics_endpoint``; the ``namespace``
label the Prometheus Operator gives a pod's series), at a 1 s interval instead of 15 s, with every window
derived by the program's own rule (``scrape.window``). It scrapes a fake vLLM ``/metrics`` whose
counter and gauges the test drives, and every PromQL expression the stacks' ScaledObjects use
(``autoscaler.triggers``) is evaluated through Prometheus' HTTP API: each returns a number at steady load,
rises with load and falls back when load stops. All real-Prometheus tests live in this one file
(pytest-xdist distributes by file).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components.kubernetes import autoscaler, monitoring
from components.kubernetes.settings import settings
from components.service_spec import ServiceSpec
from components.spec import build_spec

pytestmark = pytest.mark.timeout(600)

SCRAPE_SECONDS = 1
#: Generous on a loaded 2-core machine: every wait polls a condition and returns as soon as it holds.
START_DEADLINE_SECONDS = 120
PHASE_DEADLINE_SECONDS = 120
MODEL = "Qwen/Qwen3-8B"
DOMAIN = "llm.example.com"
KUBERNETES = {
    "vllm:cloud": "kubernetes",
    "vllm:gpu": "L4:1",
    "vllm:model": MODEL,
    "vllm:prometheusUrl": "http://prometheus.monitoring:9090",
    "vllm:maxReplicas": "6",
    "vllm:targetQpsPerReplica": "2",
    "vllm:targetQueuePerReplica": "2",
}
#: One stack per shape of query: plain, beside a fixed on-demand base (``clamp_min``), and serving TLS.
STACKS = {
    "plain": dict(KUBERNETES),
    "base": {
        **KUBERNETES,
        "vllm:gpuNodeSelector": "gke",
        "vllm:spot": "true",
        "vllm:onDemandBaseReplicas": "1",
        "vllm:minReplicas": "2",
    },
    "tls": {
        **KUBERNETES,
        "vllm:prometheusOperator": "true",
        "vllm:domain": DOMAIN,
        "vllm:tlsSecretName": "llm-tls",
    },
}


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    running: int
    waiting: int


#: The phases the fake vLLM goes through, in order; "stopped" must bring every query back to 0.
PHASES = {"steady": Load(4, 3, 1), "high": Load(16, 10, 6), "stopped": Load(0, 0, 0)}


class FakeVllm:
    """vLLM's /metrics as the pinned vLLM names them (vllm/v1/metrics/loggers.py): the finished-requests
    counter grows at the load's rate between reads; the gauges are the load's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._load = Load(0, 0, 0)
        self._finished = 0.0
        self._since = time.monotonic()

    def set_load(self, load: Load) -> None:
        with self._lock:
            self._advance()
            self._load = load

    def _advance(self) -> None:
        now = time.monotonic()
        self._finished += self._load.requests_per_s * (now - self._since)
        self._since = now

    def exposition(self) -> str:
        with self._lock:
            self._advance()
            load, finished = self._load, self._finished
        labels = f'engine="0",model_name="{MODEL}"'
        return (
            "# TYPE vllm:request_success_total counter\n"
            f'vllm:request_success_total{{{labels},finished_reason="stop"}} {finished}\n'
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{{{labels}}} {load.running}\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{{{labels}}} {load.waiting}\n"
        )


def serve(vllm: FakeVllm, context: ssl.SSLContext | None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = vllm.exposition().encode() if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``DOMAIN``, as a kubernetes.io/tls Secret for vllm:domain holds; the
    test trusts it as Prometheus' image trusts the public roots."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={DOMAIN}", "-addext", f"subjectAltName=DNS:{DOMAIN}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


#: The PodMonitor endpoint fields this translation carries into a scrape job: any other field the program
#: starts to set fails here, rather than being silently left out of the proof.
TRANSLATED = {"port", "path", "interval", "scheme", "tlsConfig"}


def scrape_job(spec: ServiceSpec, target: str, ca_file: Path) -> dict:
    """The scrape job the Prometheus Operator derives from the stack's PodMonitor endpoint, with the pod's
    named port at ``target`` and the ``namespace`` label it gives the pod's series."""
    endpoint = monitoring.metrics_endpoint(spec, SCRAPE_SECONDS)
    assert set(endpoint) <= TRANSLATED, set(endpoint) - TRANSLATED
    job = {
        "job_name": settings(spec).namespace,
        "scrape_interval": endpoint["interval"],
        "scrape_timeout": endpoint["interval"],
        "metrics_path": endpoint["path"],
        "scheme": endpoint.get("scheme", "http"),
        "static_configs": [{"targets": [target], "labels": {"namespace": settings(spec).namespace}}],
    }
    if "tlsConfig" in endpoint:
        job["tls_config"] = {"server_name": endpoint["tlsConfig"]["serverName"], "ca_file": str(ca_file)}
    return job


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], bool], deadline_seconds: float, what: str) -> None:
    """Polls ``condition`` until it holds; a request that fails or times out (a Prometheus slow to answer
    on a loaded machine) counts as not yet, until the deadline."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            if condition():
                return
        except OSError:  # urllib's URLError and socket timeouts
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {deadline_seconds} s")
        time.sleep(0.2)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            return json.load(response)

    def value(self, expression: str) -> float | None:
        """The instant value of a query whose result is one unlabelled sample, None when it is empty."""
        result = self.get("/api/v1/query", query=expression)["data"]["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None


def stop(process: subprocess.Popen) -> None:
    """Ends a Prometheus the tests started: asked first, killed if it does not exit within the deadline."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_prometheus(config: Path, directory: Path) -> tuple[subprocess.Popen, Prometheus]:
    """Prometheus on a free loopback port, once it is ready; a port taken in between is retried."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is not installed (.ci/run installs it)"
    for attempt in range(3):
        port = free_port()
        log = directory / f"prometheus-{attempt}.log"
        with log.open("w") as output:  # the child keeps its own descriptor of the log
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / f'data-{attempt}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        prometheus = Prometheus(f"http://127.0.0.1:{port}")

        def ready(process: subprocess.Popen = process, prometheus: Prometheus = prometheus) -> bool:
            if process.poll() is not None:
                return True
            try:
                with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            wait_for(ready, START_DEADLINE_SECONDS, "Prometheus ready")
        except BaseException:
            stop(process)  # not ready in time (or interrupted): never leave it running
            raise
        if process.poll() is None:
            return process, prometheus
        if "address already in use" not in log.read_text():
            raise RuntimeError(f"Prometheus exited: {log.read_text()[-2000:]}")
    raise RuntimeError("Prometheus found no free port in 3 attempts")


def specs() -> dict[str, ServiceSpec]:
    return {name: build_spec(f"scrape-{name}", config) for name, config in STACKS.items()}


def expected(spec: ServiceSpec, signal: str, load: Load) -> float:
    """What a query should read at ``load``: the stack's total, less what a fixed base holds at target."""
    from components.replica_shares import fixed_base_replicas

    policy = spec.autoscaling
    assert policy is not None and policy.target_qps_per_replica and policy.target_queue_per_replica
    if signal == "vllm-requests":
        total, target = load.requests_per_s, policy.target_qps_per_replica
    else:
        total, target = load.running + load.waiting, policy.target_queue_per_replica
    return max(total - fixed_base_replicas(spec) * target, 0.0)


@dataclass(frozen=True)
class Query:
    stack: str
    signal: str  # the trigger's name
    expression: str


@pytest.fixture(scope="module")
def vllm() -> FakeVllm:
    return FakeVllm()


@pytest.fixture(scope="module")
def prometheus(vllm: FakeVllm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    directory = tmp_path_factory.mktemp("prometheus")
    cert, key = certificate(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    plain, secure = serve(vllm, None), serve(vllm, context)
    try:
        jobs = []
        for spec in specs().values():
            server = secure if monitoring.metrics_endpoint(spec).get("scheme") == "https" else plain
            jobs.append(scrape_job(spec, f"127.0.0.1:{server.server_address[1]}", cert))
        config = directory / "prometheus.yml"
        config.write_text(json.dumps({"scrape_configs": jobs}))  # JSON is YAML
        process, server_api = start_prometheus(config, directory)
        try:

            def scraped() -> bool:
                targets = server_api.get("/api/v1/targets")["data"]["activeTargets"]
                return len(targets) == len(jobs) and all(target["health"] == "up" for target in targets)

            wait_for(scraped, START_DEADLINE_SECONDS, "every scrape target up")
            yield server_api
        finally:
            stop(process)
    finally:
        for server in (plain, secure):
            server.shutdown()
            server.server_close()


def scaling_queries() -> list[Query]:
    found = []
    for name, spec in specs().items():
        assert spec.autoscaling is not None
        for trigger in autoscaler.triggers(spec, spec.autoscaling, SCRAPE_SECONDS):
            found.append(Query(name, trigger["name"], trigger["metadata"]["query"]))
    return found


def test_every_query_reads_windows_of_four_scrapes() -> None:
    # The rule, at the test's interval: the production windows are the same rule at 15 s (test_monitoring).
    for query in scaling_queries():
        assert set(re.findall(r"\[([^\]]+)\]", query.expression)) == {f"{4 * SCRAPE_SECONDS}s"}, query


@pytest.fixture(scope="module")
def observed(vllm: FakeVllm, prometheus: Prometheus) -> dict[str, dict[Query, float | None]]:
    """Each phase's reading of every query, once they all read what the phase's load implies (or the
    deadline passed: the readings then show what they were)."""
    queries = scaling_queries()
    specs_by_name = specs()
    readings: dict[str, dict[Query, float | None]] = {}
    wait_for(
        lambda: all(r["health"] == "up" for r in prometheus.get("/api/v1/targets")["data"]["activeTargets"]),
        PHASE_DEADLINE_SECONDS,
        "every scrape target up",
    )
    for phase, load in PHASES.items():
        vllm.set_load(load)
        values: dict[Query, float | None] = {}

        def settled(load: Load = load, values: dict[Query, float | None] = values) -> bool:
            for query in queries:
                values[query] = prometheus.value(query.expression)
            return all(
                (value := values[query]) is not None
                and value
                == pytest.approx(expected(specs_by_name[query.stack], query.signal, load), rel=0.2, abs=0.05)
                for query in queries
            )

        # On a timeout the tests below name the query that did not get there.
        with contextlib.suppress(TimeoutError):
            wait_for(settled, PHASE_DEADLINE_SECONDS, f"the {phase} phase's readings")
        readings[phase] = dict(values)
    return readings


def test_prometheus_scrapes_every_stack_over_the_scheme_its_pod_monitor_names(prometheus: Prometheus) -> None:
    targets = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
    schemes = {target["labels"]["namespace"]: target["scrapeUrl"].split(":")[0] for target in targets}
    assert schemes == {
        settings(spec).namespace: "https" if name == "tls" else "http" for name, spec in specs().items()
    }
    # Each has been scraped (the TLS one verifying the domain's certificate); one late scrape on a loaded
    # machine is not what this asks.
    for namespace in schemes:
        assert prometheus.value(f'max(max_over_time(up{{namespace="{namespace}"}}[10m]))') == 1, namespace


def test_every_scaling_query_returns_a_number_at_steady_load(observed) -> None:
    for query, value in observed["steady"].items():
        assert value is not None and value > 0, (query, value)


def test_every_scaling_query_rises_with_load(observed) -> None:
    for query, value in observed["high"].items():
        before = observed["steady"][query]
        assert value is not None and before is not None and value > before * 2, (query, before, value)


def test_every_scaling_query_falls_back_when_load_stops(observed) -> None:
    for query, value in observed["stopped"].items():
        assert value == pytest.approx(0, abs=0.05), (query, value)


def test_every_scaling_query_reads_the_load_the_replicas_report(observed) -> None:
    stacks = specs()
    for phase, readings in observed.items():
        for query, value in readings.items():
            want = expected(stacks[query.stack], query.signal, PHASES[phase])
            assert value == pytest.approx(want, rel=0.2, abs=0.05), (phase, query, value, want)
