"""The vLLM pod shared by ``ReplicaGroup`` (Deployment) and ``RayReplicaGroup`` (LeaderWorkerSet) templates.

Everything the pod runs comes from the shared launch spec (``components/launch.py``): argv, plain
environment, the names of the secret variables (filled by ``secretKeyRef`` from the stack's Secret, never
as literal values), the port and the ``/health`` probe budget.

Requests (per pod): ``vllm:cpu`` / ``vllm:memoryGb`` when set. Otherwise, with GPUs, half of the
smallest catalog machine's vCPUs and memory per GPU of that type (GCP and AWS rows), times the GPU
count: an L4:1 pod asks 2 CPUs and 8 GiB, an H100:8 pod 64 CPUs and 936 GiB. Half, because the node
keeps a system reservation and runs DaemonSets (device plugin, DCGM, logging): a 4 vCPU / 16 GB L4 node
allocates about 3.9 CPUs and 13 GiB to pods. Without GPUs (a laptop cluster), 2 CPUs and memory for the
weights, the KV cache and the runtime. Memory limit = request (the OOM killer names this pod rather than
the node evicting its neighbours); no CPU limit (throttling a tokenizer helps nobody).

Shared cache (``vllm:cacheClaim``): one ReadWriteMany volume every pod mounts as its HF cache. An init
container of the same image fills it before vLLM starts (``fill_container``, scripts/hf_cache_fill.sh):
one pod downloads the model's commit from the Hub, the others wait for it and find the files. A pod
template has one fixed startup probe, so the fetch is taken out of it: vLLM's startup probe budgets the
read of the claim and the load alone (the launch spec's later-replica path), and whatever waits for a pod
to serve adds the fill's own bound (``start_budget_seconds``).

Progress, not a guess (issue 28), with the VMs' rule and values (launch.py STALL_SECONDS and health_caps,
health_agent.py PROGRESS_BYTES), judged by scripts/start_progress.py in the pod: the fill stops a download
whose bytes stop for the stall window and exits non-zero (the kubelet restarts it, the download resumes),
and a waiter takes over a fill that stopped; without the claim, vLLM downloads in its own container, which
a progress probe judges instead of a startup probe's fixed count (``health_probes``). The caps stay the
backstop.

Security context: vLLM's official images run as root and write their caches under ``/root``, so
``runAsNonRoot`` and a read-only root filesystem are not possible without a custom image. What is
restricted: no privilege escalation, every capability dropped (the CPU image keeps ``SYS_NICE``, which
vLLM's CPU backend needs to bind threads and memory to NUMA nodes, as its Docker instructions say), the
runtime's default seccomp profile, no service account token, and no Service environment variables
(Kubernetes would inject ``VLLM_*_PORT``-style variables that vLLM reads as its own settings).
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
from typing import Any

import pulumi

from components import catalog, platforms, scripts
from components.config import PROJECT, SpecError
from components.kubernetes import spot_pods, tls
from components.kubernetes.gpu_nodes import GPU_RESOURCE, GPU_TOLERATION, node_affinity
from components.kubernetes.settings import settings
from components.launch import (
    HF_CACHE_DIR,
    HF_TOKEN_ENV,
    STALL_SECONDS,
    STATIC_ENV,
    LaunchSpec,
    compile_cache_key,
    weights_gb,
)
from components.scripts.health_agent import PROGRESS_BYTES
from components.service_spec import ServiceSpec

CONTAINER = "vllm"
PORT_NAME = "http"
APP = "vllm"
#: The serving pods (single-node replicas, multi-node leaders): what the Service selects.
SERVER = "server"

#: Share of a catalog machine's per-GPU vCPUs and memory a pod requests (see the module docstring).
NODE_SHARE = 0.5
CPU_DEFAULT_CPUS = 2
#: Resident memory of a CPU-mode vLLM besides weights and KV cache: the API server and the engine core,
#: two Python processes with torch loaded.
CPU_RUNTIME_GB = 3
CPU_DEFAULT_KV_CACHE_GB = 2
#: /dev/shm per GPU: NCCL and vLLM's shared-memory broadcast between tensor-parallel workers (Docker's
#: 64 MB default breaks them). A tmpfs limit, not a reservation; production-stack's default is 20 GiB.
SHM_GB_PER_GPU = 2
CPU_SHM_GB = 1
#: Time to stop routing to a terminating pod before vLLM sees SIGTERM. Endpoint removal is asynchronous:
#: the EndpointSlice controller drops the pod, then every node's kube-proxy and, for load balancers that
#: target pod IPs (the AWS Load Balancer Controller's NLB in IP mode, GKE's NEGs), the cloud deregisters
#: it, which takes seconds to tens of seconds. Until then new requests may still arrive; vLLM, still
#: running, serves them. The pause is an exec of the image's /bin/sleep: the ``preStop.sleep`` action is
#: beta only from Kubernetes 1.30 (GA 1.34), older API servers reject it.
PRE_STOP_SECONDS = 30
#: The longest request a replica finishes once told to stop (rollout, scale-in, node drain): the VM
#: backends' promise, GCP's backend service timeout and connection draining of 3,600 s
#: (components/gcp/load_balancer.py), a long reasoning completion at ~10 tokens/s under load. vLLM aborts
#: every request in flight on SIGTERM unless ``--shutdown-timeout SECONDS`` (0 by default; vLLM 0.18+,
#: vllm-project/vllm#36666): then it refuses new requests and waits up to SECONDS for those it has.
LONGEST_REQUEST_SECONDS = 3600
#: After the drain, vLLM shuts its engine down (workers exit, GPU memory is released).
SHUTDOWN_MARGIN_SECONDS = 30
#: The kubelet's grace covers the preStop pause too (Kubernetes "Pod Lifecycle": termination): SIGKILL
#: comes this long after the pod is deleted, whatever still runs, so it must exceed the pause plus vLLM's
#: drain (vLLM's Kubernetes guide: grace >= preStop sleep + --shutdown-timeout). A node that goes away
#: sooner (a spot node's notice: 30 s on GKE, 2 minutes on EC2) cuts it short; nothing in the pod can
#: prevent that.
TERMINATION_GRACE_SECONDS = PRE_STOP_SECONDS + LONGEST_REQUEST_SECONDS + SHUTDOWN_MARGIN_SECONDS
#: vLLM's flag for the drain on SIGTERM (components/vllm_flags.json lists it for the pinned release).
SHUTDOWN_TIMEOUT_FLAG = "--shutdown-timeout"
#: Before the container starts: a node from the cluster autoscaler plus a ~10-20 GB image pull. The launch
#: spec's startup budget counts from container start.
POD_SCHEDULE_AND_PULL_SECONDS = 1200
#: The Hugging Face cache's parent: also holds vLLM's torch.compile cache, so a restarted container skips
#: both the download and the compilation.
CACHE_DIR = posixpath.dirname(HF_CACHE_DIR)
CACHE_VOLUME = "cache"
#: vllm:cacheClaim's volume: the HF cache, shared by every pod, and vLLM's compile cache beside it
#: (``shared_compile_cache``).
SHARED_HF_CACHE_VOLUME = "hf-cache"
SHM_VOLUME = "shm"
#: The init container that fills vllm:cacheClaim (scripts/hf_cache_fill.sh), and its pause between looks
#: at another pod's fill.
FILL_CONTAINER = "fill-hf-cache"
FILL_SCRIPT = "hf_cache_fill.sh"
FILL_POLL_SECONDS = 15
#: A fill lock older than the fill's bound plus this belongs to a dead pod: the filler's own start (image
#: pulled, lock to download) and the clocks of two nodes, NTP-synchronised but never equal. A waiter takes
#: over a fill that has added no byte for the stall window plus this: a live filler stops its stalled
#: download first, and the claim's NFS attribute cache (at most 60 s) delays what a waiter sees.
FILL_LOCK_GRACE_SECONDS = 120
#: The fill's bound beyond the weights' transfer: the ``hf`` CLI's start and the Hub's metadata calls,
#: which a small model's transfer time would not cover.
FILL_START_SECONDS = 120
#: Room in the cache beyond the weights: vLLM's torch.compile cache, huggingface_hub's Xet chunk cache
#: (under the same HF home) and the container's logs, which count towards its ephemeral storage too.
CACHE_HEADROOM_GB = 10
#: Liveness restarts a container (on a multi-node group, the kubelet's restart makes LWS recreate the whole
#: group), so it must only catch a hung server, never a saturated one that answers /health late: 20 s to
#: answer, and 10 misses 30 s apart (5 minutes) before a restart. Readiness (the launch spec's 5 s x 3)
#: takes a slow pod out of the Service long before.
LIVENESS_PERIOD_SECONDS = 30
LIVENESS_TIMEOUT_SECONDS = 20
LIVENESS_FAILURES = 10
#: The judge of a start by its progress (``progress_probe``; the fill's watch, ``fill_script``).
PROGRESS_SCRIPT = "start_progress.py"
#: Where the progress probe keeps its memory between looks: the container's own file system, which a
#: restarted container gets afresh.
PROGRESS_STATE = "/tmp/vllm-start-progress.json"
#: The progress probe's own start (python3 reads the script) beyond its /health request's timeout.
PROGRESS_PROBE_START_SECONDS = 5
#: Consecutive broken verdicts before the kubelet restarts: the second spares a look that could not run
#: (python3 starved on a busy node); the probe's own verdict already waited out its window.
PROGRESS_PROBE_FAILURES = 2


def labels(spec: ServiceSpec, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(spec: ServiceSpec, component: str) -> dict[str, str]:
    return {
        key: value for key, value in labels(spec, component).items() if key != "app.kubernetes.io/managed-by"
    }


def slot_name(spec: ServiceSpec) -> str:
    """What one revision's objects are named (vllm:canary): the stack's name in slot 1, ``<name>-rev2`` in
    slot 2, whichever revision is stable, so a promote renames nothing."""
    return spec.name + spec.revision_suffix


def slot_labels(spec: ServiceSpec, component: str) -> dict[str, str]:
    """The labels of one revision's objects: its slot's name as the instance. Slot 2's pods must not carry
    slot 1's selector (a Deployment's is immutable, and an InferencePool selects by ``matchLabels`` only),
    or slot 1's Deployment, pool, Service and disruption budget would take them too; slot 1's are the
    labels every stack had."""
    return {**labels(spec, component), "app.kubernetes.io/instance": slot_name(spec)}


def slot_selector(spec: ServiceSpec, component: str) -> dict[str, str]:
    return {**selector(spec, component), "app.kubernetes.io/instance": slot_name(spec)}


def _gib(value: float) -> str:
    return f"{round(value * 1024)}Mi"


def _cpus(value: float) -> str:
    return f"{round(value * 1000)}m"


def per_gpu_share(gpu: str) -> tuple[float, float]:
    """(vCPUs, GB) per GPU of the smallest-per-GPU machine any platform's catalog sells for ``gpu`` (the
    platforms that sell machine shapes: a cluster's own nodes have none)."""
    machines = [
        offering
        for platform in platforms.registered()
        for count in platform.catalog.counts(gpu)
        for offering in platform.catalog.offerings(gpu, count)
        if offering.vcpus is not None and offering.memory_gb is not None
    ]
    shares = [_share_per_gpu(m) for m in machines]
    return min(cpus for cpus, _ in shares), min(memory for _, memory in shares)


