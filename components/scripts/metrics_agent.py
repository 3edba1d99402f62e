#!/usr/bin/env python3
"""Publishes a vLLM replica's Prometheus metrics to CloudWatch (AWS VMs). Python 3 standard library and the
AWS CLI only (the DLAMI ships both); installed at boot as the ``vllm-metrics`` systemd unit
(components/aws/vm_hooks.sh) on the machines that serve (``serve``, ``ray-head``).

Why not the CloudWatch agent: its Prometheus support drops histograms ("Prometheus metric type conversion
by the CloudWatch agent"), and its EMF path turns them into statistic sets (min, max, sum, count), from
which CloudWatch computes no percentiles; time to first token is a histogram. PutMetricData's ``Values``
and ``Counts`` arrays are raw data CloudWatch computes percentiles from (PutMetricData, CloudWatch API
reference), so this agent sends each histogram's per-interval bucket counts that way.

Every ``--interval`` seconds, on the interval's boundary, it reads ``--url`` (vLLM's /metrics on the host:
it stays private) and sends, stamped with that boundary, one PutMetricData call to ``--namespace`` with
the metrics of ``PUBLISHED``, each read as its kind says:

  - ``counter``: the series' sum over every label set (engines, models, finish reasons), as the increase
    since the last read (a decrease is a restarted vLLM: its whole value is the increase);
  - ``gauge-sum`` / ``gauge-max``: the sum / the largest over the label sets, as read;
  - ``histogram``: the increase of each bucket (``<series>_bucket``) since the last read, as ``Values``
    (each bucket's upper bound; the ``+Inf`` bucket at the largest finite one, as PromQL's
    histogram_quantile does) and ``Counts``: percentiles at the buckets' resolution, never below the truth.

Metrics carry no dimension: every replica of the stack writes the same metrics, so CloudWatch's statistics
are the service's (Sum over replicas, percentiles over every request), but for one per replica (below).
Reads stamped on the boundary make ``SampleCount`` of a gauge per interval the number of replicas that
answered. The first read only sets the counters' baseline. A failed read or call is logged and skipped: the
next one catches up.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone

KINDS = ("counter", "gauge-sum", "gauge-max", "histogram")
SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[str, list[tuple[dict[str, str], float]]]


def log(message: str) -> None:
    print(f"vllm-metrics: {message}", flush=True)


@dataclass(frozen=True)
class Metric:
    """``name`` in CloudWatch, read from vLLM's ``series`` (a histogram's base name: the agent reads its
    ``_bucket`` series) as ``kind`` (one of ``KINDS``), with CloudWatch ``unit``."""

    kind: str
    name: str
    series: str
    unit: str


REQUESTS_FINISHED = Metric("counter", "RequestsFinished", "vllm:request_success_total", "Count")
PROMPT_TOKENS = Metric("counter", "PromptTokens", "vllm:prompt_tokens_total", "Count")
GENERATION_TOKENS = Metric("counter", "GenerationTokens", "vllm:generation_tokens_total", "Count")
REQUESTS_WAITING = Metric("gauge-sum", "RequestsWaiting", "vllm:num_requests_waiting", "Count")
REQUESTS_RUNNING = Metric("gauge-sum", "RequestsRunning", "vllm:num_requests_running", "Count")
#: The busiest engine's share of its KV cache, 0 to 1.
KV_CACHE_USAGE = Metric("gauge-max", "KvCacheUsage", "vllm:kv_cache_usage_perc", "None")
#: Prompt tokens each prefix-cache lookup asked for, and those it found cached (vLLM counts both in tokens).
PREFIX_CACHE_QUERIES = Metric("counter", "PrefixCacheQueries", "vllm:prefix_cache_queries_total", "Count")
PREFIX_CACHE_HITS = Metric("counter", "PrefixCacheHits", "vllm:prefix_cache_hits_total", "Count")
#: Per replica (dimension InstanceId, from --instance-id; none without): the interval's prefix-cache hits
#: over queries, in percent, as Values weighted by the queries as Counts, so that its Average over any period
#: is the replica's hits over its queries. One metric per replica, sent only in an interval with queries.
PREFIX_CACHE_HIT_RATE, INSTANCE_DIMENSION = "PrefixCacheHitRate", "InstanceId"
TIME_TO_FIRST_TOKEN = Metric("histogram", "TimeToFirstToken", "vllm:time_to_first_token_seconds", "Seconds")
#: What the agent sends: one table for the agent, the dashboard that charts it, the scaling policy that
#: reads it and the grant that lets it write (components/aws/metrics.py), rather than ~800 characters of
#: flags in every machine's user data, which EC2 limits to 16 KB.
PUBLISHED = (
    REQUESTS_FINISHED,
    PROMPT_TOKENS,
    GENERATION_TOKENS,
    REQUESTS_WAITING,
    REQUESTS_RUNNING,
    KV_CACHE_USAGE,
    TIME_TO_FIRST_TOKEN,
    PREFIX_CACHE_QUERIES,
    PREFIX_CACHE_HITS,
)


def parse_exposition(text: str) -> Samples:
    """Prometheus text exposition format: per sample name, its (labels, value) pairs."""
    samples: Samples = {}
    for line in text.splitlines():
        matched = SAMPLE.match(line)
        if matched is None:  # comments (# HELP, # TYPE) and blank lines
            continue
        name, labels, value = matched.groups()
        pairs = {
            key: raw.replace('\\"', '"').replace("\\\\", "\\") for key, raw in LABEL.findall(labels or "")
        }
        samples.setdefault(name, []).append((pairs, float(value)))
    return samples


def cumulative_buckets(samples: Samples, series: str) -> dict[float, float]:
    """A histogram's cumulative count per upper bound (``le``), summed over its label sets."""
    buckets: dict[float, float] = {}
    for labels, value in samples.get(f"{series}_bucket", []):
        if "le" in labels:
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    return buckets


