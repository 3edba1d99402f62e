"""A GCP stack for the operator tools: its replicas (managed instances, their VMs, the backend's health)
for ``tools.status``, their containers' Cloud Logging entries for ``tools.logs``.

Loaded only by the tools (``Platform.module("status")``), never by the Pulumi program; google-cloud-compute
and google-cloud-logging are imported when asked (requirements-tools.txt). Credentials are Application
Default Credentials (``gcloud auth application-default login``); project, region and groups come from
``replicaSource``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from components.observe import (
    FAILED,
    INSTALL_TOOLS,
    PREEMPTED,
    PROVISIONING,
    RAY_WORKER,
    READY,
    SERVE,
    SHUTTING_DOWN,
    Group,
    ListError,
    LogLine,
    LogQuery,
    Replica,
    ReplicaSource,
    counted_groups,
    number_by_launch,
    parse_time,
    published_phase,
    running_status,
    with_phase,
)

#: The guest attributes namespace the health agent publishes its phase in (components/gcp/machine.py
#: GUEST_ATTRIBUTES_NAMESPACE; this module is the tools', which never import the program's).
GUEST_NAMESPACE = "vllm"
#: Managed instance actions (compute v1 ManagedInstance.currentAction) and VM states (Instance.status).
CREATING_ACTIONS = ("CREATING", "CREATING_WITHOUT_RETRIES", "STARTING", "RESUMING")
LEAVING_ACTIONS = ("DELETING", "ABANDONING", "STOPPING", "SUSPENDING")
BOOTING_STATES = ("PROVISIONING", "STAGING", "PENDING")
DOWN_STATES = ("STOPPING", "STOPPED", "TERMINATED", "SUSPENDING", "SUSPENDED", "REPAIRING")


def vm_status(
    managed: Any,
    instance: Any,
    lb_healthy: bool,
    role: str,
    startup_seconds: int,
    now: datetime | None = None,
) -> tuple[str, str]:
    """(status, detail) of one VM from its group's view, the VM itself and the load balancer's health."""
    action = managed.current_action or ""
    state = instance.status if instance is not None and instance.status else (managed.instance_status or "")
    spot = instance is not None and instance.scheduling.provisioning_model == "SPOT"
    if state in DOWN_STATES:
        if spot:
            return PREEMPTED, f"{state}, {action.lower() or 'to be recreated'}"
        return FAILED, f"{state}, {action.lower() or 'to be recreated'}"
    if action in LEAVING_ACTIONS:
        return SHUTTING_DOWN, action.lower()
    if action == "RECREATING":  # autohealing replaces it: its health agent judged it broken
        return FAILED, "recreating: the health agent judged it broken"
    if action in CREATING_ACTIONS or state in BOOTING_STATES or not state:
        errors = [error.message for error in managed.last_attempt.errors.errors]
        return PROVISIONING, "; ".join(errors)[:160] or action.lower()
    launched = parse_time(instance.creation_timestamp) if instance is not None else None
    autohealing = [health.detailed_health_state for health in managed.instance_health]
    if "UNHEALTHY" in autohealing:
        return FAILED, "unhealthy: autohealing recreates it"
    if role == RAY_WORKER:  # not a backend: its health agent judges its Ray membership
        return running_status(True, launched, startup_seconds, now), ""
    status = running_status(lb_healthy, launched, startup_seconds, now)
    return status, "" if status == READY else "load balancer: /health not answering 200"


def _last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _resources(instance: Any) -> str:
    machine = _last(instance.machine_type)
    gpus = ", ".join(
        f"{accelerator.accelerator_count} x {_last(accelerator.accelerator_type)}"
        for accelerator in instance.guest_accelerators
    )
    spot = " [Spot]" if instance.scheduling.provisioning_model == "SPOT" else ""
    return f"{machine} ({gpus}){spot}" if gpus else f"{machine}{spot}"


def group_region(group: Group, location: str) -> str:
    """A regional group's own region: with ``vllm:regions`` each region's groups live there, not in the
    stack's first region (``location``), which stacks exported before groups said their region imply."""
    return group.region or location


class Compute:
    """The Compute Engine clients the lister needs (REST; ``client_options``/``credentials`` for tests)."""

    def __init__(self, **client_args: Any) -> None:
        try:
            from google.cloud import compute_v1
        except ImportError as error:
            raise ListError(f"google-cloud-compute is not installed: {INSTALL_TOOLS}") from error
        self.types = compute_v1
        self.regional = compute_v1.RegionInstanceGroupManagersClient(**client_args)
        self.zonal = compute_v1.InstanceGroupManagersClient(**client_args)
        self.instances = compute_v1.InstancesClient(**client_args)
        self.backends = compute_v1.BackendServicesClient(**client_args)

    def managed_instances(self, project: str, region: str, group: Group) -> list[Any]:
        region = group_region(group, region)
        if group.kind == "regionInstanceGroupManager":
            pager = self.regional.list_managed_instances(
                project=project, region=region, instance_group_manager=group.name
            )
        else:
            pager = self.zonal.list_managed_instances(
                project=project, zone=group.zone, instance_group_manager=group.name
            )
        return list(pager)

    def target_size(self, project: str, region: str, group: Group) -> int:
        """The VMs the group is converging on: its autoscaler's choice when it has one, else ours."""
        region = group_region(group, region)
        if group.kind == "regionInstanceGroupManager":
            manager = self.regional.get(project=project, region=region, instance_group_manager=group.name)
        else:
            manager = self.zonal.get(project=project, zone=group.zone, instance_group_manager=group.name)
        return manager.target_size

    def healthy_instances(self, project: str, region: str, backend: str, group: Group) -> set[str]:
        """Names of the group's VMs the backend service finds HEALTHY (its /health check on vLLM)."""
        where = (
            f"regions/{group_region(group, region)}"
            if group.kind == "regionInstanceGroupManager"
            else f"zones/{group.zone}"
        )
        reference = self.types.ResourceGroupReference(
            group=f"projects/{project}/{where}/instanceGroups/{group.name}"
        )
        health = self.backends.get_health(
            project=project, backend_service=backend, resource_group_reference_resource=reference
        )
        return {_last(status.instance) for status in health.health_status if status.health_state == "HEALTHY"}

    def phase(self, project: str, zone: str, instance: str) -> tuple[str, str]:
        """The health agent's guest attributes ``vllm/phase`` and ``vllm/timings`` (empty when it has
        written none: the API answers 404 then)."""
        from google.api_core import exceptions

        try:
            found = self.instances.get_guest_attributes(
                request=self.types.GetGuestAttributesInstanceRequest(
                    project=project, zone=zone, instance=instance, query_path=f"{GUEST_NAMESPACE}/"
                )
            )
        except exceptions.NotFound:
            return "", ""
        values = {item.key: item.value for item in found.query_value.items}
        return values.get("phase", ""), values.get("timings", "")


