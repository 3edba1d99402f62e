"""An AWS stack for the operator tools: its replicas (Auto Scaling instances, EC2 details, target health)
for ``tools.status``, their containers' CloudWatch logs for ``tools.logs``.

Loaded only by the tools (``Platform.module("status")``), never by the Pulumi program; boto3 is imported
when asked (requirements-tools.txt). Credentials and the endpoint come from boto3's own chain
(``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ...), the region from the stack's ``replicaSource``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
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
    STARTING,
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

#: The instance tags the health agent publishes its phase and timings in (components/aws/identity.py
#: PHASE_TAGS; this module is the tools', which never import the program's).
PHASE_TAG, TIMINGS_TAG = "vllm:phase", "vllm:timings"
#: EC2's state reason for a Spot Instance it reclaimed (EC2 API reference, StateReason).
SPOT_RECLAIMED = "Server.SpotInstanceTermination"
PENDING_STATES = ("Pending", "Pending:Wait", "Pending:Proceed", "Warmed:Pending")
LEAVING_STATES = (
    "Terminating",
    "Terminating:Wait",
    "Terminating:Proceed",
    "Terminated",
    "Detaching",
    "Detached",
    "EnteringStandby",
    "Standby",
)


def session(region: str) -> Any:
    """boto3's default session in ``region``; boto3 is the tools' dependency, loaded only when asked."""
    try:
        import boto3
    except ImportError as error:
        raise ListError(f"boto3 is not installed: {INSTALL_TOOLS}") from error
    return boto3.session.Session(region_name=region)


def clients(region: str) -> tuple[Any, Any, Any]:
    """autoscaling, ec2 and elbv2 clients in ``region``."""
    aws = session(region)
    return aws.client("autoscaling"), aws.client("ec2"), aws.client("elbv2")


def instance_status(
    member: Mapping[str, Any],
    instance: Mapping[str, Any],
    target: Mapping[str, Any] | None,
    role: str,
    startup_seconds: int,
    now: datetime | None = None,
) -> tuple[str, str]:
    """(status, detail) of one group member from its lifecycle, its EC2 state and its target health."""
    lifecycle = str(member.get("LifecycleState", ""))
    reason = instance.get("StateReason") or {}
    state = (instance.get("State") or {}).get("Name", "")
    if reason.get("Code") == SPOT_RECLAIMED:
        return PREEMPTED, str(reason.get("Message", ""))
    if lifecycle in LEAVING_STATES or state in ("shutting-down", "terminated", "stopping", "stopped"):
        return SHUTTING_DOWN, lifecycle or state
    if member.get("HealthStatus") == "Unhealthy":
        return FAILED, "marked Unhealthy: the group replaces it"
    if lifecycle in PENDING_STATES or state == "pending":
        return PROVISIONING, lifecycle or state
    launched = parse_time(instance.get("LaunchTime"))
    if role == RAY_WORKER:  # not a target: its own watchdog judges its Ray membership
        return running_status(True, launched, startup_seconds, now), ""
    target_health = (target or {}).get("TargetHealth") or {}
    target_state = target_health.get("State", "")
    if target_state == "draining":
        return SHUTTING_DOWN, "draining"
    if target_state == "initial":
        return STARTING, str(target_health.get("Description", ""))
    status = running_status(target_state == "healthy", launched, startup_seconds, now)
    return status, "" if status == READY else str(target_health.get("Description") or target_state)


def _ids_filter(ids: list[str]) -> list[dict]:
    """By filter, not InstanceIds: an instance that left between the two calls is then missing from
    the answer instead of failing it (InvalidInstanceID.NotFound)."""
    return [{"Name": "instance-id", "Values": ids}]


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page[key]


@contextmanager
def _asking(source: ReplicaSource) -> Iterator[None]:
    """An API or credentials error, as the one-line ListError the tools print."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise ListError(f"AWS {source.location}: {error}") from error


