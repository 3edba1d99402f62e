"""The vLLM launch spec shared by every platform: what runs, how secrets arrive, how health is judged.

Backends (a systemd unit on a VM, a container in a Pod) turn this into their own shape; none of them
builds a ``vllm serve`` command line of its own.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from components import platforms, rates
from components.platforms import Feature
from components.rates import Storage
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

# Load-time model: the fixed steps of a start (boot and driver, image pull, vLLM's P2P check, torch.compile,
# CUDA graph capture and server start), then the weights' path: fetched onto the node's storage (from the
# Hub, or from the stack's bucket), uploaded to the bucket by the replica that fills it, and loaded from
# storage into GPU memory. Every figure is components/rates.py's, with its source. The *estimate* takes the
# expected figures; the *budget* (the hard caps the platforms and the health agent enforce) the slowest.

#: Without vllm:modelSizeGb, assume the weights fill 90% of the replica's GPU memory: they cannot be larger
#: and still serve, so the budget errs towards patience, never towards killing a replica mid-load.
GPU_MEMORY_WEIGHT_SHARE = 0.9
CPU_DEFAULT_WEIGHTS_GB = 2
#: How long a Ray group's head waits for its workers to boot and join before vLLM starts (then it exits
#: and is restarted to wait again): the slowest boot and image pull of a worker. A multi-node head's budget
#: adds it, since its vLLM only begins loading once the group is whole.
RAY_GROUP_WAIT_SECONDS = rates.BOOT_AND_DRIVER.slowest_seconds + rates.image_pull().slowest_seconds
#: The most replicas of one stack downloading from the Hub at once, the bucket's filler included: a
#: follower that would wait longer for the fill than its own download takes goes to the Hub only while
#: fewer than this many do (scripts/weight_cache.sh), so a scale-out does not multiply the stack's Hub
#: traffic through its one NAT address.
MAX_HUB_DOWNLOADERS = 4

HUB, BUCKET, SHARED = "hub", "bucket", "shared cache"

# The estimate is not the budget (issue 28). A starting replica is judged by its progress: on a VM the health
# agent (components/scripts/health_agent.py) keeps it healthy while its weights' bytes keep arriving, and
# calls it broken when they stop for STALL_SECONDS or when a phase outlasts its cap (``health_caps``): the
# budget's time for that phase, every rate and step at its slowest in components/rates.py.
#: How long a download may add no byte (less than 16 MiB) before the replica is replaced. The Hub's client
#: gives up on a silent read after 10 s (huggingface_hub HF_HUB_DOWNLOAD_TIMEOUT, its default; huggingface/
#: huggingface_hub#2253, read 2026-12-07) and retries, as gcloud storage and the AWS CLI do with backoff: a
#: transfer that moves nothing for ten minutes through all of that is hung, not slow. A replacement spends
#: 2.5 to 19 minutes on boot, driver and image pull before its own download starts (expected and slowest in
#: components/rates.py), so waiting much longer on a hung download costs more than replacing it.
STALL_SECONDS = 600


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


@dataclass(frozen=True)
class ProbeTimings:
    """Health-check budgets sized to the model, every figure at its slowest sourced rate (SkyServe's default
    initial delay is 1200 s): a start slower than these is broken, not slow. Only what merely expects a
    replica to serve (a rollout's wait, an autoscaler's warmup) takes ``expected_startup_seconds``."""

    startup_seconds: int  # from boot to the first healthy /health of the stack's first replica
    #: the same for a replica that copies the weights from the stack's bucket (= startup_seconds on the Hub)
    cached_startup_seconds: int = 0
    #: how long the first replica takes to download the weights and fill the bucket or the shared cache
    #: (0 when every replica downloads its own)
    fill_seconds: int = 0
    #: the fixed part of ``startup_seconds``: boot, image pull, vLLM's start (a Ray group's wait included)
    fixed_seconds: int = 0
    #: the estimate of ``startup_seconds``: the same start at the expected rates
    expected_startup_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 5
    healthy_threshold: int = 1
    unhealthy_threshold: int = 3  # consecutive failures before a serving replica is replaced
    #: the hard cap of each phase of a start (``health_caps``): the Hub path's budget, split by phase
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
    """One replica's time to ready along one path of the weights, expected or at the slowest rates."""

    path: str  # "hub", "hub, then fill the bucket", "bucket", "hub, into the shared cache", "shared cache"
    weights_gb: int
    storage: Storage
    fetch_mbps: int  # the source's rate into the node, its storage's write rate included (0: no fetch)
    prepare_seconds: int  # boot and driver, image pull: before the weights
    #: vLLM's start after its weights (and a Ray group's wait for its nodes), its compile cache's restore
    #: included where it has one
    start_seconds: int
    fetch_seconds: int  # from the Hub or the bucket onto the node's storage
    #: uploading to the bucket, by the replica that fills it, while its vLLM loads: not in its time to ready,
    #: but in how long the others wait for the bucket
    fill_seconds: int
    read_seconds: int  # from the node's storage into GPU memory
    #: the image pull's seconds that pass while the weights arrive (a bucket copy, which needs no image:
    #: vm_bootstrap.sh pulls beside it), so not added to the fetch's
    pull_overlap_seconds: int = 0
    #: restoring vLLM's compile cache before it starts (part of ``start_seconds``), on a path that has one;
    #: its torch.compile then takes rates.TORCH_COMPILE_FROM_CACHE, at the expected rates only
    compile_cache_seconds: int = 0

    @property
    def fixed_seconds(self) -> int:
        return self.prepare_seconds + self.start_seconds

    @property
    def total_seconds(self) -> int:
        return self.fixed_seconds + self.fetch_seconds + self.read_seconds - self.pull_overlap_seconds


