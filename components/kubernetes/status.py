"""A Kubernetes stack for the operator tools: its replicas (the workload's pods, readiness and nodes) and
its inference gateway's router (the endpoint picker's pods, and whether a Gateway took the pool) for
``tools.status``, their containers' logs for ``tools.logs``.

Loaded only by the tools (``Platform.module("status")``), never by the Pulumi program; the kubernetes client
is imported when asked (requirements-tools.txt). The cluster is the kubeconfig's (``KUBECONFIG``) context
named in ``replicaSource`` (its current one when empty), the namespace the stack's.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from components.observe import (
    FAILED,
    INSTALL_TOOLS,
    NOT_READY,
    PREEMPTED,
    PROVISIONING,
    RAY_HEAD,
    RAY_WORKER,
    READY,
    ROUTER,
    SERVE,
    SHUTTING_DOWN,
    STARTING,
    ListError,
    LogLine,
    LogQuery,
    Replica,
    ReplicaSource,
    counted_groups,
    number_by_launch,
    parse_time,
    running_status,
)

#: LeaderWorkerSet's API (sigs.k8s.io/lws, api/leaderworkerset/v1: group leaderworkerset.x-k8s.io).
LWS_GROUP, LWS_VERSION, LWS_PLURAL = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
#: LeaderWorkerSet's pod labels (sigs.k8s.io/lws, api/leaderworkerset/v1/leaderworkerset_types.go).
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
#: The Gateway API Inference Extension's InferencePool (GIE v1.5.0: inference.networking.k8s.io/v1). A
#: Gateway that routes to the pool reports, in ``status.parents``, whether it accepted the pool and
#: resolved its endpoint picker (conditions ``Accepted`` and ``ResolvedRefs``, the CRD's status docs).
POOL_GROUP, POOL_VERSION, POOL_PLURAL = "inference.networking.k8s.io", "v1", "inferencepools"
POOL_CONDITIONS = ("Accepted", "ResolvedRefs")
EPP_CONTAINER = "epp"  # components/kubernetes/inference_gateway.py's container
#: An endpoint picker not ready this long after its start is NOT_READY: an image pull and the pool's first
#: sync (a margin, not a measurement).
ROUTER_START_SECONDS = 300
ZONE_LABEL = "topology.kubernetes.io/zone"
CONTAINER = "vllm"  # the serving container's name (components/kubernetes/pods.py: CONTAINER)
FILL_CONTAINER = "fill-hf-cache"  # the init container that fills vllm:cacheClaim (pods.py: FILL_CONTAINER)
GPU_RESOURCE = "nvidia.com/gpu"
#: Container waiting reasons that mean the pod will not serve without a change (kubelet's own reasons).
BROKEN_REASONS = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)


def _condition(pod: Any, kind: str) -> Any:
    return next((c for c in (pod.status.conditions or []) if c.type == kind), None)


def pod_status(pod: Any, role: str, startup_seconds: int, now: datetime | None = None) -> tuple[str, str]:
    """(status, detail) of one pod from its phase, conditions and container states."""
    disruption = _condition(pod, "DisruptionTarget")  # node shutdown, preemption, eviction (1.26+)
    if disruption is not None and disruption.status == "True":
        return PREEMPTED, f"{disruption.reason}: {disruption.message or ''}".rstrip(": ")
    if pod.metadata.deletion_timestamp is not None:
        return SHUTTING_DOWN, "terminating"
    phase = pod.status.phase or "Pending"
    if phase in ("Failed", "Succeeded"):
        return FAILED, f"{phase}: {pod.status.reason or ''} {pod.status.message or ''}".strip()
    containers = pod.status.container_statuses or []
    for container in [*(pod.status.init_container_statuses or []), *containers]:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason in BROKEN_REASONS:
            return FAILED, f"{waiting.reason} ({container.restart_count} restarts): {waiting.message or ''}"[
                :160
            ]
    scheduled = _condition(pod, "PodScheduled")
    if phase == "Pending":
        if scheduled is None or scheduled.status != "True":
            return PROVISIONING, (scheduled.message if scheduled is not None else "") or "not scheduled"
        if any(
            _running(init) for init in pod.status.init_container_statuses or [] if init.name == FILL_CONTAINER
        ):
            return (
                PROVISIONING,
                "filling the shared HF cache (vllm:cacheClaim), or waiting for another pod's fill",
            )
        return PROVISIONING, "pulling the image, starting containers"
    ready = _condition(pod, "Ready")
    launched = parse_time(pod.status.start_time)
    if role == RAY_WORKER:  # workers serve no /health: running is their readiness (their probes say more)
        return running_status(
            ready is not None and ready.status == "True", launched, startup_seconds, now
        ), ""
    if ready is not None and ready.status == "True":
        return READY, ""
    if any(container.started is False for container in containers):
        return STARTING, "startup probe: loading the model"
    status = running_status(False, launched, startup_seconds, now)
    return status, "readiness probe failing"


def pool_problem(pool: dict[str, Any]) -> str:
    """Why a Gateway does not route to the pool ("" when every Gateway in ``status.parents`` accepted it
    and resolved its endpoint picker)."""
    name = pool.get("metadata", {}).get("name", "")
    parents = (pool.get("status") or {}).get("parents") or []
    if not parents:
        return f"InferencePool {name}: no Gateway has taken it yet (its HTTPRoute's Gateway reports here)"
    for parent in parents:
        gateway = (parent.get("parentRef") or {}).get("name", "?")
        conditions = {c.get("type"): c for c in parent.get("conditions") or []}
        for kind in POOL_CONDITIONS:
            condition = conditions.get(kind)
            if condition is None or condition.get("status") != "True":
                why = (
                    f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")
                    if condition
                    else "not reported"
                )
                return f"InferencePool {name} on Gateway {gateway}: not {kind} ({why})"[:160]
    return ""


def _running(container: Any) -> bool:
    return container.state is not None and container.state.running is not None


def log_container(pod: Any) -> str:
    """The container whose log says what the pod is doing: an init container while it runs (the fill of
    vllm:cacheClaim) or, failed, holds the pod before vLLM ever ran; else vLLM's. The API server answers
    a log request for a container that has not started with 400 ("container ... is waiting to start:
    PodInitializing"), so asking for vLLM's log there reads nothing."""
    inits = pod.status.init_container_statuses or []
    running = [init.name for init in inits if _running(init)]
    if running:
        return running[0]
    serving = next((c for c in pod.status.container_statuses or [] if c.name == CONTAINER), None)
    ran = serving is not None and (
        _running(serving)
        or (serving.state is not None and serving.state.terminated is not None)
        or (serving.last_state is not None and serving.last_state.terminated is not None)
    )
    unfinished = [
        init.name
        for init in inits
        if not (
            init.state is not None
            and init.state.terminated is not None
            and init.state.terminated.exit_code == 0
        )
    ]
    if not ran and unfinished:
        return unfinished[0]
    return CONTAINER


def _resources(pod: Any) -> str:
    container = pod.spec.containers[0]
    limits = (container.resources.limits or {}) if container.resources else {}
    requests = (container.resources.requests or {}) if container.resources else {}
    parts = [f"{GPU_RESOURCE}: {limits[GPU_RESOURCE]}"] if GPU_RESOURCE in limits else []
    parts += [f"{name}: {requests[name]}" for name in ("cpu", "memory") if name in requests]
    return ", ".join(parts)


class Cluster:
    """The kubernetes client's APIs for the context the stack deployed to."""

    def __init__(self, context: str, api_client: Any = None) -> None:
        try:
            from kubernetes import client, config
            from kubernetes.client.exceptions import ApiException
        except ImportError as error:
            raise ListError(f"the kubernetes client is not installed: {INSTALL_TOOLS}") from error
        from urllib3.exceptions import HTTPError

        self.error = ApiException
        self.transport_error = HTTPError
        try:
            api_client = api_client or config.new_client_from_config(
                config_file=os.environ.get("KUBECONFIG") or None, context=context or None
            )
        except (config.ConfigException, OSError) as error:
            raise ListError(f"kubeconfig context {context or '(current)'}: {error}") from error
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def selector(self, namespace: str, kind: str, name: str) -> str:
        if kind == "LeaderWorkerSet":
            return f"{LWS_NAME}={name}"
        labels = self.apps.read_namespaced_deployment(name, namespace).spec.selector.match_labels
        return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))

    def desired(self, namespace: str, kind: str, name: str) -> int:
        """The workload's ``spec.replicas``: what KEDA's HPA sets when it owns the count, else ours. A
        LeaderWorkerSet's replicas are its groups (one Ray head and its workers each)."""
        if kind == "LeaderWorkerSet":
            lws = self.custom.get_namespaced_custom_object(
                LWS_GROUP, LWS_VERSION, namespace, LWS_PLURAL, name
            )
            return int(lws["spec"].get("replicas", 1))
        replicas = self.apps.read_namespaced_deployment(name, namespace).spec.replicas
        return 1 if replicas is None else replicas  # the API server defaults an unset count to 1

    @contextmanager
    def asking(self, namespace: str) -> Iterator[None]:
        """An API error or an unreachable server, as the one-line ListError the tools print."""
        try:
            yield
        except self.error as error:
            raise ListError(f"Kubernetes namespace {namespace}: {error.status} {error.reason}") from error
        except self.transport_error as error:
            raise ListError(
                f"Kubernetes namespace {namespace}: cannot reach the API server: {error}"
            ) from error

    def router_pods(self, namespace: str, pool_name: str) -> tuple[list[Any], str]:
        """The pool's endpoint picker pods (its ``endpointPickerRef`` Service's), and ``pool_problem``."""
        pool = self.custom.get_namespaced_custom_object(
            POOL_GROUP, POOL_VERSION, namespace, POOL_PLURAL, pool_name
        )
        service = self.core.read_namespaced_service(pool["spec"]["endpointPickerRef"]["name"], namespace)
        selector = ",".join(f"{key}={value}" for key, value in sorted((service.spec.selector or {}).items()))
        return self.core.list_namespaced_pod(namespace, label_selector=selector).items, pool_problem(pool)

    def zone(self, node: str, cache: dict[str, str]) -> str:
        """The node's zone label; the node's name when it has none or nodes may not be read."""
        if node not in cache:
            try:
                labels = self.core.read_node(node).metadata.labels or {}
                cache[node] = labels.get(ZONE_LABEL, node)
            except self.error:
                cache[node] = node
        return cache[node]


