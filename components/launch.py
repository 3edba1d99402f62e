"""The vLLM launch spec shared by every platform: what runs, how secrets arrive, how health is judged.

Backends (a systemd unit on a VM, a container in a Pod) turn this into their own shape; none of them
builds a ``vllm serve`` command line of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components import platforms
from components.platforms import Storage
from components.service_spec import ServiceSpec

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
#: vLLM's own cache (``VLLM_CACHE_ROOT``, default ``~/.cache/vllm``, vllm/envs.py 0.33.0): torch.compile
#: artifacts under ``torch_compile_cache/``, each in a directory named by a hash of what shaped it.
VLLM_CACHE_DIR = "/root/.cache/vllm"

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

# Load-time model (seconds): boot + image pull, CUDA graph capture / torch.compile (fixed), then the weights'
# path: fetched onto the node's storage (from the Hub, or from the stack's bucket), uploaded to the bucket
# by the replica that fills it, and read from storage into GPU memory. Each rate is a sustained MB/s
# (10^6 bytes/s) with its source; the node's storage rates are its platform's (Platform.weight_storage).
BASE_STARTUP_SECONDS = 600
#: Hugging Face Hub downloads (Xet, HF_XET_HIGH_PERFORMANCE) on cloud GPU VMs: roughly 200-500 MB/s as
#: measured for this project's presets; the low end, since one NAT address serves the whole stack.
HUB_MBPS = 250
#: Object store to a VM in the same region, in parallel (gcloud storage sliced downloads; the AWS CLI's CRT
#: client). Conservative: a 10 Gbps NIC (g2-standard-4, g6.xlarge) carries 1,250 MB/s, the 8-GPU machines
#: 100-3,200 Gbps; GCS and S3 scale reads per prefix far beyond one VM.
BUCKET_MBPS = 1000
#: The budget of the Hub path on a network disk, per GB: download at HUB_MBPS plus reading back at
#: 1,000 MB/s (4 + 1 s), the figure the budgets used before they followed the path.
SECONDS_PER_WEIGHT_GB = 5
#: Without vllm:modelSizeGb, assume the weights fill 90% of the replica's GPU memory: they cannot be larger
#: and still serve, so the budget errs towards patience, never towards killing a replica mid-load.
GPU_MEMORY_WEIGHT_SHARE = 0.9
CPU_DEFAULT_WEIGHTS_GB = 2
#: How long a Ray group's head waits for its workers to boot and join before vLLM starts (then it exits
#: and is restarted to wait again): the fixed part of a machine's start. A multi-node head's health
#: budget adds it, since its vLLM only begins loading once the group is whole.
RAY_GROUP_WAIT_SECONDS = BASE_STARTUP_SECONDS

# The estimate is not the budget (issue 28). A starting replica is judged by its progress: on a VM the health
# agent (components/scripts/health_agent.py) keeps it healthy while its weights' bytes keep arriving, and
# calls it broken when they stop for STALL_SECONDS or when a phase outlasts its hard cap (``phase_caps``):
# the estimate's time for that phase with every rate WORST_CASE_FACTOR times slower.
#: How long a download may add no byte (less than 16 MiB) before the replica is replaced. The Hub's client
#: gives up on a silent read after 10 s (huggingface_hub HF_HUB_DOWNLOAD_TIMEOUT, its default; huggingface/
#: huggingface_hub#2253, read 2026-12-07) and retries, as gcloud storage and the AWS CLI do with backoff: a
#: transfer that moves nothing for ten minutes through all of that is hung, not slow. Ten minutes is also
#: about what a replacement spends on boot and image pull before its own download starts
#: (BASE_STARTUP_SECONDS), so waiting longer on a hung download costs more than replacing it.
STALL_SECONDS = 600
#: How much slower than estimated a phase may run before its cap ends it: the estimate's rates are typical
#: sustained ones, and measured starts have run 1.7x slower than assumed on the Hub (150 MB/s against 250,
#: issue 28) and several other rates are off by over 2x; four times covers those with room to spare, while a
#: hung download is caught by the stall window long before.
WORST_CASE_FACTOR = 4


@dataclass(frozen=True)
class PhaseCaps:
    """The longest each phase of a start may last, in seconds (the health agent's ``--caps``)."""

    start: int  # boot, driver, Docker, the image pull: until the weights arrive or vLLM's container runs
    weights: int  # the download (the Hub, the slowest source) or the bucket copy onto the node's storage
    #: from vLLM's container start: the read into GPU memory, compile, CUDA graphs, a Ray group's wait
    load: int

    @property
    def total(self) -> int:
        return self.start + self.weights + self.load

    def as_args(self) -> list[str]:
        """The health agent's ``--caps START WEIGHTS LOAD``."""
        return ["--caps", str(self.start), str(self.weights), str(self.load)]

    def as_output(self) -> dict[str, int]:
        return {"start": self.start, "weights": self.weights, "load": self.load}


def phase_caps(
    weights_gb: float,
    fixed_seconds: float,
    fetch_mbps: float,
    read_mbps: float,
    worst_factor: float = WORST_CASE_FACTOR,
) -> PhaseCaps:
    """Each phase's cap from the slowest rates: the fixed part (boot, image pull, compile) and the weights'
    fetch and read, each ``worst_factor`` times slower than assumed. The rates are inputs so that any rate
    table can feed them."""

    def slow(seconds: float) -> int:
        return math.ceil(seconds * worst_factor)

    read = weights_gb * 1000 / read_mbps
    return PhaseCaps(slow(fixed_seconds), slow(weights_gb * 1000 / fetch_mbps), slow(fixed_seconds + read))


@dataclass(frozen=True)
class ProbeTimings:
    """Health-check timings sized to the model (SkyServe's default initial delay is 1200 s)."""

    startup_seconds: int  # from boot to the first healthy /health of the stack's first replica
    #: the same for a replica that copies the weights from the stack's bucket (= startup_seconds on the Hub)
    cached_startup_seconds: int = 0
    #: how long the first replica takes to download the weights and fill the bucket or the shared cache
    #: (0 when every replica downloads its own)
    fill_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 5
    healthy_threshold: int = 1
    unhealthy_threshold: int = 3  # consecutive failures before a serving replica is replaced
    #: the hard caps of a start's phases (the estimate above is what the plan prints, not a limit)
    caps: PhaseCaps = PhaseCaps(0, 0, 0)


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


@dataclass(frozen=True)
class ColdStart:
    """One replica's time to ready along one path of the weights, and the figures it assumed."""

    path: str  # "hub", "hub, then fill the bucket", "bucket", "hub, into the shared cache", "shared cache"
    weights_gb: int
    storage: Storage
    fetch_mbps: int  # the source's rate, before the storage's write rate caps it
    fixed_seconds: int  # boot, image pull, CUDA graphs / compile, and a Ray group's wait for its nodes
    fetch_seconds: int  # from the Hub or the bucket onto the node's storage
    #: uploading to the bucket, by the replica that fills it, while its vLLM loads: not in its time to ready,
    #: but in how long the others wait for the bucket
    fill_seconds: int
    read_seconds: int  # from the node's storage into GPU memory

    @property
    def total_seconds(self) -> int:
        return self.fixed_seconds + self.fetch_seconds + self.read_seconds


def cold_starts(spec: ServiceSpec) -> tuple[ColdStart, ColdStart]:
    """The stack's first replica and every later one (replacement, scale-out, rollout): the same path on
    the Hub; with the bucket, the first downloads and fills it, the later ones copy from it; on a shared
    cache (``Storage.shared``), the first downloads into it and the later ones only read it."""
    storage = platforms.get(spec.cloud).weight_storage(spec)
    size = weights_gb(spec)
    fixed = BASE_STARTUP_SECONDS + (RAY_GROUP_WAIT_SECONDS if spec.nodes > 1 else 0)

    def seconds(mbps: int) -> int:
        return math.ceil(size * 1000 / mbps)

    def along(path: str, source_mbps: int, fill: int) -> ColdStart:
        fetch = seconds(min(source_mbps, storage.write_mbps))
        return ColdStart(path, size, storage, source_mbps, fixed, fetch, fill, seconds(storage.read_mbps))

    if storage.shared:
        first = along("hub, into the shared cache", HUB_MBPS, 0)
        return first, ColdStart("shared cache", size, storage, 0, fixed, 0, 0, first.read_seconds)
    if not spec.bucket_weight_cache:
        hub = along("hub", HUB_MBPS, 0)
        return hub, hub
    first = along("hub, then fill the bucket", HUB_MBPS, seconds(BUCKET_MBPS))
    if streams(spec):  # no disk write or read
        streamed = seconds(BUCKET_MBPS)
        return first, ColdStart("bucket, streamed", size, storage, BUCKET_MBPS, fixed, streamed, 0, 0)
    return first, along("bucket", BUCKET_MBPS, 0)


def time_to_ready(spec: ServiceSpec) -> dict:
    """The ``timeToReady`` stack output: the estimated seconds from boot to serving of the stack's first
    replica and of every later one, each by step, and the figures assumed (``tools.plan`` prints them)."""
    first, later = cold_starts(spec)

    def steps(cold: ColdStart) -> dict:
        return {
            "path": cold.path,
            "seconds": cold.total_seconds,
            "bootAndCompileSeconds": cold.fixed_seconds,
            "fetchSeconds": cold.fetch_seconds,
            "readSeconds": cold.read_seconds,
        }

    storage = first.storage
    return {
        "firstReplica": {**steps(first), "fillSecondsWhileLoading": first.fill_seconds},
        "laterReplicas": steps(later),
        "assumed": {
            "weightsGb": first.weights_gb,
            "hubMBps": HUB_MBPS,
            "bucketMBps": BUCKET_MBPS,
            "storage": storage.name,
            "storageWriteMBps": storage.write_mbps,
            "storageReadMBps": storage.read_mbps,
            "storageSource": storage.source,
        },
        "budget": {
            "stallSeconds": STALL_SECONDS,
            "worstCaseFactor": WORST_CASE_FACTOR,
            "capSeconds": health_caps(spec).as_output(),
        },
    }


def streams(spec: ServiceSpec) -> bool:
    """Whether later replicas stream the weights from the bucket (``vllm:weightCache stream``): single-node
    replicas only, as a Ray group's nodes copy (components/vm.py ``weight_stream_url``)."""
    return spec.weight_cache == "stream" and spec.nodes == 1


def health_caps(spec: ServiceSpec) -> PhaseCaps:
    """The caps of every replica's start: the slowest path's (the Hub's, onto the node's storage). A
    streaming replica reads its weights from the bucket within the load phase (no weights phase on its
    disk), so its load cap reads at the slower of the node's storage and the bucket."""
    first, _ = cold_starts(spec)
    fetch = min(HUB_MBPS, first.storage.write_mbps)
    read = min(first.storage.read_mbps, BUCKET_MBPS) if streams(spec) else first.storage.read_mbps
    return phase_caps(first.weights_gb, first.fixed_seconds, fetch, read)


def probe_timings(spec: ServiceSpec) -> ProbeTimings:
    first, later = cold_starts(spec)
    filled_once = spec.bucket_weight_cache or first.storage.shared
    return ProbeTimings(
        startup_seconds=first.total_seconds,
        cached_startup_seconds=later.total_seconds,
        fill_seconds=first.fetch_seconds + first.fill_seconds if filled_once else 0,
        caps=health_caps(spec),
    )


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
    args += streaming_args(spec)
    if spec.facts is not None and spec.pinned_revision is None and not spec.bucket_weight_cache:
        # vLLM downloads from the Hub itself: every replica loads the commit the spec's facts describe, not
        # whatever main is when it boots (with the bucket, its path is the local copy of that commit)
        args += ["--revision", spec.facts.revision]
    return (*args, *spec.extra_args)


def compile_cache_key(spec: ServiceSpec) -> str:
    """Where a stack keeps vLLM's compile cache (its bucket; Kubernetes' vllm:cacheClaim): by model commit,
    vLLM image, GPU type and parallelism, what the compiled code is specific to. vLLM's own hash inside
    (compile config, flags, the model's path) tells the rest apart."""
    parallel = f"tp{spec.gpu.count if spec.gpu else 0}-pp{spec.nodes}"
    gpu = spec.gpu.type if spec.gpu else "cpu"
    return f"{spec.model}/{spec.model_revision}/{spec.image.replace('/', '_')}/{gpu}-{parallel}"


def streaming_args(spec: ServiceSpec) -> list[str]:
    """``vllm:weightCache stream``: the Run:ai model streamer loader, which reads safetensors from a local
    directory (the replica that fills the bucket) and from ``gs://``/``s3://`` alike (vLLM 0.33.0,
    runai_streamer_loader.py). With several GPUs its ``distributed`` mode has each rank read a share of the
    files and broadcast it to the others (NVLink), instead of every rank reading every file from the bucket
    (``model_loader_extra_config`` keys: distributed, concurrency, memory_limit)."""
    if spec.weight_cache != "stream":
        return []
    args = ["--load-format", "runai_streamer"]
    if spec.gpus_per_replica > 1:
        args += ["--model-loader-extra-config", '{"distributed": true}']
    return args


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