def _share_per_gpu(machine: catalog.Offering) -> tuple[float, float]:
    """(vCPUs, GB) per GPU of a cloud machine: every GCP and AWS catalog row lists both."""
    if machine.vcpus is None or machine.memory_gb is None:
        raise ValueError(f"{machine.cloud} catalog row {machine.machine_type} lacks its vCPUs or memory")
    return machine.vcpus / machine.gpu_count, machine.memory_gb / machine.gpu_count


def cpu_kv_cache_gb(spec: ServiceSpec) -> int:
    """KV cache of a CPU-mode pod (VLLM_CPU_KVCACHE_SPACE): the memory left after weights and runtime."""
    memory_gb = settings(spec).memory_gb
    if memory_gb is None:
        return CPU_DEFAULT_KV_CACHE_GB
    left = math.floor(memory_gb - weights_gb(spec) - CPU_RUNTIME_GB)
    if left < 1:
        need = weights_gb(spec) + CPU_RUNTIME_GB + 1
        raise SpecError(
            f"{PROJECT}:memoryGb",
            settings(spec).memory_gb,
            f">= {need} on CPU: {weights_gb(spec)} GB weights + {CPU_RUNTIME_GB} GB runtime + 1 GB KV cache",
        )
    return left


def requests(spec: ServiceSpec) -> tuple[float, float]:
    """(CPUs, GiB of memory) a vLLM pod requests: the stack's values, else the rule in the module doc."""
    k8s = settings(spec)
    if spec.gpu is None:
        cpus = CPU_DEFAULT_CPUS
        memory = weights_gb(spec) + CPU_RUNTIME_GB + CPU_DEFAULT_KV_CACHE_GB
    else:
        vcpus, memory_gb = per_gpu_share(spec.gpu.type)
        cpus = max(1, math.floor(vcpus * spec.gpu.count * NODE_SHARE))
        memory = math.floor(memory_gb * spec.gpu.count * NODE_SHARE)
    return (k8s.cpu if k8s.cpu is not None else cpus, k8s.memory_gb if k8s.memory_gb is not None else memory)