def list_replicas(
    source: ReplicaSource, now: datetime | None = None, api_client: Any = None
) -> list[Replica]:
    cluster = Cluster(source.location, api_client)
    namespace = source.scope
    replicas: list[Replica] = []
    zones: dict[str, str] = {}
    routers: list[Replica] = []
    with cluster.asking(namespace):
        for group in source.groups:
            if group.role == ROUTER:
                routers += _routers(cluster, namespace, group.name, zones, now, group.revision)
                continue
            selector = cluster.selector(namespace, group.kind, group.name)
            for pod in cluster.core.list_namespaced_pod(namespace, label_selector=selector).items:
                labels = pod.metadata.labels or {}
                role, replica_id = SERVE, ""
                if group.kind == "LeaderWorkerSet":
                    role = RAY_HEAD if labels.get(LWS_WORKER_INDEX, "0") == "0" else RAY_WORKER
                    replica_id = labels.get(LWS_GROUP_INDEX, "")
                status, detail = pod_status(pod, role, source.startup_seconds, now)
                replicas.append(
                    _pod_replica(
                        cluster,
                        namespace,
                        pod,
                        zones,
                        replica_id,
                        role,
                        status,
                        detail,
                        log_container(pod),
                        group.revision,
                    )
                )
    single = [replica for replica in replicas if replica.role == SERVE]
    grouped = sorted(
        (r for r in replicas if r.role != SERVE),
        key=lambda r: (r.revision, int(r.id or 0), r.role != RAY_HEAD, r.name),
    )
    return number_by_launch(single) + grouped + routers


