"""Is a deployed vLLM endpoint serving? The ``sky serve status`` of these stacks.

    python -m tools.status --stack gcp-h100 [--wait] [--timeout 3600] [--json]
    python -m tools.status --endpoint https://llm.example.com [--api-key KEY] [--cacert PEM]
                           (or VLLM_ENDPOINT, VLLM_API_KEY)

HTTPS endpoints are verified against the system's CAs (or --cacert, e.g. a Kubernetes Secret's own CA): a
failed handshake or verification reads "certificate not ready". A new Google-managed certificate is
issued only once the domain's DNS record points at the load balancer, and up to 60 minutes after that;
ACM issues once its validation record resolves. --wait keeps polling through both.

With --stack: the service row and one row per replica (machine or pod) as its platform reports it, read
with the platform's client library and your credentials for it (google-cloud-compute and Application
Default Credentials, boto3 and its usual chain, the kubernetes client and your kubeconfig; pip install -r
requirements.txt -r requirements-tools.txt).
  REPLICAS  READY n/desired
  SCALE     the replicas there are now against the desired count the platform converges on (a group's
            target size or desired capacity, a workload's spec.replicas: the autoscaler's choice between
            the stack's bounds, or the fixed vllm:replicas), e.g. "2 -> 3 (autoscaled 1-4)"
  per replica: ID, NAME, IP, LAUNCHED, RESOURCES, ZONE, STATUS (PROVISIONING, STARTING, READY, NOT_READY,
            FAILED, PREEMPTED, SHUTTING_DOWN); a VM's start shows the phase its health agent published,
            e.g. "STARTING (weights 41%)", and --json each replica's phase and phaseTimings; with vllm:canary
            also REVISION, the slot (1, 2) of its revision
Ready means every check passed and READY n/n, n the desired count.

Three checks, in order; a failed check skips the ones after it:
  /health               GET without the key: the engine is up (vLLM answers 200 once the weights are loaded)
  /v1/models            GET with the key: the API answers, the key is right, the served names are listed
  /v1/chat/completions  a one-token completion (SkyServe's readiness probe): the model generates

Exit codes:
  0  ready: every check passed (and, with --stack, every replica READY)
  1  not ready: a check failed
  2  usage or configuration error: no endpoint given, no pulumi CLI, unreadable stack outputs
  3  timed out: --wait gave up before the endpoint became ready
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import requests

from components.observe import (
    PREEMPTED,
    SERVE,
    SHUTTING_DOWN,
    ListError,
    Replica,
    ReplicaSource,
    age,
    ready_count,
    serving,
)
from tools.endpoint import error_detail, redact, transport_failure
from tools.stack import (
    ConfigError,
    Target,
    add_target_options,
    desired_replicas,
    list_replicas,
    resolve_target,
    tool_parser,
)
from tools.table import columns

EXIT_READY = 0
EXIT_NOT_READY = 1
EXIT_CONFIG = 2
EXIT_TIMEOUT = 3

HEALTH = "/health"
MODELS = "/v1/models"
COMPLETION = "/v1/chat/completions"
#: SkyServe's readiness probe for vLLM: one generated token proves the model answers, at the least cost.
PROBE_MESSAGES = ({"role": "user", "content": "Hello! What is your name?"},)

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
#: SkyPilot's vLLM recipe gives its probe 60 s: a first completion may queue behind a full batch.
COMPLETION_TIMEOUT_SECONDS = 60.0
#: The least a request of the last look before a --wait deadline gets: a look that started in time gets to
#: hear its answer on a loaded machine, so the report names the real blocker rather than a timeout. The
#: wait may run this much past its deadline.
LAST_LOOK_SECONDS = 2.0
#: GCP's longest autohealing delay: a large checkpoint can take most of an hour to download and load.
DEFAULT_WAIT_SECONDS = 3600.0
DEFAULT_INTERVAL_SECONDS = 10.0  # SkyServe probes every 10 s


@dataclass(frozen=True)
class Report:
    """One look at the service: the endpoint's checks and, for a stack, its replicas."""

    results: list[CheckResult]
    replicas: list[Replica] | None = None  # None: not asked (--endpoint) or not answered (replica_error)
    replica_error: str | None = None
    expected: int | None = None  # replicas the platform is converging on (its autoscaler's choice, if any)
    bounds: tuple[int, int] | None = None  # the autoscaler's (min, max); None: a fixed count

    @property
    def ready(self) -> bool:
        checks = all(result.passed for result in self.results)
        if self.expected is None or self.replicas is None:
            return checks
        return checks and ready_count(self.replicas) >= self.expected

    def blocker(self) -> str:
        """What stands between the service and ready: the first failed check, else the replicas."""
        if not all(result.passed for result in self.results):
            return first_failure(self.results)
        return f"READY {ready_count(self.replicas or [])}/{self.expected} replicas"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str  # OK | FAIL | SKIP
    http_status: int | None
    latency_ms: int | None
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == "OK"

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "httpStatus": self.http_status,
            "latencyMs": self.latency_ms,
            "detail": self.detail,
        }