def bucket_counts(now: dict[float, float], before: dict[float, float]) -> tuple[list[float], list[float]]:
    """``Values`` and ``Counts`` of the observations between two reads of a histogram: each bucket's new
    observations at its upper bound (``+Inf``'s at the largest finite bound); empty buckets left out."""
    increase = {bound: count - before.get(bound, 0.0) for bound, count in now.items()}
    if any(delta < 0 for delta in increase.values()):  # a restarted vLLM: everything it counted is new
        increase = dict(now)
    finite = [bound for bound in sorted(increase) if not math.isinf(bound)]
    counts: dict[float, float] = {}
    below = 0.0
    for bound in sorted(increase):
        observed = increase[bound] - below
        below = increase[bound]
        value = bound if not math.isinf(bound) else (finite[-1] if finite else 0.0)
        if observed > 0:
            counts[value] = counts.get(value, 0.0) + observed
    return list(counts), list(counts.values())


@dataclass
class Publisher:
    """Turns reads of /metrics into PutMetricData data, remembering the last read of each counter."""

    metrics: list[Metric]
    last_totals: dict[str, float] = field(default_factory=dict)
    last_buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    answering: bool | None = None  # whether the last read of /metrics succeeded (None: none yet)
    instance_id: str = ""  # this replica's: its prefix-cache hit rate is sent per replica

    def data(self, samples: Samples, stamp: str) -> list[dict]:
        data = []
        for metric in self.metrics:
            datum: dict = {"MetricName": metric.name, "Timestamp": stamp, "Unit": metric.unit}
            if metric.kind == "histogram":
                buckets = cumulative_buckets(samples, metric.series)
                before = self.last_buckets.get(metric.name)
                if buckets:
                    self.last_buckets[metric.name] = buckets
                if not buckets or before is None:
                    continue
                values, counts = bucket_counts(buckets, before)
                if not values:
                    continue
                datum.update(Values=values, Counts=counts)
            else:
                read = [value for _, value in samples.get(metric.series, []) if not math.isnan(value)]
                if not read:
                    continue
                if metric.kind == "counter":
                    total, before = sum(read), self.last_totals.get(metric.name)
                    self.last_totals[metric.name] = total
                    if before is None:
                        continue
                    datum["Value"] = total - before if total >= before else total
                else:
                    datum["Value"] = max(read) if metric.kind == "gauge-max" else sum(read)
            data.append(datum)
        sent = {datum["MetricName"]: datum.get("Value") for datum in data}
        queries, hits = sent.get(PREFIX_CACHE_QUERIES.name), sent.get(PREFIX_CACHE_HITS.name, 0)
        if self.instance_id and queries:
            dimensions = [{"Name": INSTANCE_DIMENSION, "Value": self.instance_id}]
            datum = {"MetricName": PREFIX_CACHE_HIT_RATE, "Timestamp": stamp, "Unit": "Percent"}
            data.append(
                {**datum, "Dimensions": dimensions, "Values": [100 * hits / queries], "Counts": [queries]}
            )
        return data


def scrape(url: str, timeout: float) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse_exposition(response.read().decode())


def put_metric_data(region: str, namespace: str, data: list[dict]) -> bool:
    command = ["aws", "cloudwatch", "put-metric-data", "--region", region, "--namespace", namespace]
    command += ["--metric-data", json.dumps(data)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        log(f"put-metric-data failed: {error}")
        return False
    if result.returncode != 0:
        log(f"put-metric-data failed ({result.returncode}): {result.stderr.strip()}")
    return result.returncode == 0


def step(options: argparse.Namespace, publisher: Publisher, boundary: float) -> int:
    """One read and one call; the number of data sent."""
    try:
        samples = scrape(options.url, options.timeout)
    except (OSError, ValueError) as error:
        if publisher.answering is not False:  # once, not at every read while the model loads
            log(f"cannot read {options.url}: {error}")
        publisher.answering = False
        return 0
    if not publisher.answering:
        log(f"reading {options.url}")
    publisher.answering = True
    stamp = datetime.fromtimestamp(boundary, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (3.10 has no UTC)
    data = publisher.data(samples, stamp)
    if data and put_metric_data(options.region, options.namespace, data):
        return len(data)
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Publishes vLLM's Prometheus metrics to CloudWatch")
    parser.add_argument("--namespace", required=True, help="the stack's CloudWatch namespace")
    parser.add_argument("--region", required=True)
    parser.add_argument("--url", default="http://127.0.0.1:8000/metrics", help="vLLM's /metrics")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between reads")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a read may take")
    parser.add_argument("--instance-id", default="", help="this replica's (its per-replica metric)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    options = parse(argv)
    publisher = Publisher(list(PUBLISHED), instance_id=options.instance_id)
    log(f"sending {len(PUBLISHED)} metrics to {options.namespace} every {options.interval:.0f} s")
    while True:
        time.sleep(options.interval - time.time() % options.interval)
        boundary = time.time() // options.interval * options.interval
        try:
            step(options, publisher, boundary)
        except Exception as error:  # one failed read must never stop the agent
            log(f"step failed: {error!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
