"""How much does a deployed endpoint deliver? Time to first token, latency and throughput under load.

    python -m tools.bench --stack gcp-h100 [--concurrency 1,4,16,64] [--requests 64] [--json FILE]
                          [--plot FILE.png [--compare OLD.json]]
    python -m tools.bench --endpoint https://llm.example.com --model NAME   (key in VLLM_API_KEY or --api-key)

One sweep level per concurrency: NVIDIA's aiperf (pinned in requirements-tools.txt) keeps that many
streaming requests in flight until --requests have been sent, with synthetic prompts of --input-tokens and
answers of --output-tokens (vLLM's ignore_eos, so every answer is that long). Per level: time to first token
(TTFT) p50/p95/p99, inter-token latency (ITL) p50/p95, end-to-end latency p50/p95, output tokens/s,
requests/s and the failed requests by HTTP status.

The knee is the highest level whose TTFT p95 is within twice the lowest level's (or within --ttft-slo-ms),
without errors: past it, requests queue. Its requests/s divided by the replicas that served the sweep is the
suggested vllm:targetQpsPerReplica; its concurrency per replica is the suggested vllm:targetQueuePerReplica
(requests running plus waiting per replica, vllm:num_requests_running + vllm:num_requests_waiting).

Prefix caching, and routing that keeps a conversation where its prefix is cached (docs/routing.md), show with
a multi-turn workload: --turns N makes each of the --requests a turn of a conversation that resends its
history, --shared-prefix-tokens N gives every conversation one system prompt, and --session-header NAME sends
each conversation's id in the header vllm:affinityHeader names.

aiperf counts prompt tokens with the model's tokenizer from the Hugging Face Hub (--tokenizer NAME|PATH,
or builtin: tiktoken's o200k_base); a gated model's tokenizer needs HF_TOKEN.

Exit codes: 0 measured every level; 1 a level failed to run; 2 usage or configuration error, or the
endpoint cannot be benchmarked (unreachable, key refused, model not served, no streaming); 130 Ctrl-C
(the levels measured so far are still reported and written).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import requests

from tools.endpoint import error_detail, redact, transport_failure
from tools.stack import ConfigError, Target, add_target_options, resolve_target, tool_parser
from tools.table import columns

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
#: aiperf reads the key from this variable through its config file's ${VAR} substitution: never in argv.
KEY_VARIABLE = "TOOLS_BENCH_API_KEY"
PREFLIGHT_TIMEOUT = (5.0, 60.0)
#: Per request: a long answer at high concurrency on a small GPU can take minutes.
REQUEST_TIMEOUT_SECONDS = 600.0
#: aiperf's own start-up (its services and the tokenizer) before the first request.
START_SECONDS = 300.0
#: How long Ctrl-C waits for aiperf to stop before it is killed.
STOP_SECONDS = 15.0
KNEE_TTFT_FACTOR = 2.0
BAR_WIDTH = 30


class BenchError(Exception):
    """The endpoint cannot be benchmarked, or a level could not run: one line for the user."""


@dataclass(frozen=True)
class Level:
    """One concurrency level's figures; None where no request succeeded."""

    concurrency: int
    requests: int
    errors: dict[str, int] = field(default_factory=dict)
    ttft_ms: dict[str, float | None] = field(default_factory=dict)  # p50, p95, p99
    itl_ms: dict[str, float | None] = field(default_factory=dict)  # p50, p95
    e2e_ms: dict[str, float | None] = field(default_factory=dict)  # p50, p95
    output_tokens_per_s: float | None = None
    requests_per_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "ttft_ms": self.ttft_ms,
            "itl_ms": self.itl_ms,
            "e2e_ms": self.e2e_ms,
            "output_tokens_per_s": self.output_tokens_per_s,
            "requests_per_s": self.requests_per_s,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Level:
        return cls(
            int(data["concurrency"]),
            int(data["requests"]),
            dict(data.get("errors") or {}),
            dict(data.get("ttft_ms") or {}),
            dict(data.get("itl_ms") or {}),
            dict(data.get("e2e_ms") or {}),
            data.get("output_tokens_per_s"),
            data.get("requests_per_s"),
        )