#: The longest --timeout or --interval: a day (a first load is sized in minutes, docs/cold-start.md); also
#: keeps nan and inf out (every comparison with nan is false).
MAX_WAIT_SECONDS = 86400


def look(
    session: requests.Session,
    target: Target,
    time_left: float | None = None,
    replicas: Callable[[ReplicaSource], list[Replica]] = list_replicas,
    desired: Callable[[ReplicaSource], int] = desired_replicas,
) -> Report:
    """Probe the endpoint and, for a stack, list its replicas and how many it should have."""
    results = run_checks(session, target, time_left)
    source = target.replica_source
    if source is None:
        return Report(results)
    try:
        return Report(results, replicas(source), None, desired(source), source.bounds)
    except ListError as error:
        return Report(results, None, str(error), source.replicas, source.bounds)


def _send(check: str, send: Callable[[], requests.Response]) -> tuple[requests.Response | None, CheckResult]:
    """Time one request; a transport failure becomes a FAIL result, a response is for the caller to judge."""
    started = time.monotonic()
    try:
        response = send()
    except requests.RequestException as error:
        return None, CheckResult(check, "FAIL", None, _ms_since(started), transport_failure(error))
    return response, CheckResult(check, "OK", response.status_code, _ms_since(started), "")


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _judge(result: CheckResult, response: requests.Response, ok: bool, detail: str) -> CheckResult:
    return CheckResult(result.check, "OK" if ok else "FAIL", response.status_code, result.latency_ms, detail)


def check_health(session: requests.Session, target: Target, timeout: tuple[float, float]) -> CheckResult:
    response, result = _send(
        HEALTH, lambda: session.get(f"{target.endpoint}{HEALTH}", timeout=timeout, verify=target.verify)
    )
    if response is None:
        return result
    ok = response.status_code == 200
    return _judge(result, response, ok, "" if ok else error_detail(response, target.api_key))