def _pod_replica(
    cluster: Cluster,
    namespace: str,
    pod: Any,
    zones: dict[str, str],
    replica_id: str,
    role: str,
    status: str,
    detail: str,
    container: str,
    revision: str = "",
) -> Replica:
    """One pod as a row of the replica table, its logs in ``container``; ``revision``: its workload's slot
    with vllm:canary (the REVISION column)."""
    node = pod.spec.node_name or ""
    return Replica(
        id=replica_id,
        name=pod.metadata.name,
        role=role,
        ip=pod.status.pod_ip or "",
        launched=parse_time(pod.status.start_time or pod.metadata.creation_timestamp),
        resources=_resources(pod),
        zone=cluster.zone(node, zones) if node else "",
        status=status,
        detail=detail,
        revision=revision,
        extra={"namespace": namespace, "node": node, "container": container},
    )


def _routers(
    cluster: Cluster,
    namespace: str,
    pool_name: str,
    zones: dict[str, str],
    now: datetime | None,
    revision: str = "",
) -> list[Replica]:
    """The inference gateway's endpoint picker pods (with vllm:canary, one revision's pool's): READY only
    when the pod is and a Gateway took the pool (else NOT_READY, saying which condition fails)."""
    pods, problem = cluster.router_pods(namespace, pool_name)
    routers = []
    for pod in pods:
        status, detail = pod_status(pod, ROUTER, ROUTER_START_SECONDS, now)
        if status == READY and problem:
            status, detail = NOT_READY, problem
        routers.append(
            _pod_replica(cluster, namespace, pod, zones, "-", ROUTER, status, detail, EPP_CONTAINER, revision)
        )
    return routers


