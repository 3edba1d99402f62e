"""AWS replicas for `tools.status`: the lister against EC2, Auto Scaling and ELBv2 emulated by moto."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from components.aws import identity
from components.aws import status as aws_status
from components.observe import (
    FAILED,
    INSTALL_TOOLS,
    NOT_READY,
    PREEMPTED,
    READY,
    SHUTTING_DOWN,
    STARTING,
    ListError,
    ReplicaSource,
)
from tests.harness import run_program
from tests.test_status import API_KEY, SERVED_MODEL, _fake_pulumi, serve  # noqa: F401 (serve: a fixture)
from tools import logs, status

boto3 = pytest.importorskip("boto3", reason=INSTALL_TOOLS)
moto_server = pytest.importorskip("moto.server")

pytestmark = pytest.mark.timeout(120)
REGION = "us-east-1"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def program_source() -> ReplicaSource:
    """What `pulumi up --stack aws-h100` exports as replicaSource (under the mock runtime)."""
    run = run_program(
        "aws-h100", secrets={"vllm:hfToken": "hf_testtoken123", "vllm:apiKey": "sk-test-4567890abc"}
    )
    return ReplicaSource.from_output(run.outputs["replicaSource"])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def moto_image(moto_endpoint) -> str:
    """An AMI of moto's: listing them all takes seconds of the server's CPU, so once per module."""
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # AWS_ENV's
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_endpoint, **credentials)
    return ec2.describe_images()["Images"][0]["ImageId"]


@dataclass
class Fleet:
    source: ReplicaSource
    instances: list[str]
    target_group: str


@pytest.fixture
def fleet(moto_endpoint, moto_image, program_source, monkeypatch) -> Iterator[Fleet]:
    """The stack's Auto Scaling group of 2 in moto, named as the program names it, in a target group."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    ec2 = boto3.client("ec2", region_name=REGION)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="vllm-aws-h100-serve",
        LaunchTemplateData={"ImageId": moto_image, "InstanceType": "p5.48xlarge"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    target_group = elbv2.create_target_group(
        Name="vllm-aws-h100-replicas", Protocol="HTTP", Port=8000, VpcId=vpc, HealthCheckPath="/health"
    )["TargetGroups"][0]["TargetGroupArn"]
    (group,) = program_source.groups
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group.name,
        MinSize=2,
        MaxSize=3,
        DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        VPCZoneIdentifier=subnet,
        TargetGroupARNs=[target_group],
    )
    members = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group.name])[
        "AutoScalingGroups"
    ][0]
    yield Fleet(
        replace(program_source, balancer=target_group),
        [member["InstanceId"] for member in members["Instances"]],
        target_group,
    )
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=group.name, ForceDelete=True)
    ec2.terminate_instances(InstanceIds=[member["InstanceId"] for member in members["Instances"]])
    elbv2.delete_target_group(TargetGroupArn=target_group)
    ec2.delete_launch_template(LaunchTemplateId=template)


def test_program_exports_the_group_and_target_group_to_query(program_source):
    assert program_source.platform == "aws"
    assert program_source.location == REGION
    assert [(group.kind, group.role) for group in program_source.groups] == [("autoScalingGroup", "serve")]
    assert program_source.balancer.startswith("arn:aws:elasticloadbalancing:")
    assert program_source.replicas == 2


def test_healthy_targets_are_ready_replicas_with_their_machine_details(fleet):
    replicas = aws_status.list_replicas(fleet.source)
    assert [replica.status for replica in replicas] == [READY, READY]
    assert [replica.id for replica in replicas] == ["1", "2"]
    assert {replica.name for replica in replicas} == set(fleet.instances)
    assert all(replica.resources == "p5.48xlarge" for replica in replicas)
    assert all(replica.zone.startswith(REGION) and replica.ip for replica in replicas)
    assert all(replica.launched is not None for replica in replicas)


def test_an_instance_out_of_the_target_group_is_starting_within_its_load_budget(fleet):
    boto3.client("elbv2", region_name=REGION).deregister_targets(
        TargetGroupArn=fleet.target_group, Targets=[{"Id": fleet.instances[0], "Port": 8000}]
    )
    statuses = {replica.name: replica.status for replica in aws_status.list_replicas(fleet.source)}
    assert statuses == {fleet.instances[0]: STARTING, fleet.instances[1]: READY}


def test_an_unhealthy_target_past_its_load_budget_is_not_ready(fleet):
    boto3.client("elbv2", region_name=REGION).deregister_targets(
        TargetGroupArn=fleet.target_group, Targets=[{"Id": fleet.instances[0], "Port": 8000}]
    )
    later = aws_status.list_replicas(fleet.source)[0].launched + timedelta(
        seconds=fleet.source.startup_seconds + 1
    )
    statuses = {replica.name: replica.status for replica in aws_status.list_replicas(fleet.source, now=later)}
    assert statuses[fleet.instances[0]] == NOT_READY


