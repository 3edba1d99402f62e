"""The operator's view of a deployed stack, shared by every platform: what a replica is and where to find it.

The Pulumi program exports ``replicaSource`` (``ReplicaSource.as_output``), the same shape on every
platform; ``tools.status`` and ``tools.logs`` read it back and hand it to the stack's platform module
``components/<platform>/status.py`` (``Platform.module("status")``), which asks the platform's own API with
its client library, loaded only there. Nothing here imports Pulumi or a cloud SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: SkyServe's replica statuses (``sky/serve/serve_state.py: ReplicaStatus``), the subset a platform reports.
PROVISIONING = "PROVISIONING"  # the machine or pod is being created / scheduled
STARTING = "STARTING"  # running, vLLM loading the model within its load budget
READY = "READY"  # the load balancer routes to it (its /health answers)
NOT_READY = "NOT_READY"  # running past its load budget, yet not healthy
FAILED = "FAILED"  # crashed, crash-looping, or judged broken by the platform (being replaced)
PREEMPTED = "PREEMPTED"  # spot capacity reclaimed
SHUTTING_DOWN = "SHUTTING_DOWN"  # draining, terminating, deleted
STATUSES = (PROVISIONING, STARTING, READY, NOT_READY, FAILED, PREEMPTED, SHUTTING_DOWN)

SERVE, RAY_HEAD, RAY_WORKER = "serve", "ray-head", "ray-worker"
#: What routes requests to the replicas when it is a workload of its own (Kubernetes' inference gateway:
#: its endpoint picker's pods, shown beside the replicas and counted in no replica total).
ROUTER = "router"


#: How to get the tools' client libraries: with the program's own requirements, in one resolve (protobuf).
INSTALL_TOOLS = "pip install -r requirements.txt -r requirements-tools.txt"


class ListError(Exception):
    """The platform could not be asked (no client library, no credentials, an API error): one line why."""


@dataclass(frozen=True, kw_only=True)
class Group:
    """One platform object that owns replicas' machines or pods."""

    kind: str  # regionInstanceGroupManager | instanceGroupManager | autoScalingGroup | Deployment | ...
    name: str
    role: str  # serve | ray-head | ray-worker | ray-group (a LeaderWorkerSet: heads and workers) | router
    replica: int | None = None  # the replica a multi-node group serves; None: every replica of a serve group
    zone: str = ""  # a zonal group's zone
    region: str = ""  # a regional group's region (GCP: with vllm:regions not every group is in ``location``)
    #: The revision slot (1, 2) whose replicas it runs, with vllm:canary; "" for a stack of one revision.
    revision: str = ""
    #: What routes to this group when not the source's ``balancer`` (a canary's own backend service).
    balancer: str = ""

    def as_output(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "role": self.role,
            "replica": self.replica,
            "zone": self.zone,
            **({"region": self.region} if self.region else {}),  # only GCP's regional groups have one
            **({"revision": self.revision} if self.revision else {}),
            **({"balancer": self.balancer} if self.balancer else {}),
        }


@dataclass(frozen=True, kw_only=True)
class ReplicaSource:
    """What the tools query, exported as the non-secret stack output ``replicaSource``.

    ``location``: the GCP or AWS region, the Kubernetes context ("" for the kubeconfig's current one).
    ``scope``: the GCP project, the Kubernetes namespace ("" on AWS: the credentials' account).
    ``balancer``: what routes to the replicas (GCP backend service, AWS target group ARN, Service name).
    ``logs``: where the container logs go (GCP log name, CloudWatch log group; "" on Kubernetes: pods').
    ``bounds``: (min, max) replicas when the platform's autoscaler owns the count; None for a fixed count.
    """

    platform: str
    location: str
    scope: str
    replicas: int
    startup_seconds: int  # a replica's load budget: unhealthy within it is STARTING, past it NOT_READY
    groups: Sequence[Group]
    balancer: str
    logs: str = ""
    bounds: tuple[int, int] | None = None

    def as_output(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "location": self.location,
            "scope": self.scope,
            "replicas": self.replicas,
            "startupSeconds": self.startup_seconds,
            "groups": [group.as_output() for group in self.groups],
            "balancer": self.balancer,
            "logs": self.logs,
            "bounds": None if self.bounds is None else {"min": self.bounds[0], "max": self.bounds[1]},
        }

    @classmethod
    def from_output(cls, value: Mapping[str, Any]) -> ReplicaSource:
        """Read the stack output back; KeyError/TypeError/ValueError when it is not one."""
        return cls(
            platform=str(value["platform"]),
            location=str(value.get("location") or ""),
            scope=str(value.get("scope") or ""),
            replicas=int(value["replicas"]),
            startup_seconds=int(value["startupSeconds"]),
            groups=tuple(
                Group(
                    kind=str(group["kind"]),
                    name=str(group["name"]),
                    role=str(group["role"]),
                    replica=None if group.get("replica") is None else int(group["replica"]),
                    zone=str(group.get("zone") or ""),
                    region=str(group.get("region") or ""),
                    revision=str(group.get("revision") or ""),
                    balancer=str(group.get("balancer") or ""),
                )
                for group in value["groups"]
            ),
            balancer=str(value.get("balancer") or ""),
            logs=str(value.get("logs") or ""),
            bounds=_bounds(value.get("bounds")),
        )


def _bounds(value: Any) -> tuple[int, int] | None:
    """``{"min": 1, "max": 4}``; None for a fixed count (and for stacks exported before bounds were)."""
    if value is None:
        return None
    return int(value["min"]), int(value["max"])


