"""vLLM's metrics in CloudWatch: what each serving machine's metrics agent (scripts/metrics_agent.py)
publishes, in the stack's own namespace. The dashboard (monitoring.py) charts these, the instance role
(identity.py) may write to this namespace only, and the boot script (vm.py) runs the agent with them: one
table, so the three cannot diverge.
"""

from __future__ import annotations

from dataclasses import dataclass

from components import vm
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: Seconds between two reads of /metrics: CloudWatch's standard resolution (PutMetricData's
#: StorageResolution 60), the dashboard's period.
INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class PublishedMetric:
    """``name`` in CloudWatch, read from vLLM's ``series`` (a histogram's base name: the agent reads its
    ``_bucket`` series) as ``kind`` (scripts/metrics_agent.py), with CloudWatch ``unit``."""

    name: str
    kind: str
    series: str
    unit: str

    def agent_flag(self) -> list[str]:
        return ["--metric", self.kind, self.name, self.series, self.unit]


REQUESTS_FINISHED = PublishedMetric("RequestsFinished", "counter", "vllm:request_success_total", "Count")
PROMPT_TOKENS = PublishedMetric("PromptTokens", "counter", "vllm:prompt_tokens_total", "Count")
GENERATION_TOKENS = PublishedMetric("GenerationTokens", "counter", "vllm:generation_tokens_total", "Count")
REQUESTS_WAITING = PublishedMetric("RequestsWaiting", "gauge-sum", "vllm:num_requests_waiting", "Count")
REQUESTS_RUNNING = PublishedMetric("RequestsRunning", "gauge-sum", "vllm:num_requests_running", "Count")
#: The busiest engine's share of its KV cache, 0 to 1.
KV_CACHE_USAGE = PublishedMetric("KvCacheUsage", "gauge-max", "vllm:kv_cache_usage_perc", "None")
#: Prompt tokens each prefix-cache lookup asked for, and those it found cached (vLLM counts both in tokens).
PREFIX_CACHE_QUERIES = PublishedMetric(
    "PrefixCacheQueries", "counter", "vllm:prefix_cache_queries_total", "Count"
)
PREFIX_CACHE_HITS = PublishedMetric("PrefixCacheHits", "counter", "vllm:prefix_cache_hits_total", "Count")
TIME_TO_FIRST_TOKEN = PublishedMetric(
    "TimeToFirstToken", "histogram", "vllm:time_to_first_token_seconds", "Seconds"
)
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


def namespace(spec: ServiceSpec) -> str:
    """The stack's CloudWatch namespace (1-255 characters; ``AWS/`` is reserved to AWS services:
    PutMetricData, CloudWatch API reference); ``spec.name`` is at most 40 of ``[a-z0-9-]``."""
    return f"vLLM/{spec.name}"


def agent_args(spec: ServiceSpec, launch: LaunchSpec) -> list[str]:
    """``metrics_agent.py``'s flags on this stack's machines: vLLM's /metrics on the host itself."""
    args = ["--namespace", namespace(spec), "--region", vm.vm_region(spec)]
    args += ["--url", f"http://127.0.0.1:{launch.port}/metrics", "--interval", str(INTERVAL_SECONDS)]
    for metric in PUBLISHED:
        args += metric.agent_flag()
    return args