@dataclass(frozen=True)
class Sweep:
    endpoint: str
    model: str
    api: str
    input_tokens: int
    output_tokens: int
    levels: list[Level]
    interrupted: bool = False


# --- Before the load: one clear line for an endpoint that cannot be benchmarked ---------------------------


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def served_models(session: requests.Session, target: Target) -> list[str]:
    """The names /v1/models lists; BenchError for an endpoint that is down or refuses the key."""
    url = f"{target.endpoint}/v1/models"
    try:
        response = session.get(
            url, headers=_headers(target.api_key), timeout=PREFLIGHT_TIMEOUT, verify=target.verify
        )
    except requests.RequestException as error:
        raise BenchError(f"cannot reach {target.endpoint}: {transport_failure(error)}") from None
    if response.status_code != 200:
        raise BenchError(f"{url}: HTTP {response.status_code}: {error_detail(response, target.api_key)}")
    try:
        listed = response.json().get("data") or []
        return [str(item["id"]) for item in listed]
    except (ValueError, AttributeError, KeyError, TypeError):
        raise BenchError(f"{url} did not answer an OpenAI model list: is this a vLLM endpoint?") from None


def check_streaming(session: requests.Session, target: Target, model: str, api: str) -> None:
    """One two-token streaming request: TTFT and ITL exist only if the server streams."""
    body: dict[str, Any] = {"model": model, "max_tokens": 2, "stream": True}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": "Hello"}]
    else:
        body["prompt"] = "Hello"
    url = f"{target.endpoint}{PATHS[api]}"
    try:
        with session.post(
            url,
            json=body,
            headers=_headers(target.api_key),
            timeout=PREFLIGHT_TIMEOUT,
            verify=target.verify,
            stream=True,
        ) as response:
            if response.status_code != 200:
                detail = error_detail(response, target.api_key)
                raise BenchError(f"{url}: HTTP {response.status_code}: {detail}")
            kind = response.headers.get("Content-Type", "")
            if not kind.startswith("text/event-stream"):
                raise BenchError(
                    f"{url} answered a streaming request without streaming (Content-Type {kind or 'none'}): "
                    "time to first token and inter-token latency need a server that streams (stream: true)"
                )
    except requests.RequestException as error:
        raise BenchError(f"cannot reach {target.endpoint}: {transport_failure(error)}") from None


def preflight(session: requests.Session, target: Target, model: str | None, api: str) -> str:
    """The model to benchmark, once the endpoint answers, takes the key, serves it and streams."""
    served = served_models(session, target)
    if model is None:
        if not served:
            raise BenchError(f"{target.endpoint}/v1/models lists no model: pass --model")
        model = served[0]
    elif served and model not in served:
        raise BenchError(
            f"model {model!r} is not served by {target.endpoint}; it serves: {', '.join(served)}"
        )
    check_streaming(session, target, model, api)
    return model


# --- One level: aiperf in a subprocess ------------------------------------------------------------------


def aiperf_config(target: Target, model: str, args: argparse.Namespace, concurrency: int, out: Path) -> str:
    """aiperf's config file for one level (JSON is YAML). The key is a ${VAR} that aiperf substitutes."""
    endpoint: dict[str, Any] = {
        "url": target.endpoint,
        "type": args.api,
        "streaming": True,
        "timeout": REQUEST_TIMEOUT_SECONDS,
        # vLLM's counts: the client's tokenizer may not be the model's.
        "use_server_token_count": True,
        # Every answer as long as asked, as `vllm bench serve --ignore-eos`: a sweep of fixed shapes.
        "extra": {"ignore_eos": True},
    }
    if target.api_key:
        endpoint["api_key"] = "${" + KEY_VARIABLE + "}"
    if args.session_header:
        # aiperf sends each conversation's id in this header (its X-Correlation-ID by default).
        endpoint["session_header"] = args.session_header
    dataset: dict[str, Any] = {
        "type": "synthetic",
        "entries": args.requests,
        "prompts": {"isl": args.input_tokens, "osl": args.output_tokens},
    }
    if args.turns > 1:
        # Each turn resends the conversation so far, the live answers included (aiperf's default context
        # mode for synthetic conversations, deltas_without_responses).
        dataset["turns"] = args.turns
    if args.shared_prefix_tokens:
        # One system prompt of this many tokens, the same in every conversation.
        dataset["prefix_prompts"] = {"shared_system_length": args.shared_prefix_tokens}
    config = {
        "schemaVersion": "2.0",
        "benchmark": {
            "model": model,
            "endpoint": endpoint,
            "tokenizer": {"name": args.tokenizer or model},
            "dataset": dataset,
            "phases": {"type": "concurrency", "concurrency": concurrency, "requests": args.requests},
            "artifacts": {"dir": str(out)},
            # The load balancer serves the OpenAI paths only, and the GPUs are not on this machine.
            "gpuTelemetry": {"enabled": False},
            "serverMetrics": {"enabled": False},
        },
    }
    return json.dumps(config, indent=2)