def counted_groups(groups: Sequence[Group]) -> list[Group]:
    """The groups whose size is the replica count: serve groups and Ray heads (one per replica), and
    LeaderWorkerSets (one group of pods per replica); Ray worker groups are parts of a replica, and a
    router is none."""
    return [group for group in groups if group.role not in (RAY_WORKER, ROUTER)]


@dataclass(frozen=True, kw_only=True)
class Replica:
    """One machine or pod, as ``sky serve status`` shows a replica."""

    id: str  # the replica: "1", "2", ... for single-node replicas; the group index for multi-node ones
    name: str  # instance or pod name
    role: str = SERVE
    ip: str = ""
    launched: datetime | None = None
    resources: str = ""  # "a3-highgpu-8g (8 x nvidia-h100-80gb)", "p5.48xlarge", "nvidia.com/gpu: 8, 9 CPU"
    zone: str = ""
    status: str = PROVISIONING
    detail: str = ""  # the platform's own words when it explains the status (a crash loop's reason)
    extra: Mapping[str, str] = field(default_factory=dict)  # what the logs tool needs (an instance id)
    phase: str = ""  # what the VM's health agent says its start is doing ("weights 41%"), if it published it
    timings: Mapping[str, datetime] = field(default_factory=dict)  # when each phase was reached (``PHASES``)
    revision: str = ""  # its group's revision slot with vllm:canary (SkyServe's VERSION); "" otherwise

    def as_json(self) -> dict[str, Any]:
        return {
            **({"revision": self.revision} if self.revision else {}),
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "ip": self.ip,
            "launched": self.launched.isoformat() if self.launched else None,
            "resources": self.resources,
            "zone": self.zone,
            "status": self.status,
            "detail": self.detail,
            "phase": self.phase or None,
            "phaseTimings": {name: moment.isoformat() for name, moment in self.timings.items()},
        }


def running_status(
    healthy: bool, launched: datetime | None, startup_seconds: int, now: datetime | None = None
) -> str:
    """A running replica: READY when healthy, STARTING within its load budget, NOT_READY after it."""
    if healthy:
        return READY
    if launched is None:
        return STARTING
    age = ((now or datetime.now(UTC)) - launched).total_seconds()
    return STARTING if age <= startup_seconds else NOT_READY


#: The phases of a VM replica's start its health agent times (components/scripts/health_agent.py): its own
#: start at boot, Docker up, the weights' first bytes, vLLM's container running (its image pulled), vLLM
#: listening, /health 200.
PHASES = ("boot", "docker", "weights", "image", "listening", "ready")


def published_phase(phase: str, timings: str) -> tuple[str, dict[str, datetime]]:
    """The agent's phase as shown ('weights 41' is published with tag-safe characters only: 'weights 41%')
    and its ``name=epoch`` timings as times; unknown names and malformed pairs are left out."""
    words = phase.split()
    shown = f"{phase}%" if len(words) == 2 and words[0] == "weights" and words[1].isdigit() else phase
    moments: dict[str, datetime] = {}
    for pair in timings.split():
        name, _, epoch = pair.partition("=")
        if name in PHASES and epoch.isdigit():
            moments[name] = datetime.fromtimestamp(int(epoch), UTC)
    return shown, moments


def with_phase(replica: Replica) -> Replica:
    """A replica still starting, as its health agent sees it: STARTING with its phase as the detail (the
    agent keeps it while it progresses, however long past the estimate), unless the platform says more."""
    if not replica.phase or replica.phase == "ready" or replica.status not in (STARTING, NOT_READY):
        return replica
    fields = {name: getattr(replica, name) for name in Replica.__dataclass_fields__}
    return Replica(**{**fields, "status": STARTING, "detail": replica.phase})


def number_by_launch(replicas: Sequence[Replica]) -> list[Replica]:
    """Single-node replicas have no index of their own: number them 1, 2, ... oldest first (as SkyServe)."""
    ordered = sorted(replicas, key=lambda r: (r.launched or datetime.max.replace(tzinfo=UTC), r.name))
    return [_with_id(replica, str(index)) for index, replica in enumerate(ordered, start=1)]


def _with_id(replica: Replica, replica_id: str) -> Replica:
    fields = {name: getattr(replica, name) for name in Replica.__dataclass_fields__}
    return Replica(**{**fields, "id": replica_id})


def serving(replicas: Sequence[Replica]) -> Iterator[Replica]:
    """The replicas that count towards READY n/n: single-node ones and Ray heads."""
    return (replica for replica in replicas if replica.role in (SERVE, RAY_HEAD))


def ready_count(replicas: Sequence[Replica]) -> int:
    return sum(1 for replica in serving(replicas) if replica.status == READY)


def age(launched: datetime | None, now: datetime | None = None) -> str:
    """'3 mins ago', '2 hrs ago', as SkyServe prints LAUNCHED."""
    if launched is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - launched).total_seconds()))
    for unit, size in (("day", 86400), ("hr", 3600), ("min", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def parse_time(value: str | datetime | None) -> datetime | None:
    """RFC 3339 as the APIs answer it ('2026-11-25T18:01:02.123-08:00', '...Z'), or a datetime; UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class LogLine:
    """One line of a replica's vLLM container output, as the platform's log service kept it."""

    replica: Replica
    time: datetime | None
    text: str


@dataclass(frozen=True, kw_only=True)
class LogQuery:
    """What ``tools.logs`` asks a platform's ``read_logs`` for."""

    replicas: Sequence[Replica]  # whose logs (machines or pods)
    since: datetime  # from when
    follow: bool = False  # keep reading new lines until ``keep_going`` says stop
    poll_seconds: float = 5.0  # how often a cloud's log service is asked again when following
    keep_going: Callable[[], bool] = lambda: True