def check_models(
    session: requests.Session, target: Target, headers: Mapping[str, str], timeout: tuple[float, float]
) -> tuple[CheckResult, list[str]]:
    url = f"{target.endpoint}{MODELS}"
    response, result = _send(
        MODELS, lambda: session.get(url, headers=headers, timeout=timeout, verify=target.verify)
    )
    if response is None:
        return result, []
    if response.status_code != 200:
        return _judge(result, response, False, error_detail(response, target.api_key)), []
    try:
        served = [str(model["id"]) for model in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        return _judge(result, response, False, "not an OpenAI model list"), []
    if not served:
        return _judge(result, response, False, "no models listed"), []
    return _judge(result, response, True, ", ".join(served)), served


def check_completion(
    session: requests.Session,
    target: Target,
    headers: Mapping[str, str],
    model: str,
    timeout: tuple[float, float],
) -> CheckResult:
    body = {"model": model, "messages": list(PROBE_MESSAGES), "max_tokens": 1}
    url = f"{target.endpoint}{COMPLETION}"
    response, result = _send(
        COMPLETION,
        lambda: session.post(url, json=body, headers=headers, timeout=timeout, verify=target.verify),
    )
    if response is None:
        return result
    ok = response.status_code == 200
    return _judge(result, response, ok, f"{model} answered" if ok else error_detail(response, target.api_key))


def _timeouts(read_seconds: float, time_left: float | None) -> tuple[float, float]:
    """(connect, read) timeouts, never more than ``LAST_LOOK_SECONDS`` past the --wait deadline."""
    if time_left is None:
        return CONNECT_TIMEOUT_SECONDS, read_seconds
    limit = max(time_left, LAST_LOOK_SECONDS)
    return min(CONNECT_TIMEOUT_SECONDS, limit), min(read_seconds, limit)


def _skipped(check: str, after: str) -> CheckResult:
    return CheckResult(check, "SKIP", None, None, f"{after} failed")


def run_checks(
    session: requests.Session, target: Target, time_left: float | None = None
) -> list[CheckResult]:
    health = check_health(session, target, _timeouts(READ_TIMEOUT_SECONDS, time_left))
    if not health.passed:
        return [health, _skipped(MODELS, HEALTH), _skipped(COMPLETION, HEALTH)]
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    models, served = check_models(session, target, headers, _timeouts(READ_TIMEOUT_SECONDS, time_left))
    if not models.passed:
        return [health, models, _skipped(COMPLETION, MODELS)]
    model = target.model if target.model in served else served[0]
    timeout = _timeouts(COMPLETION_TIMEOUT_SECONDS, time_left)
    return [health, models, check_completion(session, target, headers, model, timeout)]


def first_failure(results: Sequence[CheckResult]) -> str:
    """'/health 503' or '/health connection failed': what stands between the endpoint and ready."""
    failed = next(result for result in results if not result.passed)
    return f"{failed.check} {failed.http_status or failed.detail}"


def wait_until_ready(
    probe: Callable[[float], Report],
    endpoint: str,
    timeout: float,
    interval: float,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Report, bool]:
    """Look until the service is ready or ``timeout`` seconds pass; returns the last report and timed-out."""
    started = clock()
    while True:
        report = probe(timeout - (clock() - started))
        if report.ready:
            return report, False
        elapsed = clock() - started
        if elapsed >= timeout:
            return report, True
        progress(f"waiting for {endpoint}: {report.blocker()} ({elapsed:.0f} s of {timeout:.0f} s)")
        sleep(min(interval, timeout - elapsed))


def service_status(report: Report) -> str:
    """SkyServe's service statuses that a stack can be in: READY, NO_REPLICA, NOT_READY."""
    if report.ready:
        return "READY"
    if report.replicas is not None and ready_count(report.replicas) == 0:
        return "NO_REPLICA"
    return "NOT_READY"


def current_count(replicas: Sequence[Replica]) -> int:
    """Replicas that exist and are not leaving: what the platform has now, serving or on the way."""
    return sum(1 for replica in serving(replicas) if replica.status not in (SHUTTING_DOWN, PREEMPTED))


def scale(report: Report) -> str:
    """'2 -> 3 (autoscaled 1-4)': the replicas there are now against what the platform is converging on."""
    if report.replicas is None:
        return "-"
    bounds = "fixed" if report.bounds is None else f"autoscaled {report.bounds[0]}-{report.bounds[1]}"
    current = current_count(report.replicas)
    now = f"{current}" if current == report.expected else f"{current} -> {report.expected}"
    return f"{now} ({bounds})"


def render_replicas(target: Target, report: Report) -> list[str]:
    """SkyServe's two tables: the service row, then one row per replica."""
    replicas = report.replicas or []
    count = "-" if report.replicas is None else f"{ready_count(replicas)}/{report.expected}"
    lines = ["Services"]
    lines += columns(
        [
            ("NAME", "STATUS", "REPLICAS", "SCALE", "ENDPOINT"),
            (target.stack or "-", service_status(report), count, scale(report), target.endpoint),
        ]
    )
    lines += ["", "Service Replicas"]
    if report.replicas is None:
        return [*lines, f"replicas unavailable: {report.replica_error}", ""]
    multi_node = any(replica.role != SERVE for replica in replicas)
    # With vllm:canary, each replica's revision slot, as SkyServe's VERSION column.
    revisions = any(replica.revision for replica in replicas)
    rows = [
        (
            "ID",
            *(("REVISION",) if revisions else ()),
            *(("ROLE",) if multi_node else ()),
            *("NAME", "IP", "LAUNCHED", "RESOURCES", "ZONE", "STATUS"),
        )
    ]
    for replica in replicas:
        status = f"{replica.status} ({replica.detail})" if replica.detail else replica.status
        role = ((replica.revision or "-",) if revisions else ()) + ((replica.role,) if multi_node else ())
        zone = replica.zone or "-"
        cells = (
            replica.name,
            replica.ip or "-",
            age(replica.launched),
            replica.resources or "-",
            zone,
            status,
        )
        rows.append((replica.id, *role, *cells))
    if not replicas:
        return [*lines, "no replicas yet", ""]
    return [*lines, *columns(rows), ""]


def render_table(target: Target, report: Report, timed_out: bool) -> str:
    rows = [("CHECK", "STATUS", "LATENCY", "DETAIL")]
    for result in report.results:
        status = f"{result.status} {result.http_status}" if result.http_status else result.status
        latency = "-" if result.latency_ms is None else f"{result.latency_ms} ms"
        rows.append((result.check, status, latency, result.detail))
    lines = render_replicas(target, report) if target.replica_source is not None else []
    lines += [f"Endpoint: {target.endpoint}", "", *columns(rows, right={2})]
    if report.ready:
        lines += ["", "READY"]
    else:
        verdict = "TIMED OUT waiting" if timed_out else "NOT READY"
        lines += ["", f"{verdict}: {report.blocker()}"]
    return "\n".join(lines)


def render_json(target: Target, report: Report, timed_out: bool) -> str:
    document: dict[str, Any] = {
        "endpoint": target.endpoint,
        "ready": report.ready,
        "timedOut": timed_out,
        "checks": [result.as_json() for result in report.results],
    }
    if target.replica_source is not None:
        document["service"] = {
            "name": target.stack,
            "status": service_status(report),
            "readyReplicas": None if report.replicas is None else ready_count(report.replicas),
            "currentReplicas": None if report.replicas is None else current_count(report.replicas),
            "desiredReplicas": None if report.replicas is None else report.expected,
            "minReplicas": None if report.bounds is None else report.bounds[0],
            "maxReplicas": None if report.bounds is None else report.bounds[1],
        }
        document["replicas"] = None if report.replicas is None else [r.as_json() for r in report.replicas]
        document["replicaError"] = report.replica_error
    return json.dumps(document, indent=2)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = tool_parser("python -m tools.status", __doc__)
    add_target_options(
        parser, "endpoint, apiKey, model and replicaSource", "the system's, or REQUESTS_CA_BUNDLE"
    )
    parser.add_argument("--wait", action="store_true", help="poll until ready or --timeout")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help="seconds --wait polls (default: %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_SECONDS,
        help="seconds between --wait polls (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.stack and args.api_key:
        parser.error("--api-key goes with --endpoint; --stack reads the key from the stack's outputs")
    if args.cacert and not os.path.isfile(args.cacert):
        parser.error(f"--cacert {args.cacert}: no such file")
    if not all(0 < seconds <= MAX_WAIT_SECONDS for seconds in (args.timeout, args.interval)):
        parser.error(
            f"--timeout and --interval take a positive number of seconds, at most {MAX_WAIT_SECONDS}"
        )
    return args


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] = os.environ,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    args = parse_args(argv)
    try:
        target = dataclasses.replace(resolve_target(args, env), cacert=args.cacert)
    except ConfigError as error:
        print(f"error: {error}", file=err)
        return EXIT_CONFIG
    with requests.Session() as session:
        if args.wait:
            report, timed_out = wait_until_ready(
                lambda time_left: look(session, target, time_left),
                target.endpoint,
                args.timeout,
                args.interval,
                progress=lambda line: print(redact(line, target.api_key), file=err, flush=True),
            )
        else:
            report, timed_out = look(session, target), False
    render = render_json if args.json else render_table
    print(redact(render(target, report, timed_out), target.api_key), file=out)
    if report.ready:
        return EXIT_READY
    return EXIT_TIMEOUT if timed_out else EXIT_NOT_READY


if __name__ == "__main__":
    sys.exit(main())