def aiperf_command(env: Mapping[str, str]) -> list[str]:
    """aiperf from this interpreter's environment (the tools' virtualenv), else from PATH."""
    beside = Path(sys.executable).parent / "aiperf"
    found = str(beside) if beside.exists() else shutil.which("aiperf", path=env.get("PATH", ""))
    if not found:
        raise ConfigError(
            "aiperf is not installed: pip install -r requirements.txt -r requirements-tools.txt"
        )
    return [found]


def _records(out: Path) -> list[dict[str, Any]]:
    """aiperf's per-request records (profile_export.jsonl), as far as written."""
    path = out / "profile_export.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line still being written
    return records


def _count_lines(out: Path) -> int:
    path = out / "profile_export.jsonl"
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _stat(metrics: Mapping[str, Any], name: str, *keys: str) -> dict[str, float | None]:
    found = metrics.get(name) or {}
    return {key: _number(found.get(key)) for key in keys}


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return round(float(value), 2)
    return None


def read_level(out: Path, concurrency: int) -> Level:
    """A level from aiperf's summary (percentiles, throughputs) and its records (errors by HTTP status)."""
    records = _records(out)
    errors = Counter(
        str(record["error"].get("code") or record["error"].get("type") or "error")
        for record in records
        if isinstance(record.get("error"), dict)
    )
    summary_path = out / "profile_export_aiperf.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return Level(
        concurrency=concurrency,
        requests=len(records),
        errors=dict(sorted(errors.items())),
        ttft_ms=_stat(summary, "time_to_first_token", "p50", "p95", "p99"),
        itl_ms=_stat(summary, "inter_token_latency", "p50", "p95"),
        e2e_ms=_stat(summary, "request_latency", "p50", "p95"),
        output_tokens_per_s=_number((summary.get("output_token_throughput") or {}).get("avg")),
        requests_per_s=_number((summary.get("request_throughput") or {}).get("avg")),
    )


def _failure(out: Path, concurrency: int) -> str:
    """aiperf's own reason for a run that produced no record, from its log."""
    log = out / "logs" / "aiperf.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    reasons = [line for line in lines if " ERROR " in line]
    reason = reasons[-1].split(" ERROR ", 1)[1].strip() if reasons else "no result"
    return f"aiperf failed at concurrency {concurrency}: {reason[:300]} (log: {log})"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop aiperf and the services it started (its own process group): SIGINT, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