def paths(spec: ServiceSpec) -> tuple[str, ...]:
    """The cache paths the stack's platform and storage allow, the stack's own first."""
    storage = platforms.get(spec.cloud).weight_storage(spec)
    if storage.shared:
        return (SHARED, HUB)
    chosen = BUCKET if spec.bucket_weight_cache else HUB
    bucket = platforms.get(spec.cloud).refuse_unsupported(Feature.WEIGHT_CACHE_BUCKET) is None
    return (chosen, *(p for p in (HUB, BUCKET) if p != chosen and (p == HUB or bucket)))


def cold_starts(
    spec: ServiceSpec, path: str | None = None, slowest: bool = False
) -> tuple[ColdStart, ColdStart]:
    """The stack's first replica and every later one (replacement, scale-out, rollout) along ``path`` (the
    stack's own by default), at the expected rates or the slowest: the same path on the Hub; with the
    bucket, the first downloads and fills it, the later ones copy from it (pulling the image meanwhile)
    and restore the compile cache the first saved; on a shared cache (``Storage.shared``), the first
    downloads into it and the later ones only read it, the compiled code too."""
    path = path or paths(spec)[0]
    storage = platforms.get(spec.cloud).weight_storage(spec)
    size = weights_gb(spec)
    machine = spec.offering.machine_type if spec.offering else None

    def mbps(*chain: rates.Rate) -> int:
        return min(r.slowest_mbps if slowest else r.expected_mbps for r in chain)

    def seconds(*chain: rates.Rate) -> int:
        return math.ceil(size * 1000 / mbps(*chain))

    def step(s: rates.Step) -> int:
        return s.slowest_seconds if slowest else s.expected_seconds

    pull = step(rates.image_pull())
    prepare = step(rates.BOOT_AND_DRIVER) + pull
    start = sum(step(s) for _, s in rates.vllm_start())
    if spec.nodes > 1:
        start += RAY_GROUP_WAIT_SECONDS if slowest else step(rates.RAY_JOIN)
    read = seconds(storage.read, rates.SAFETENSORS_LOAD)
    bucket = rates.bucket_to_vm(machine)

    def along(name: str, source: rates.Rate | None, fill: int, restore: int = 0) -> ColdStart:
        fetch = seconds(source, storage.write) if source else 0
        rate = mbps(source, storage.write) if source else 0
        vllm = start + compiled_from_cache(restore) if restore else start
        return ColdStart(name, size, storage, rate, prepare, vllm, fetch, fill, read, 0, restore)

    def compiled_from_cache(restore: int) -> int:
        """What a restored compile cache changes in vLLM's start: its restore, and torch.compile from the
        cache at the expected rates; a budget keeps the whole compilation (a miss compiles)."""
        cached = step(rates.TORCH_COMPILE) if slowest else rates.TORCH_COMPILE_FROM_CACHE.expected_seconds
        return restore + cached - step(rates.TORCH_COMPILE)

    cache_gb = rates.COMPILE_CACHE_GB_PER_GPU * spec.gpus_per_replica
    if path == SHARED:  # vLLM's cache root is on the claim too: a later pod reads the compiled code there,
        # within its start (a budget's whole compilation stands for a miss, which reads none of it)
        claim_read = 0 if slowest else math.ceil(cache_gb * 1000 / mbps(storage.read))
        return along("hub, into the shared cache", rates.HUB, 0), along("shared cache", None, 0, claim_read)
    if path == HUB:
        hub = along("hub", rates.HUB, 0)
        return hub, hub
    first = along("hub, then fill the bucket", rates.HUB, seconds(bucket, storage.read))
    # a single-node replica restores the compile cache the first saved to the bucket (a Ray group's nodes
    # keep theirs, components/vm.py compile_cache_env)
    restore = (
        step(rates.COMPILE_CACHE_RESTORE) + math.ceil(cache_gb * 1000 / mbps(bucket))
        if spec.nodes == 1
        else 0
    )
    if streams(spec):  # no disk write or read: vLLM reads the bucket straight into GPU memory
        read = seconds(bucket, rates.SAFETENSORS_LOAD)
        vllm = start + compiled_from_cache(restore)
        return first, ColdStart(
            "bucket, streamed", size, storage, mbps(bucket), prepare, vllm, 0, 0, read, 0, restore
        )
    later = along("bucket", bucket, 0, restore)
    # the copy needs no image, so vm_bootstrap.sh pulls it meanwhile: both write to the node's storage
    # (Docker's data root is there) and come through its NIC, which caps the bucket on the machines of
    # rates.NIC_GBPS (the others' NICs carry far more than both)
    nic_gbps = rates.NIC_GBPS.get(machine) if machine else None
    link = min(mbps(storage.write), nic_gbps * 125) if nic_gbps else mbps(storage.write)
    both = math.ceil((size + rates.VLLM_IMAGE_GB) * 1000 / link)
    overlapped = max(pull, later.fetch_seconds, both)
    return first, dataclasses.replace(later, pull_overlap_seconds=pull + later.fetch_seconds - overlapped)