def cache_request_gb(spec: ServiceSpec) -> int:
    """Disk the pod's own cache needs on the node: the weights plus headroom, within ``diskSizeGb``; with
    vllm:cacheClaim the weights are on the claim and only the headroom (the compile cache, logs) stays."""
    if settings(spec).cache_claim is not None:
        return CACHE_HEADROOM_GB
    return min(spec.disk_size_gb, weights_gb(spec) + CACHE_HEADROOM_GB)


def local_cache_gb(spec: ServiceSpec) -> int:
    """The size of the pod's own cache volume: ``diskSizeGb``, or with vllm:cacheClaim (the HF cache on
    the claim) what stays local, so that no GPU node must have disk for weights it never stores."""
    if settings(spec).cache_claim is not None:
        return CACHE_HEADROOM_GB
    return spec.disk_size_gb


def shm_gb(spec: ServiceSpec) -> int:
    return SHM_GB_PER_GPU * spec.gpu.count if spec.gpu else CPU_SHM_GB


def resources(spec: ServiceSpec) -> dict[str, Any]:
    """CPU and memory (module docstring), GPUs, and without a storage class the node disk the cache needs:
    an ``emptyDir.sizeLimit`` reserves nothing, only an ``ephemeral-storage`` request makes the scheduler
    pick a node whose disk holds the weights (else the kubelet evicts the pod mid-download)."""
    cpus, memory = requests(spec)
    limits = {"memory": _gib(memory)}
    if spec.gpu is not None:
        limits[GPU_RESOURCE] = str(spec.gpu.count)
    wanted = {"cpu": _cpus(cpus), "memory": _gib(memory)}
    if settings(spec).storage_class is None:
        wanted["ephemeral-storage"] = f"{cache_request_gb(spec)}Gi"
    return {"requests": wanted, "limits": limits}


