"""The vLLM launch spec shared by every backend: what runs, how secrets arrive, how health is judged.

Backends (a systemd unit on a VM, a container in a Pod) turn this into their own shape; none of them
builds a ``vllm serve`` command line of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.spec import ServiceSpec

PORT = 8000
HEALTH_PATH = "/health"
#: The only paths the load balancer routes to vLLM. ``--api-key`` guards ``/v1`` alone and leaves
#: ``/metrics``, ``/tokenize``, ``/invocations``, ``/pause`` and ``/update_weights`` open: those stay private.
PUBLIC_PATH_PREFIXES = ("/v1/",)
PUBLIC_EXACT_PATHS = (HEALTH_PATH,)

#: Environment variable names the secret store fills at boot (never literal values, never argv).
HF_TOKEN_ENV = "HF_TOKEN"
API_KEY_ENV = "VLLM_API_KEY"
HF_CACHE_DIR = "/root/.cache/huggingface"

#: The longest a load balancer in front of vLLM keeps an idle backend connection open: AWS's ALB idle
#: timeout (components/aws/load_balancer.py) and GCP's external Application Load Balancer, whose backend
#: keep-alive is a fixed 600 s (cloud.google.com/load-balancing/docs/https#timeouts_and_retries).
LOAD_BALANCER_IDLE_SECONDS = 600
#: vLLM closes idle HTTP connections after ``VLLM_HTTP_TIMEOUT_KEEP_ALIVE`` seconds (default 5, vllm/envs.py).
#: A load balancer that reuses a connection vLLM has just closed answers 502, so vLLM must keep it open
#: longer than any load balancer does.
KEEP_ALIVE_SECONDS = LOAD_BALANCER_IDLE_SECONDS + 20

#: Non-secret environment for every vLLM container.
STATIC_ENV = {
    "VLLM_NO_USAGE_STATS": "1",  # no telemetry from production servers
    "VLLM_HTTP_TIMEOUT_KEEP_ALIVE": str(KEEP_ALIVE_SECONDS),
    # huggingface_hub >= 1.0 (vLLM 0.33 needs >= 1.31) downloads through Xet and ignores
    # HF_HUB_ENABLE_HF_TRANSFER; this turns on Xet's parallel high-throughput mode
    # (huggingface_hub/constants.py: HF_XET_HIGH_PERFORMANCE).
    "HF_XET_HIGH_PERFORMANCE": "1",
}

# Load-time model (seconds): boot + image pull, then download and load of the weights, then CUDA graph
# capture / torch.compile. Downloads from the Hugging Face hub run at roughly 200-500 MB/s on cloud GPU
# VMs; 5 s per GB covers download at ~250 MB/s plus reading the weights into GPU memory.
BASE_STARTUP_SECONDS = 600
SECONDS_PER_WEIGHT_GB = 5
#: Without vllm:modelSizeGb, assume the weights fill 90% of the replica's GPU memory: they cannot be larger
#: and still serve, so the budget errs towards patience, never towards killing a replica mid-load.
GPU_MEMORY_WEIGHT_SHARE = 0.9
CPU_DEFAULT_WEIGHTS_GB = 2
#: How long a Ray group's head waits for its workers to boot and join before vLLM starts (then it exits
#: and is restarted to wait again): the fixed part of a machine's start. A multi-node head's health
#: budget adds it, since its vLLM only begins loading once the group is whole.
RAY_GROUP_WAIT_SECONDS = BASE_STARTUP_SECONDS


@dataclass(frozen=True)
class ProbeTimings:
    """Health-check timings sized to the model (SkyServe's default initial delay is 1200 s)."""

    startup_seconds: int  # from container start to the first healthy /health
    period_seconds: int = 10
    timeout_seconds: int = 5
    healthy_threshold: int = 1
    unhealthy_threshold: int = 3  # consecutive failures before a serving replica is replaced


@dataclass(frozen=True)
class LaunchSpec:
    command: tuple[str, ...]  # the program: ("vllm", "serve")
    args: tuple[str, ...]  # its arguments: model and flags; no secret ever
    env: dict[str, str]  # non-secret environment
    secret_env: tuple[str, ...]  # names filled from the secret store
    port: int
    health_path: str
    probes: ProbeTimings

    @property
    def argv(self) -> tuple[str, ...]:
        return self.command + self.args


def weights_gb(spec: ServiceSpec) -> int:
    """The size of the checkpoint a replica loads, or the largest one its GPUs could hold: vllm:modelSizeGb
    when set (it pins the budget), else the Hub's size of the model's commit (stable across runs, see
    components/model_facts.py), else the GPU-memory estimate."""
    if spec.model_size_gb is not None:
        return spec.model_size_gb
    if spec.facts is not None and spec.facts.weights_gb is not None:
        return spec.facts.weights_gb
    if spec.offering is None:
        return CPU_DEFAULT_WEIGHTS_GB
    return int(spec.offering.gpu_memory_gb * spec.nodes * GPU_MEMORY_WEIGHT_SHARE)


def probe_timings(spec: ServiceSpec) -> ProbeTimings:
    group_wait = RAY_GROUP_WAIT_SECONDS if spec.nodes > 1 else 0
    load = SECONDS_PER_WEIGHT_GB * weights_gb(spec)
    return ProbeTimings(startup_seconds=BASE_STARTUP_SECONDS + group_wait + load)


def vllm_args(spec: ServiceSpec) -> tuple[str, ...]:
    """``vllm serve`` arguments: tensor parallel inside a node, pipeline parallel across nodes."""
    args = [
        spec.model,
        "--served-model-name",
        spec.served_model_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
    ]
    if spec.gpu is not None:
        args += ["--tensor-parallel-size", str(spec.gpu.count)]
    if spec.nodes > 1:
        args += ["--pipeline-parallel-size", str(spec.nodes), "--distributed-executor-backend", "ray"]
    if spec.max_model_len is not None:
        args += ["--max-model-len", str(spec.max_model_len)]
    return (*args, *spec.extra_args)


def launch_spec(spec: ServiceSpec, has_hf_token: bool) -> LaunchSpec:
    return LaunchSpec(
        command=("vllm", "serve"),
        args=vllm_args(spec),
        env=dict(STATIC_ENV),
        secret_env=(API_KEY_ENV, HF_TOKEN_ENV) if has_hf_token else (API_KEY_ENV,),
        port=PORT,
        health_path=HEALTH_PATH,
        probes=probe_timings(spec),
    )