def at_once(spec: ServiceSpec, path: str, replicas: int, slowest: bool = False) -> int:
    """Seconds until the last of ``replicas`` replicas starting together on a fresh stack serves. On the
    Hub each downloads its own. With the bucket the first fills it; up to MAX_HUB_DOWNLOADERS - 1 others
    download from the Hub meanwhile (waiting would take longer: the fill ends after the filler's own
    download), the rest wait for the fill and copy it. A shared cache's read rate is the volume's own, which
    the replicas reading it at once share."""
    first, later = cold_starts(spec, path, slowest)
    if path == HUB or replicas <= 1:
        return first.total_seconds
    if path == SHARED:
        return first.total_seconds + (replicas - 1) * later.read_seconds
    if replicas <= MAX_HUB_DOWNLOADERS:
        return first.total_seconds
    return first.total_seconds + first.fill_seconds + later.fetch_seconds


def time_to_ready(spec: ServiceSpec) -> dict:
    """The ``timeToReady`` stack output: the estimated seconds from boot to serving of the stack's first
    replica and of every later one, each by step; the budget (the slowest sourced rates); the same for each
    cache path the stack could take, with N replicas starting at once; and the figures assumed
    (``tools.plan`` prints them)."""
    first, later = cold_starts(spec)
    budget_first, budget_later = cold_starts(spec, slowest=True)
    replicas = spec.max_replicas

    def steps(cold: ColdStart) -> dict:
        return {
            "path": cold.path,
            "seconds": cold.total_seconds,
            "bootAndCompileSeconds": cold.fixed_seconds,
            "fetchSeconds": cold.fetch_seconds,
            "readSeconds": cold.read_seconds,
            "pullDuringFetchSeconds": cold.pull_overlap_seconds,
            "compileCacheSeconds": cold.compile_cache_seconds,
        }

    def along(path: str) -> dict:
        estimate, slowest = cold_starts(spec, path), cold_starts(spec, path, slowest=True)
        return {
            "path": path,
            "firstSeconds": estimate[0].total_seconds,
            "laterSeconds": estimate[1].total_seconds,
            "atOnceSeconds": at_once(spec, path, replicas),
            "firstBudgetSeconds": slowest[0].total_seconds,
            "laterBudgetSeconds": slowest[1].total_seconds,
            "atOnceBudgetSeconds": at_once(spec, path, replicas, slowest=True),
        }

    storage = first.storage
    machine = spec.offering.machine_type if spec.offering else None
    bucket = rates.bucket_to_vm(machine)
    return {
        "firstReplica": {**steps(first), "fillSecondsWhileLoading": first.fill_seconds},
        "laterReplicas": steps(later),
        "budget": {
            "firstReplica": steps(budget_first),
            "laterReplicas": steps(budget_later),
            "stallSeconds": STALL_SECONDS,
            "phaseCapSeconds": health_caps(spec).as_output(),
        },
        "paths": [along(path) for path in paths(spec)],
        "replicasAtOnce": replicas,
        "assumed": {
            "weightsGb": first.weights_gb,
            "hubMBps": rates.HUB.expected_mbps,
            "hubSlowestMBps": rates.HUB.slowest_mbps,
            "bucketMBps": bucket.expected_mbps,
            "bucketSlowestMBps": bucket.slowest_mbps,
            "loadMBps": rates.SAFETENSORS_LOAD.expected_mbps,
            "storage": storage.name,
            "storageWriteMBps": storage.write.expected_mbps,
            "storageReadMBps": storage.read.expected_mbps,
            "storageSlowestWriteMBps": storage.write.slowest_mbps,
            "storageSlowestReadMBps": storage.read.slowest_mbps,
            "storageSource": storage.source,
            "fixedSteps": [
                {"step": name, "seconds": step.expected_seconds, "slowestSeconds": step.slowest_seconds}
                for name, step in rates.fixed_steps()
            ],
        },
    }