def run_level(
    target: Target,
    model: str,
    args: argparse.Namespace,
    concurrency: int,
    work: Path,
    env: Mapping[str, str],
    progress: Progress,
) -> Level:
    out = work / f"concurrency-{concurrency}"
    out.mkdir(parents=True, exist_ok=True)
    config = work / f"concurrency-{concurrency}.yaml"
    config.write_text(aiperf_config(target, model, args, concurrency, out))
    child_env = {**env, KEY_VARIABLE: target.api_key or ""}
    if args.tokenizer and Path(args.tokenizer).is_dir():
        # aiperf 0.13.0 (common/tokenizer.py, _load_from_hub) reads even a local directory as a Hub cache
        # entry when HF_HUB_OFFLINE is set, and fails; a local tokenizer needs no Hub anyway.
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            child_env.pop(name, None)
    if target.cacert:
        # aiperf's aiohttp verifies with Python's default context, which reads the CAs from SSL_CERT_FILE.
        child_env["SSL_CERT_FILE"] = target.cacert
    command = [*aiperf_command(env), "profile", "--config", str(config), "--ui-type", "none"]
    process: subprocess.Popen[bytes] | None = None
    with (out / "aiperf.out").open("wb") as output:
        try:
            # Its own session: the terminal's Ctrl-C reaches this process only, which stops aiperf in order.
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=work,
                start_new_session=True,
            )
            # Each of the level's users sends its requests in turn, each within aiperf's request timeout.
            rounds = math.ceil(args.requests / concurrency)
            deadline = time.monotonic() + START_SECONDS + rounds * REQUEST_TIMEOUT_SECONDS
            while process.poll() is None:
                progress.update(concurrency, _count_lines(out))
                if time.monotonic() > deadline:
                    _stop(process)
                    raise BenchError(f"aiperf did not finish concurrency {concurrency} in time (log: {out})")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.5)
        except BaseException:
            if process is not None:
                _stop(process)
            raise
    level = read_level(out, concurrency)
    progress.update(concurrency, level.requests)
    if level.requests == 0:
        raise BenchError(_failure(out, concurrency))
    return level


# --- The sweep, its knee, and what it shows -------------------------------------------------------------


class Progress:
    """One bar over the whole sweep on stderr: requests done of all levels' requests."""

    def __init__(self, levels: Sequence[int], per_level: int, err: TextIO) -> None:
        self.levels = list(levels)
        self.per_level = per_level
        self.err = err
        self.tty = err.isatty()
        self.shown = ""

    def update(self, concurrency: int, done: int) -> None:
        index = self.levels.index(concurrency)
        total = self.per_level * len(self.levels)
        finished = index * self.per_level + min(done, self.per_level)
        filled = BAR_WIDTH * finished // total
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {finished}/{total} requests, "
            f"level {index + 1}/{len(self.levels)} (concurrency {concurrency})"
        )
        if line == self.shown:
            return
        self.shown = line
        if self.tty:
            print(f"\r{line}", end="", file=self.err, flush=True)
        elif done >= self.per_level or done == 0:  # a log, not a terminal: a level's start and end
            print(line, file=self.err, flush=True)

    def close(self) -> None:
        if self.tty and self.shown:
            print(file=self.err, flush=True)


def knee(levels: Sequence[Level], ttft_slo_ms: float | None = None) -> Level | None:
    """The highest level without errors whose TTFT p95 stays within the SLO, or within twice the lowest
    level's: past it, requests wait in vLLM's queue and the first token comes later with each user."""
    clean = [
        level
        for level in sorted(levels, key=lambda level: level.concurrency)
        if not level.errors and level.ttft_ms.get("p95") is not None and level.requests_per_s
    ]
    if not clean:
        return None
    limit = ttft_slo_ms or KNEE_TTFT_FACTOR * (clean[0].ttft_ms["p95"] or 0.0)
    within = [level for level in clean if (level.ttft_ms["p95"] or 0.0) <= limit]
    return within[-1] if within else None


def suggestion(levels: Sequence[Level], replicas: int, ttft_slo_ms: float | None) -> str | None:
    found = knee(levels, ttft_slo_ms)
    if found is None or not found.requests_per_s:
        return None
    rule = (
        f"TTFT p95 within {ttft_slo_ms:g} ms"
        if ttft_slo_ms
        else f"TTFT p95 within {KNEE_TTFT_FACTOR:g}x the lowest level's"
    )
    qps = max(0.01, math.floor(found.requests_per_s / replicas * 100) / 100)
    queue = max(1, math.floor(found.concurrency / replicas))
    served = f"{found.requests_per_s:g} requests/s over {replicas} replica{'s' if replicas != 1 else ''}"
    advice = (
        f"knee at concurrency {found.concurrency} ({rule}, {served}): vllm:targetQpsPerReplica {qps:g}, "
        f"vllm:targetQueuePerReplica {queue} (requests running + waiting per replica)"
    )
    if found.concurrency == max(level.concurrency for level in levels):
        advice += "; the highest level measured, so the knee may lie above it: add higher levels"
    return advice


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def render_table(sweep: Sweep) -> str:
    header = ["CONC", "REQS", "TTFT p50", "p95", "p99", "ITL p50", "p95", "E2E p50", "p95", "TOK/S", "REQ/S"]
    rows = [[*header, "ERRORS"]]
    for level in sweep.levels:
        errors = ", ".join(f"{status}: {count}" for status, count in level.errors.items()) or "-"
        rows.append(
            [
                str(level.concurrency),
                str(level.requests),
                *(_cell(level.ttft_ms.get(key)) for key in ("p50", "p95", "p99")),
                *(_cell(level.itl_ms.get(key)) for key in ("p50", "p95")),
                *(_cell(level.e2e_ms.get(key)) for key in ("p50", "p95")),
                _cell(level.output_tokens_per_s),
                _cell(level.requests_per_s),
                errors,
            ]
        )
    title = (
        f"{sweep.model} at {sweep.endpoint}{PATHS[sweep.api]}, {sweep.input_tokens} tokens in, "
        f"{sweep.output_tokens} out, streaming (latencies in ms)"
    )
    return "\n".join([title, *columns(rows)])