@contextmanager
def _asking(source: ReplicaSource) -> Iterator[None]:
    """An API or credentials error, as the one-line ListError the tools print."""
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        yield
    except (exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError) as error:
        raise ListError(f"GCP project {source.scope} ({source.location}): {error}") from error


def list_replicas(source: ReplicaSource, now: datetime | None = None, **client_args: Any) -> list[Replica]:
    compute = Compute(**client_args)
    from google.api_core import exceptions

    project, region = source.scope, source.location
    replicas: list[Replica] = []
    with _asking(source):
        for group in source.groups:
            healthy: set[str] = set()
            balancer = group.balancer or source.balancer
            if group.role != RAY_WORKER and balancer:
                healthy = compute.healthy_instances(project, region, balancer, group)
            for managed in compute.managed_instances(project, region, group):
                name = managed.name or _last(managed.instance)
                zone = _last(managed.instance.split("/instances/")[0]) if managed.instance else group.zone
                instance = None
                if managed.instance and managed.instance_status not in ("", "PROVISIONING"):
                    try:
                        instance = compute.instances.get(project=project, zone=zone, instance=name)
                    except exceptions.NotFound:
                        instance = None
                status, detail = vm_status(
                    managed, instance, name in healthy, group.role, source.startup_seconds, now
                )
                phase, timings = compute.phase(project, zone, name) if instance is not None else ("", "")
                shown, moments = published_phase(phase, timings)
                replica = with_phase(
                    Replica(
                        id="" if group.replica is None else str(group.replica),
                        name=name,
                        role=group.role,
                        ip=instance.network_interfaces[0].network_i_p
                        if instance is not None and instance.network_interfaces
                        else "",
                        launched=parse_time(instance.creation_timestamp) if instance is not None else None,
                        resources=_resources(instance) if instance is not None else "",
                        zone=zone,
                        status=status,
                        detail=detail,
                        extra={"instanceId": str(managed.id) if managed.id else "", "zone": zone},
                        phase=shown,
                        timings=moments,
                        revision=group.revision,
                    )
                )
                replicas.append(replica)
    single = [replica for replica in replicas if replica.role == SERVE]
    return number_by_launch(single) + [replica for replica in replicas if replica.role != SERVE]


def desired_replicas(source: ReplicaSource, **client_args: Any) -> int:
    """Replicas the platform is converging on: the serving groups' target sizes (the autoscaler sets them
    when it owns the count) and, for multi-node replicas, one per Ray head group of target size 1."""
    compute = Compute(**client_args)
    with _asking(source):
        return sum(
            compute.target_size(source.scope, source.location, group)
            for group in counted_groups(source.groups)
        )


def read_logs(
    source: ReplicaSource, query: LogQuery, emit: Callable[[LogLine], None], **client_args: Any
) -> None:
    """The containers' output from Cloud Logging, where docker's gcplogs driver puts it: log
    ``gcplogs-docker-driver``, each entry naming its VM in ``jsonPayload.instance.name``."""
    try:
        from google.cloud import logging as cloud_logging
    except ImportError as error:
        raise ListError(f"google-cloud-logging is not installed: {INSTALL_TOOLS}") from error
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions

    project = source.scope
    client = cloud_logging.Client(project=project, _use_grpc=False, **client_args)
    by_name = {replica.name: replica for replica in query.replicas}
    instances = " OR ".join(f'"{name}"' for name in by_name)
    since, seen = query.since, set()
    while True:
        log_filter = (
            f'logName="projects/{project}/logs/{source.logs}" AND jsonPayload.instance.name=({instances})'
            f' AND timestamp>="{since.isoformat()}"'
        )
        try:
            entries = list(
                client.list_entries(
                    resource_names=[f"projects/{project}"],
                    filter_=log_filter,
                    order_by=cloud_logging.ASCENDING,
                    page_size=1000,
                )
            )
        except (exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError) as error:
            raise ListError(f"Cloud Logging in project {project}: {error}") from error
        for entry in entries:
            payload = entry.payload if isinstance(entry.payload, dict) else {"message": str(entry.payload)}
            replica = by_name.get((payload.get("instance") or {}).get("name", ""))
            if replica is None or entry.insert_id in seen:
                continue
            seen.add(entry.insert_id)
            moment = parse_time(entry.timestamp)
            since = max(since, moment) if moment else since
            emit(LogLine(replica, moment, str(payload.get("message", payload.get("data", ""))).rstrip("\n")))
        if not query.follow or not query.keep_going():
            return
        time.sleep(query.poll_seconds)