def test_a_starting_instance_shows_the_phase_its_health_agent_tagged_it_with(fleet):
    boto3.client("elbv2", region_name=REGION).deregister_targets(
        TargetGroupArn=fleet.target_group, Targets=[{"Id": fleet.instances[0], "Port": 8000}]
    )
    tags = {
        "vllm:phase": "weights 41",
        "vllm:timings": "boot=1764061200 docker=1764061260 weights=1764061300",
    }
    boto3.client("ec2", region_name=REGION).create_tags(
        Resources=[fleet.instances[0]], Tags=[{"Key": key, "Value": value} for key, value in tags.items()]
    )
    # long past the estimate: the agent keeps it while its download progresses, so it is STARTING
    later = datetime.now(UTC) + timedelta(seconds=fleet.source.startup_seconds + 1)
    (starting,) = [
        r for r in aws_status.list_replicas(fleet.source, now=later) if r.name == fleet.instances[0]
    ]
    assert (starting.status, starting.detail) == (STARTING, "weights 41%")
    assert starting.as_json()["phaseTimings"] == {
        "boot": "2025-11-25T09:00:00+00:00",
        "docker": "2025-11-25T09:01:00+00:00",
        "weights": "2025-11-25T09:01:40+00:00",
    }


def test_the_phase_tags_are_the_ones_the_instance_role_may_write():
    assert (aws_status.PHASE_TAG, aws_status.TIMINGS_TAG) == identity.PHASE_TAGS


def test_an_instance_that_reported_itself_unhealthy_is_failed(fleet):
    boto3.client("autoscaling", region_name=REGION).set_instance_health(
        InstanceId=fleet.instances[1], HealthStatus="Unhealthy"
    )
    (failed,) = [replica for replica in aws_status.list_replicas(fleet.source) if replica.status == FAILED]
    assert failed.name == fleet.instances[1]
    assert "Unhealthy" in failed.detail


def test_a_stopping_instance_is_shutting_down(fleet):
    boto3.client("ec2", region_name=REGION).stop_instances(InstanceIds=[fleet.instances[0]])
    statuses = {replica.name: replica.status for replica in aws_status.list_replicas(fleet.source)}
    assert statuses[fleet.instances[0]] == SHUTTING_DOWN


def test_a_reclaimed_spot_instance_is_preempted():
    member = {"LifecycleState": "Terminating", "HealthStatus": "Unhealthy"}
    instance = {
        "State": {"Name": "shutting-down"},
        "StateReason": {"Code": aws_status.SPOT_RECLAIMED, "Message": "Server.SpotInstanceTermination: ..."},
    }
    assert aws_status.instance_status(member, instance, None, "serve", 600)[0] == PREEMPTED


def test_an_unreachable_api_is_a_list_error_naming_the_region(program_source, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ListError, match=f"AWS {REGION}"):
        aws_status.list_replicas(program_source)