def render_json(sweep: Sweep, advice: str | None) -> str:
    document = {
        "endpoint": sweep.endpoint,
        "model": sweep.model,
        "api": sweep.api,
        "input_tokens": sweep.input_tokens,
        "output_tokens": sweep.output_tokens,
        "interrupted": sweep.interrupted,
        "suggestion": advice,
        "levels": [level.as_json() for level in sweep.levels],
    }
    return json.dumps(document, indent=2) + "\n"


def load_levels(path: str) -> list[Level]:
    """An earlier --json file's levels, for --compare."""
    try:
        document = json.loads(Path(path).read_text())
        return [Level.from_json(level) for level in document["levels"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"--compare {path}: not a tools.bench --json file ({error})") from None


def plot(
    levels: Sequence[Level], path: str, title: str, compare: Sequence[Level] = (), compare_label: str = ""
) -> None:
    """Throughput (output tokens/s) against TTFT p95, one point per level labelled with its concurrency."""
    import matplotlib  # only --plot needs it, and it takes a second to import

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5))
    for series, label, style in ((levels, "this run", "o-"), (compare, compare_label, "s--")):
        points = [
            level
            for level in series
            if level.ttft_ms.get("p95") is not None and level.output_tokens_per_s is not None
        ]
        if not points:
            continue
        xs = [level.ttft_ms["p95"] or 0.0 for level in points]
        ys = [level.output_tokens_per_s or 0.0 for level in points]
        axes.plot(xs, ys, style, label=label)
        for level, x, y in zip(points, xs, ys, strict=True):
            axes.annotate(
                f"c={level.concurrency}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8
            )
    axes.set_xlabel("time to first token p95 (ms)")
    axes.set_ylabel("output tokens/s")
    axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