def desired_replicas(source: ReplicaSource, api_client: Any = None) -> int:
    """Replicas the platform is converging on: every workload's ``spec.replicas``."""
    cluster = Cluster(source.location, api_client)
    with cluster.asking(source.scope):
        return sum(
            cluster.desired(source.scope, group.kind, group.name) for group in counted_groups(source.groups)
        )


def _stamped(line: str) -> tuple[datetime | None, str]:
    """Split the kubelet's RFC 3339 nanosecond timestamp (``timestamps=true``) off a log line."""
    stamp, _, text = line.partition(" ")
    try:
        return parse_time(re.sub(r"(\.\d{6})\d+", r"\1", stamp)), text
    except ValueError:
        return None, line


def read_logs(
    source: ReplicaSource, query: LogQuery, emit: Callable[[LogLine], None], api_client: Any = None
) -> None:
    """The pods' ``vllm`` container logs from the API server (the kubelet keeps them; a restarted
    container's previous run is ``kubectl logs --previous``), or the init container's of a pod still in
    it (``log_container``). Following reads every pod at once."""
    cluster = Cluster(source.location, api_client)
    since_seconds = max(1, int((datetime.now(UTC) - query.since).total_seconds()))
    lock = threading.Lock()
    failures: list[str] = []

    def read(replica: Replica) -> None:
        try:
            response = cluster.core.read_namespaced_pod_log(
                replica.name,
                source.scope,
                container=replica.extra.get("container", CONTAINER),
                since_seconds=since_seconds,
                timestamps=True,
                follow=query.follow,
                _preload_content=False,
            )
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    moment, text = _stamped(line.decode(errors="replace"))
                    with lock:
                        emit(LogLine(replica, moment, text))
                if not query.keep_going():
                    break
            if pending:
                moment, text = _stamped(pending.decode(errors="replace"))
                with lock:
                    emit(LogLine(replica, moment, text))
            response.release_conn()
        except cluster.error as error:
            failures.append(f"{replica.name}: {error.status} {error.reason}")
        except cluster.transport_error as error:
            failures.append(f"{replica.name}: cannot reach the API server: {error}")

    readers = [threading.Thread(target=read, args=(replica,), daemon=True) for replica in query.replicas]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    if failures:
        raise ListError(f"Kubernetes namespace {source.scope}: " + "; ".join(failures))