def status_of_stack(fleet: Fleet, url: str, tmp_path, *argv: str) -> tuple[int, str, str]:
    """`python -m tools.status --stack aws-h100 ...` with a pulumi that prints the stack's outputs."""
    outputs = {"endpoint": url, "apiKey": API_KEY, "model": SERVED_MODEL}
    env = {**_fake_pulumi(tmp_path, {**outputs, "replicaSource": fleet.source.as_output()}), **AWS_ENV}
    env["AWS_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL"]
    out, err = io.StringIO(), io.StringIO()
    code = status.main(["--stack", "aws-h100", *argv], env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_status_prints_the_service_row_and_a_row_per_replica(fleet, serve, tmp_path):  # noqa: F811 (the fixture)
    url, _ = serve()
    code, out, _ = status_of_stack(fleet, url, tmp_path)
    assert code == status.EXIT_READY
    lines = out.splitlines()
    service = lines[lines.index("Services") + 2].split()
    assert service == ["aws-h100", "READY", "2/2", "2", "(fixed)", url]
    header = lines[lines.index("Service Replicas") + 1].split()
    assert header == ["ID", "NAME", "IP", "LAUNCHED", "RESOURCES", "ZONE", "STATUS"]
    rows = [line.split() for line in lines if line.split()[:1] in (["1"], ["2"])]
    assert [(row[0], row[1], row[-1]) for row in rows] == [
        (str(index), name, "READY")
        for index, name in enumerate(sorted(fleet.instances, key=rows_order(rows)), 1)
    ]


def rows_order(rows):
    names = [row[1] for row in rows]
    return names.index


def test_wait_holds_out_for_every_replica_not_just_the_endpoint(fleet, serve, tmp_path):  # noqa: F811 (the fixture)
    url, _ = serve()
    boto3.client("elbv2", region_name=REGION).deregister_targets(
        TargetGroupArn=fleet.target_group, Targets=[{"Id": fleet.instances[0], "Port": 8000}]
    )
    code, out, err = status_of_stack(fleet, url, tmp_path, "--wait", "--timeout", "4", "--interval", "0.2")
    assert code == status.EXIT_TIMEOUT
    assert "TIMED OUT waiting: READY 1/2 replicas" in out
    assert err and all(
        line.startswith(f"waiting for {url}: READY 1/2 replicas (") for line in err.splitlines()
    )


def test_json_report_carries_the_service_and_its_replicas(fleet, serve, tmp_path):  # noqa: F811 (the fixture)
    url, _ = serve()
    code, out, _ = status_of_stack(fleet, url, tmp_path, "--json")
    report = json.loads(out)
    assert code == status.EXIT_READY
    assert report["service"] == {
        "name": "aws-h100",
        "status": "READY",
        "readyReplicas": 2,
        "currentReplicas": 2,
        "desiredReplicas": 2,
        "minReplicas": None,
        "maxReplicas": None,
    }
    assert {replica["name"] for replica in report["replicas"]} == set(fleet.instances)
    assert all(replica["status"] == "READY" and replica["zone"] for replica in report["replicas"])


def test_logs_of_every_instance_come_from_its_stream_in_the_stacks_log_group(fleet, tmp_path):
    source = fleet.source
    assert source.logs == "/vllm/vllm-aws-h100"
    cloudwatch = boto3.client("logs", region_name=REGION)
    cloudwatch.create_log_group(logGroupName=source.logs)
    now = int(datetime.now(UTC).timestamp() * 1000)
    for offset, instance in enumerate(fleet.instances):
        cloudwatch.create_log_stream(logGroupName=source.logs, logStreamName=instance)
        cloudwatch.put_log_events(
            logGroupName=source.logs,
            logStreamName=instance,
            logEvents=[
                {
                    "timestamp": now - 1000 + offset,
                    "message": f"INFO {instance} Application startup complete.",
                }
            ],
        )
    try:
        env = {
            **_fake_pulumi(tmp_path, {"endpoint": "http://x", "replicaSource": source.as_output()}),
            **AWS_ENV,
        }
        out, err = io.StringIO(), io.StringIO()
        assert logs.main(["--stack", "aws-h100"], env=env, out=out, err=err) == logs.EXIT_OK, err.getvalue()
        replicas = {replica.name: replica.id for replica in aws_status.list_replicas(source)}
        assert sorted(out.getvalue().splitlines()) == sorted(
            f"({replicas[instance]} {instance}) INFO {instance} Application startup complete."
            for instance in fleet.instances
        )
        out = io.StringIO()
        logs.main(["--stack", "aws-h100", "--replica", fleet.instances[1]], env=env, out=out, err=err)
        assert out.getvalue().splitlines() == [f"INFO {fleet.instances[1]} Application startup complete."]
    finally:
        cloudwatch.delete_log_group(logGroupName=source.logs)


def test_the_program_exports_no_bounds_for_a_fixed_count(program_source):
    assert program_source.bounds is None


def test_an_autoscaled_program_exports_its_bounds() -> None:
    run = run_program(
        "aws-h100",
        config={"vllm:replicas": "unset", "vllm:maxReplicas": "4", "vllm:targetQpsPerReplica": "2"},
        secrets={"vllm:hfToken": "hf_testtoken123", "vllm:apiKey": "sk-test-4567890abc"},
    )
    assert ReplicaSource.from_output(run.outputs["replicaSource"]).bounds == (1, 4)


def test_desired_replicas_are_the_groups_desired_capacity(fleet):
    assert aws_status.desired_replicas(fleet.source) == 2


def test_status_counts_ready_against_what_the_autoscaler_asked_for(fleet, serve, tmp_path):  # noqa: F811 (the fixture)
    url, _ = serve()
    (group,) = fleet.source.groups
    # What target tracking does on a load over its target: raise the group's desired capacity.
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=group.name, MaxSize=4)
    autoscaling.set_desired_capacity(AutoScalingGroupName=group.name, DesiredCapacity=3)
    members = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group.name])
    (new,) = {m["InstanceId"] for m in members["AutoScalingGroups"][0]["Instances"]} - set(fleet.instances)
    boto3.client("elbv2", region_name=REGION).deregister_targets(  # still loading: not a healthy target
        TargetGroupArn=fleet.target_group, Targets=[{"Id": new, "Port": 8000}]
    )
    scaled = replace(fleet, source=replace(fleet.source, bounds=(1, 4)))
    code, out, _ = status_of_stack(scaled, url, tmp_path, "--json")
    service = json.loads(out)["service"]
    assert code == status.EXIT_NOT_READY
    assert (service["readyReplicas"], service["currentReplicas"], service["desiredReplicas"]) == (2, 3, 3)
    assert (service["minReplicas"], service["maxReplicas"]) == (1, 4)
    code, out, _ = status_of_stack(scaled, url, tmp_path)
    row = out.splitlines()[out.splitlines().index("Services") + 2].split()
    assert row[1:6] == ["NOT_READY", "2/3", "3", "(autoscaled", "1-4)"]


def test_a_group_missing_from_aws_is_a_list_error_naming_it(fleet):
    gone = replace(fleet.source, groups=[replace(fleet.source.groups[0], name="vllm-gone")])
    with pytest.raises(ListError, match="no Auto Scaling group vllm-gone"):
        aws_status.desired_replicas(gone)