# --- Command line ---------------------------------------------------------------------------------------


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        levels = []
    if not levels or any(level < 1 for level in levels) or len(set(levels)) != len(levels):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a comma-separated list of distinct positive integers, e.g. 1,4,16,64"
        )
    return sorted(levels)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive integer")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = tool_parser("python -m tools.bench", __doc__)
    add_target_options(parser, "endpoint, apiKey and model", "the system's")
    parser.add_argument(
        "--model", help="served model name (default: the stack's model, else the first listed)"
    )
    parser.add_argument(
        "--api",
        choices=sorted(PATHS),
        default="chat",
        help="chat: /v1/chat/completions (default); completions: /v1/completions",
    )
    parser.add_argument(
        "--concurrency", type=_levels, default=[1, 4, 16, 64], help="levels, e.g. 1,4,16,64 (default)"
    )
    parser.add_argument(
        "--requests", type=_positive, default=64, help="requests per level (default: %(default)s)"
    )
    parser.add_argument(
        "--input-tokens", type=_positive, default=512, help="prompt tokens (default: %(default)s)"
    )
    parser.add_argument(
        "--output-tokens", type=_positive, default=128, help="tokens per answer (default: %(default)s)"
    )
    parser.add_argument(
        "--turns",
        type=_positive,
        default=1,
        help="turns per conversation, each resending the conversation so far (default: %(default)s)",
    )
    parser.add_argument(
        "--shared-prefix-tokens",
        type=_positive,
        help="a system prompt of this many tokens shared by every conversation (default: none)",
    )
    parser.add_argument(
        "--session-header",
        metavar="NAME",
        help="send each conversation's id in this header (vllm:affinityHeader; default: X-Correlation-ID)",
    )
    parser.add_argument(
        "--tokenizer", help="aiperf's tokenizer: a Hub name, a local path, or builtin (default: the model)"
    )
    parser.add_argument(
        "--replicas",
        type=_positive,
        help="replicas that serve the sweep, for the per-replica suggestion "
        "(default: a stack's fixed count, else 1)",
    )
    parser.add_argument(
        "--ttft-slo-ms",
        type=float,
        help="the knee: the highest level with TTFT p95 under this (default: 2x the lowest level's)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="draw output tokens/s against TTFT p95 per level")
    parser.add_argument(
        "--compare", metavar="OLD.json", help="with --plot: draw an earlier --json run beside this one"
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep aiperf's configs, logs and records in DIR (default: a temporary directory)",
    )
    args = parser.parse_args(argv)
    if args.stack and args.api_key:
        parser.error("--api-key goes with --endpoint; --stack reads the key from the stack's outputs")
    if args.cacert and not os.path.isfile(args.cacert):
        parser.error(f"--cacert {args.cacert}: no such file")
    if args.compare and not args.plot:
        parser.error("--compare draws beside this run's chart: add --plot FILE.png")
    if args.plot and not args.plot.lower().endswith(".png"):
        parser.error(f"--plot {args.plot}: a .png file name")
    if args.ttft_slo_ms is not None and not args.ttft_slo_ms > 0:
        parser.error(f"--ttft-slo-ms {args.ttft_slo_ms:g}: a positive number of milliseconds")
    return args


def stack_replicas(target: Target) -> int | None:
    """A stack's fixed replica count; None for an autoscaled one (its count moves) or an --endpoint."""
    source = target.replica_source
    return source.replicas if source is not None and source.bounds is None else None


def sweep_levels(
    target: Target, model: str, args: argparse.Namespace, env: Mapping[str, str], err: TextIO
) -> tuple[list[Level], bool, str | None]:
    """Run the levels in order; Ctrl-C or a failed level ends the sweep, keeping the levels measured."""
    levels: list[Level] = []
    progress = Progress(args.concurrency, args.requests, err)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tools-bench-"))
    interrupted, failure = False, None
    try:
        for concurrency in args.concurrency:
            levels.append(run_level(target, model, args, concurrency, work, env, progress))
    except KeyboardInterrupt:
        interrupted = True
    except (BenchError, ConfigError) as error:
        failure = str(error)  # names aiperf's log, kept for it
    progress.close()
    if not args.keep and failure is None:
        shutil.rmtree(work, ignore_errors=True)
    return levels, interrupted, failure


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] = os.environ,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    args = parse_args(argv)
    secret: str | None = None
    try:
        compare = load_levels(args.compare) if args.compare else []
        target = dataclasses.replace(resolve_target(args, env), cacert=args.cacert)
        secret = target.api_key
        aiperf_command(env)
        with requests.Session() as session:
            model = preflight(session, target, args.model or target.model, args.api)
    except (ConfigError, BenchError) as error:
        print(redact(f"error: {error}", secret), file=err)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    levels, interrupted, failure = sweep_levels(target, model, args, env, err)
    sweep = Sweep(
        target.endpoint, model, args.api, args.input_tokens, args.output_tokens, levels, interrupted
    )
    advice = suggestion(levels, args.replicas or stack_replicas(target) or 1, args.ttft_slo_ms)
    if levels:
        print(render_table(sweep), file=out)
    if advice:
        print(advice, file=out)
    if args.json:
        Path(args.json).write_text(render_json(sweep, advice))
    if args.plot and levels:
        title = f"{model}, {args.input_tokens} in / {args.output_tokens} out"
        plot(levels, args.plot, title, compare, Path(args.compare).stem if args.compare else "")
    if interrupted:
        print(f"interrupted: {len(levels)} of {len(args.concurrency)} levels measured", file=err)
        return EXIT_INTERRUPTED
    if failure:
        print(redact(f"error: {failure}", secret), file=err)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