def list_replicas(source: ReplicaSource, now: datetime | None = None) -> list[Replica]:
    autoscaling, ec2, elbv2 = clients(source.location)
    roles = {group.name: group for group in source.groups}
    with _asking(source):
        members = [
            (roles[group["AutoScalingGroupName"]], member)
            for group in _pages(
                autoscaling,
                "describe_auto_scaling_groups",
                "AutoScalingGroups",
                AutoScalingGroupNames=list(roles),
            )
            for member in group.get("Instances", [])
        ]
        ids = [member["InstanceId"] for _, member in members]
        instances = {
            instance["InstanceId"]: instance
            for reservation in (
                _pages(ec2, "describe_instances", "Reservations", Filters=_ids_filter(ids)) if ids else []
            )
            for instance in reservation["Instances"]
        }
        # Every target group the groups are in: the stack's, and a canary revision's own (vllm:canary).
        targets = {}
        balancers = {group.balancer or source.balancer for group in source.groups} - {""}
        for balancer in sorted(balancers):
            health = elbv2.describe_target_health(TargetGroupArn=balancer)
            targets.update({target["Target"]["Id"]: target for target in health["TargetHealthDescriptions"]})

    replicas: list[Replica] = []
    for group, member in members:
        instance_id = member["InstanceId"]
        instance = instances.get(instance_id, {})
        status, detail = instance_status(
            member, instance, targets.get(instance_id), group.role, source.startup_seconds, now
        )
        tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
        shown, moments = published_phase(tags.get(PHASE_TAG, ""), tags.get(TIMINGS_TAG, ""))
        instance_type = member.get("InstanceType") or instance.get("InstanceType", "")
        spot = " [Spot]" if instance.get("InstanceLifecycle") == "spot" else ""
        replicas.append(
            with_phase(
                Replica(
                    id="" if group.replica is None else str(group.replica),
                    name=instance_id,
                    role=group.role,
                    ip=instance.get("PrivateIpAddress", ""),
                    launched=parse_time(instance.get("LaunchTime")),
                    resources=f"{instance_type}{spot}",
                    zone=member.get("AvailabilityZone", ""),
                    status=status,
                    detail=detail,
                    extra={"instanceId": instance_id},
                    phase=shown,
                    timings=moments,
                    revision=group.revision,
                )
            )
        )
    single = [replica for replica in replicas if replica.role == SERVE]
    return number_by_launch(single) + [replica for replica in replicas if replica.role != SERVE]


def desired_replicas(source: ReplicaSource) -> int:
    """Replicas the platform is converging on: the serving groups' desired capacity (target tracking sets
    it when the autoscaler owns the count) and, for multi-node replicas, one per Ray head group."""
    autoscaling = session(source.location).client("autoscaling")
    names = [group.name for group in counted_groups(source.groups)]
    with _asking(source):
        pages = _pages(
            autoscaling, "describe_auto_scaling_groups", "AutoScalingGroups", AutoScalingGroupNames=names
        )
        groups = list(pages)
    missing = set(names) - {group["AutoScalingGroupName"] for group in groups}
    if missing:
        raise ListError(f"AWS {source.location}: no Auto Scaling group {', '.join(sorted(missing))}")
    return sum(int(group["DesiredCapacity"]) for group in groups)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def read_logs(source: ReplicaSource, query: LogQuery, emit: Callable[[LogLine], None]) -> None:
    """The containers' output from the stack's CloudWatch Logs group, one stream per instance (awslogs)."""
    if not source.logs:
        raise ListError("this stack ships no container logs (no log group in replicaSource): run `pulumi up`")
    logs = session(source.location).client("logs")
    from botocore.exceptions import BotoCoreError, ClientError

    by_stream = {replica.extra.get("instanceId", replica.name): replica for replica in query.replicas}
    start, seen = _millis(query.since), set()
    while True:
        try:
            # FilterLogEvents takes at most 100 stream names; a stack's instances are far fewer.
            events = [
                event
                for page in logs.get_paginator("filter_log_events").paginate(
                    logGroupName=source.logs, logStreamNames=list(by_stream)[:100], startTime=start
                )
                for event in page["events"]
            ]
        except (BotoCoreError, ClientError) as error:
            raise ListError(f"CloudWatch Logs {source.logs}: {error}") from error
        for event in sorted(events, key=lambda event: (event["timestamp"], event["eventId"])):
            if event["eventId"] in seen:
                continue
            seen.add(event["eventId"])
            start = max(start, event["timestamp"])
            moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
            emit(LogLine(by_stream[event["logStreamName"]], moment, event["message"].rstrip("\n")))
        if not query.follow or not query.keep_going():
            return
        time.sleep(query.poll_seconds)