def environment(
    spec: ServiceSpec, launch: LaunchSpec, secret_name: pulumi.Input[str], extra: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Plain variables by value; secret ones by ``secretKeyRef`` (the Secret's keys are their names)."""
    plain = {**launch.env, **shared_compile_cache(spec)}
    if spec.gpu is None:
        plain["VLLM_CPU_KVCACHE_SPACE"] = str(cpu_kv_cache_gb(spec))
    plain.update(extra or {})
    env: list[dict[str, Any]] = [{"name": name, "value": value} for name, value in plain.items()]
    env += [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": name}}}
        for name in launch.secret_env
    ]
    return env


def fetch_budget_seconds(spec: ServiceSpec, launch: LaunchSpec) -> int:
    """How long the init container may take to fill the shared cache: the weights phase's hard cap
    (``launch.health_caps``: the Hub download at its slowest rate, never the estimate) and the CLI's start
    (its ``hf download`` is killed past it). 0 without vllm:cacheClaim: no init container, vLLM downloads
    within its own startup probe."""
    if settings(spec).cache_claim is None:
        return 0
    return FILL_START_SECONDS + launch.probes.caps.weights


def load_budget_seconds(spec: ServiceSpec, launch: LaunchSpec) -> int:
    """The longest vLLM's container may take to serve, from its start: the hard caps of what happens in it
    (every rate at its slowest in components/rates.py), never the estimate. With vllm:cacheClaim the init
    container has fetched the weights, so what is left is the load phase (the claim's read, compile): the
    startup probe's budget. Without, the download too: the progress probe's caps, which also restarts a
    download that stalls long before (``progress_probe``)."""
    caps = launch.probes.caps
    if settings(spec).cache_claim is not None:
        return caps.load
    return caps.weights + caps.load


def health_probes(spec: ServiceSpec, launch: LaunchSpec) -> dict[str, Any]:
    """Readiness on ``/health`` (out of the Service, the launch spec's thresholds), and what restarts vLLM.

    With vllm:cacheClaim the weights are on the claim before vLLM starts (the fill judged them by their
    progress): a startup probe sized to the load phase's cap (failureThreshold x periodSeconds), then a far
    more patient liveness probe than readiness (see ``LIVENESS_*``). Without, vLLM downloads the weights from
    the Hub in its own container, and a startup probe, a fixed count of failures, cannot tell a slow
    download from a hung one: the progress probe judges the start instead (``progress_probe``), as liveness
    with no startup probe, since Kubernetes runs liveness and readiness only once a startup probe has
    succeeded."""
    timings = launch.probes

    def probe(failures: int, period: int = timings.period_seconds, timeout: int = timings.timeout_seconds):
        return {
            "httpGet": {"path": launch.health_path, "port": PORT_NAME},
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": failures,
        }

    readiness = {**probe(timings.unhealthy_threshold), "successThreshold": timings.healthy_threshold}
    if settings(spec).cache_claim is None:
        return {"readinessProbe": readiness, "livenessProbe": progress_probe(spec, launch)}
    return {
        "startupProbe": probe(math.ceil(load_budget_seconds(spec, launch) / timings.period_seconds)),
        "readinessProbe": readiness,
        "livenessProbe": probe(LIVENESS_FAILURES, LIVENESS_PERIOD_SECONDS, LIVENESS_TIMEOUT_SECONDS),
    }


def progress_probe(spec: ServiceSpec, launch: LaunchSpec) -> dict[str, Any]:
    """vLLM's liveness where its container downloads from the Hub: ``start_progress.py probe`` in the
    container's python3, the VMs' rule with their values (launch.py STALL_SECONDS and health_caps,
    health_agent.py PROGRESS_BYTES). Until vLLM first answers 200 the start is broken only when its download
    adds no byte for the stall window or a phase outlasts its cap: a slow Hub is never restarted, a hung
    download is, and resumes from its partial files in the pod's cache. Once ready, broken when /health has
    not answered 200 for as long as the liveness probe of a pod on the claim waits (``LIVENESS_*``). A
    crashed vLLM restarts as ever (the container exits)."""
    caps = launch.probes.caps
    scheme = "https" if tls.serves_tls(spec) else "http"
    judge = [
        "probe",
        "--dir",
        posixpath.join(HF_CACHE_DIR, "hub"),
        "--stall",
        str(STALL_SECONDS),
        "--progress-bytes",
        str(PROGRESS_BYTES),
        "--state",
        PROGRESS_STATE,
        "--health-url",
        f"{scheme}://127.0.0.1:{launch.port}{launch.health_path}",
        "--timeout",
        str(LIVENESS_TIMEOUT_SECONDS),
        "--hang",
        str(LIVENESS_FAILURES * LIVENESS_PERIOD_SECONDS),
        "--caps",
        str(caps.weights),
        str(caps.load),
    ]
    return {
        "exec": {"command": ["python3", "-c", scripts.source(PROGRESS_SCRIPT), *judge]},
        "periodSeconds": LIVENESS_PERIOD_SECONDS,
        "timeoutSeconds": LIVENESS_TIMEOUT_SECONDS + PROGRESS_PROBE_START_SECONDS,
        "failureThreshold": PROGRESS_PROBE_FAILURES,
    }


def security_context(spec: ServiceSpec) -> dict[str, Any]:
    capabilities: dict[str, list[str]] = {"drop": ["ALL"]}
    if spec.gpu is None:
        capabilities["add"] = ["SYS_NICE"]
    return {"allowPrivilegeEscalation": False, "capabilities": capabilities}


def container(
    spec: ServiceSpec,
    launch: LaunchSpec,
    secret_name: pulumi.Input[str],
    *,
    command: list[str],
    serves: bool,
    extra_env: dict[str, str] | None = None,
    env_from_pod: dict[str, str] | None = None,
    extra_mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The vLLM container. ``serves``: it answers on the port (probes, port, drain on stop)."""
    env = environment(spec, launch, secret_name, extra_env)
    env += [
        {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
        for name, path in (env_from_pod or {}).items()
    ]
    result: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        "resources": resources(spec),
        "volumeMounts": [
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
            {"name": CACHE_VOLUME, "mountPath": CACHE_DIR},
            *([tls.mount()] if serves and tls.serves_tls(spec) else []),
            *shared_hf_cache_mounts(spec),
            *(extra_mounts or []),
        ],
        "securityContext": security_context(spec),
    }
    if serves:
        result["ports"] = [{"name": PORT_NAME, "containerPort": launch.port, "protocol": "TCP"}]
        result["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sleep", str(PRE_STOP_SECONDS)]}}}
        probes = health_probes(spec, launch)
        result.update(tls.https_probes(probes) if tls.serves_tls(spec) else probes)
    return result


def fill_script(spec: ServiceSpec, launch: LaunchSpec) -> str:
    """``hf_cache_fill.sh`` rendered for the stack's model commit (``spec.model_revision``, which keys
    huggingface_hub's cache as it keys the buckets), without its comment lines."""
    fetch = fetch_budget_seconds(spec, launch)
    rendered = scripts.render(
        FILL_SCRIPT,
        model=spec.model,
        revision=spec.model_revision,
        cache_dir=posixpath.join(HF_CACHE_DIR, "hub"),  # huggingface_hub's HF_HUB_CACHE under HF_HOME
        fetch_seconds=fetch,
        lock_seconds=fetch + FILL_LOCK_GRACE_SECONDS,
        poll_seconds=FILL_POLL_SECONDS,
        stall_seconds=STALL_SECONDS,
        takeover_seconds=STALL_SECONDS + FILL_LOCK_GRACE_SECONDS,
        progress_bytes=PROGRESS_BYTES,
        start_progress=scripts.Included(scripts.source(PROGRESS_SCRIPT)),
    )
    return scripts.without_comments(rendered)


def fill_containers(
    spec: ServiceSpec, launch: LaunchSpec, secret_name: pulumi.Input[str]
) -> list[dict[str, Any]]:
    """The init container that fills vllm:cacheClaim (none without it): the pinned vLLM image, whose
    huggingface_hub ships the ``hf`` CLI (a console script since 0.34; vLLM 0.33 needs >= 1.31), with the
    HF token by ``secretKeyRef`` when the stack has one. It asks the vLLM container's CPU and memory: the
    pod's effective request is the larger of an init container's and the sum of the others', so this
    costs the scheduler nothing, and the download has the whole pod to itself while it runs."""
    if settings(spec).cache_claim is None:
        return []
    cpus, memory = requests(spec)
    env: list[dict[str, Any]] = [
        {"name": "HF_XET_HIGH_PERFORMANCE", "value": STATIC_ENV["HF_XET_HIGH_PERFORMANCE"]},
        {"name": "HF_HUB_DISABLE_PROGRESS_BARS", "value": "1"},  # the pod's log keeps the script's lines
    ]
    if HF_TOKEN_ENV in launch.secret_env:
        env.append(
            {"name": HF_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": HF_TOKEN_ENV}}}
        )
    return [
        {
            "name": FILL_CONTAINER,
            "image": spec.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", "-c", fill_script(spec, launch)],
            "env": env,
            "resources": {
                "requests": {"cpu": _cpus(cpus), "memory": _gib(memory)},
                "limits": {"memory": _gib(memory)},
            },
            "volumeMounts": shared_hf_cache_mounts(spec),
            "securityContext": security_context(spec),
        }
    ]


def shared_compile_cache(spec: ServiceSpec) -> dict[str, str]:
    """With vllm:cacheClaim, vLLM's cache root (``VLLM_CACHE_ROOT``: its torch.compile artifacts) on the
    claim under the stack's compile-cache key (model commit, image, GPU, parallelism; the VMs' bucket uses
    the same), so a pod whose code vLLM compiled before, on any node, loads it instead of compiling. vLLM
    names each compiled unit by a hash of what shaped it, so pods of other flags never read another's."""
    if settings(spec).cache_claim is None:
        return {}
    return {"VLLM_CACHE_ROOT": posixpath.join(HF_CACHE_DIR, "vllm-compile-cache", compile_cache_key(spec))}


def shared_hf_cache_mounts(spec: ServiceSpec) -> list[dict[str, Any]]:
    """With vllm:cacheClaim, the HF cache is that ReadWriteMany claim, mounted over the per-pod cache's
    ``huggingface`` folder: the init container (``fill_containers``) has put the model's commit there, so
    vLLM finds every file and downloads none."""
    if settings(spec).cache_claim is None:
        return []
    return [{"name": SHARED_HF_CACHE_VOLUME, "mountPath": HF_CACHE_DIR}]


def shared_hf_cache_volumes(spec: ServiceSpec) -> list[dict[str, Any]]:
    claim = settings(spec).cache_claim
    if claim is None:
        return []
    return [{"name": SHARED_HF_CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim}}]


def cache_claim_spec(spec: ServiceSpec) -> dict[str, Any]:
    """One ReadWriteOnce volume of ``local_cache_gb`` on ``vllm:storageClass``."""
    return {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": settings(spec).storage_class,
        "resources": {"requests": {"storage": f"{local_cache_gb(spec)}Gi"}},
    }


def cache_volume(spec: ServiceSpec, component: str) -> dict[str, Any]:
    """The cache: a per-pod PVC on ``vllm:storageClass`` (generic ephemeral volume), else an emptyDir; both
    live as long as the pod, so a restarted container finds its weights. See ``replica_group.py`` for why
    not a StatefulSet, and ``ray_replica.py`` for the claims that outlive a multi-node group."""
    if settings(spec).storage_class is None:
        return {"name": CACHE_VOLUME, "emptyDir": {"sizeLimit": f"{local_cache_gb(spec)}Gi"}}
    claim = {"metadata": {"labels": slot_labels(spec, component)}, "spec": cache_claim_spec(spec)}
    return {"name": CACHE_VOLUME, "ephemeral": {"volumeClaimTemplate": claim}}


def pod_spec(
    spec: ServiceSpec,
    component: str,
    containers: list[dict[str, Any]],
    extra_volumes: list[dict[str, Any]] | None = None,
    *,
    claimed_cache: bool = False,
    init_containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``claimed_cache``: the cache volume comes from the workload's claim templates, not the pod."""
    pod: dict[str, Any] = {
        **({"initContainers": init_containers} if init_containers else {}),
        "containers": containers,
        "volumes": [
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gb(spec)}Gi"}},
            *([] if claimed_cache else [cache_volume(spec, component)]),
            *([tls.volume(spec)] if component == SERVER and tls.serves_tls(spec) else []),
            *shared_hf_cache_volumes(spec),
            *(extra_volumes or []),
        ],
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    }
    if spec.gpu is not None:
        pod["tolerations"] = [GPU_TOLERATION]
        affinity = node_affinity(settings(spec).gpu_node_selector, spec.gpu.type)
        if affinity is not None:
            pod["affinity"] = affinity
    return spot_pods.constrain(pod, settings(spec).gpu_node_selector, spot_pods.capacity_type(spec))


def rolling_update(spec: ServiceSpec) -> dict[str, int]:
    """How many pods (groups) a rollout adds before removing old ones, and may take down at once.

    A surge needs spare GPU nodes; on a full cluster it stalls forever. With several replicas the default
    replaces them one at a time in place (``maxSurge: 0, maxUnavailable: 1``: one replica's capacity is
    missing for one model load). With one replica, in place would mean an outage of a whole model load on
    every change, so it surges one pod: on a full cluster that rollout waits (the old pod keeps serving)
    until a GPU frees up or the cluster autoscaler adds a node; ``vllm:maxSurge: 0`` chooses the outage
    instead. ``vllm:maxSurge`` N > 0 surges N and never drops below ``replicas``."""
    surge = settings(spec).max_surge
    if surge is None:
        surge = 1 if spec.replicas == 1 else 0
    return {"maxSurge": surge, "maxUnavailable": 0 if surge > 0 else 1}


def with_drain(launch: LaunchSpec) -> LaunchSpec:
    """The launch spec with vLLM draining its requests on SIGTERM for ``LONGEST_REQUEST_SECONDS``: last in
    argv, so it wins over the same flag in vllm:extraArgs (argparse keeps the last value), as the pod's
    grace is sized for it."""
    return dataclasses.replace(
        launch, args=(*launch.args, SHUTDOWN_TIMEOUT_FLAG, str(LONGEST_REQUEST_SECONDS))
    )


def start_budget_seconds(spec: ServiceSpec, launch: LaunchSpec) -> int:
    """From pod creation to serving: scheduling and image pull, the init container's fill of the shared
    cache (with vllm:cacheClaim), then vLLM's load budget. A pod that waits for another's fill is done when
    that fill is, within the same bound; one that takes over a dead filler's lock can take up to twice it."""
    return (
        POD_SCHEDULE_AND_PULL_SECONDS + fetch_budget_seconds(spec, launch) + load_budget_seconds(spec, launch)
    )