def streams(spec: ServiceSpec) -> bool:
    """Whether later replicas stream the weights from the bucket (``vllm:weightCache stream``): single-node
    replicas only, as a Ray group's nodes copy (components/vm.py ``weight_stream_url``)."""
    return spec.weight_cache == "stream" and spec.nodes == 1


def health_caps(spec: ServiceSpec) -> PhaseCaps:
    """The caps of every replica's start, the health agent's: the budget of the slowest path (the Hub's,
    onto the node's storage) split by phase, every rate and step at its slowest in components/rates.py. A
    phase past its cap is broken, not slow; the caps add up to the Hub path's budget. A streaming replica
    reads its weights from the bucket within the load phase (no weights phase on its disk), so its load cap
    is the longer of the two reads."""
    hub, _ = cold_starts(spec, HUB, slowest=True)
    load = hub.start_seconds + hub.read_seconds
    if streams(spec):
        _, streamed = cold_starts(spec, BUCKET, slowest=True)
        load = max(load, streamed.start_seconds + streamed.read_seconds)
    return PhaseCaps(hub.prepare_seconds, hub.fetch_seconds, load)


def probe_timings(spec: ServiceSpec) -> ProbeTimings:
    """The budgets the platforms and the health agent enforce (the slowest sourced rates), and the
    first replica's estimate."""
    first, later = cold_starts(spec, slowest=True)
    filled_once = spec.bucket_weight_cache or first.storage.shared
    return ProbeTimings(
        startup_seconds=first.total_seconds,
        cached_startup_seconds=later.total_seconds,
        fill_seconds=first.fetch_seconds + first.fill_seconds if filled_once else 0,
        fixed_seconds=first.fixed_seconds,
        expected_startup_seconds=cold_starts(spec)[0].total_seconds,
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
