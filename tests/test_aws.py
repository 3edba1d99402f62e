"""AWS: `pulumi up --stack aws-h100` serves vLLM on EC2 GPU instances behind an Application Load Balancer."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math

import pytest

from components import launch, rates
from components.aws import fakes as fakes_aws
from components.aws import machines
from components.aws.network import NetworkError
from components.launch import PORT
from components.spec import SpecError, build_spec
from tests.harness import Resource, Run, run_program
from tests.test_vm_bootstrap import shellcheck

HF_TOKEN, API_KEY = "hf_testtoken123", "sk-test-key-4567890"
SECRETS = {"vllm:hfToken": HF_TOKEN, "vllm:apiKey": API_KEY}
USER_VPC = {
    "vllm:vpcId": fakes_aws.USER_VPC,
    "vllm:subnetIds": ["subnet-0a5e40000000000a1", "subnet-0a5e40000000000b1", "subnet-0a5e40000000000d1"],
}

TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
GROUP = "aws:autoscaling/group:Group"
ALB = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
PROVIDER = "pulumi:providers:aws"


@pytest.fixture(scope="module")
def h100() -> Run:
    return run_program("aws-h100", secrets=SECRETS)


@pytest.fixture(scope="module")
def user_vpc() -> Run:
    return run_program("aws-h100", config=USER_VPC, secrets=SECRETS)


def aws_stack(gpu: str, **config) -> Run:
    return run_program(
        "aws-test", config={"vllm:cloud": "aws", "vllm:gpu": gpu, "vllm:model": "Qwen/Qwen3-8B", **config}
    )


def refused(stack: str, config: dict) -> Exception:
    """The error a run fails with (the harness clears what a failed run leaves behind)."""
    with pytest.raises(Exception) as raised:
        run_program(stack, config=config)
    return raised.value


def user_data(template: Resource) -> str:
    """The boot script a launch template hands to cloud-init: base64, gzip'd when large."""
    raw = base64.b64decode(template.inputs["userData"])
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


def readable(resource: Resource) -> str:
    """Everything a resource declares, with base64 and gzip'd user data decoded."""
    text = resource.text()
    if resource.type == TEMPLATE:
        text += "\n" + user_data(resource)
    return text


def sg_id(run: Run, suffix: str) -> str:
    (group,) = [r for r in run.of_type(SECURITY_GROUP) if r.name.endswith(suffix)]
    return f"{group.name}-id"


# --- the endpoint and the components -------------------------------------------------------------------


def test_the_endpoint_is_the_load_balancers_http_address(h100):
    dns = h100.one(ALB).outputs["dnsName"]
    assert h100.outputs["endpoint"] == f"http://{dns}"


def test_the_stack_is_built_from_the_aws_components(h100):
    types = {r.type for r in h100.resources if r.type.startswith("vllm:aws:")}
    assert types == {
        "vllm:aws:Network",
        "vllm:aws:ServiceIdentity",
        "vllm:aws:LoadBalancer",
        "vllm:aws:ReplicaGroup",
        "vllm:aws:WeightCache",
        "vllm:aws:ServiceDashboard",
    }
    assert all(
        h100.by_urn(r.parent).type == "vllm:index:VllmService" for r in h100.of_type("vllm:aws:Network")
    )


def test_every_aws_resource_uses_the_one_explicit_provider_of_the_stacks_region(h100):
    provider = h100.one(PROVIDER)
    assert provider.inputs["region"] == "us-east-1"
    assert h100.by_urn(provider.parent).type == "vllm:index:VllmService"
    reference = f"{provider.urn}::{provider.name}-id"
    aws_resources = [r for r in h100.resources if r.type.startswith("aws:")]
    assert aws_resources and all(r.provider == reference for r in aws_resources)


def test_every_lookup_goes_through_the_explicit_provider(h100):
    provider = h100.one(PROVIDER)
    assert h100.invokes and all(i.provider == f"{provider.urn}::{provider.name}-id" for i in h100.invokes)


def test_every_aws_resource_is_a_child_of_an_aws_component(h100):
    for resource in (r for r in h100.resources if r.type.startswith("aws:")):
        assert any(a.type.startswith("vllm:aws:") for a in h100.ancestors(resource)), resource.name


def test_the_provider_tags_everything_with_the_stack(h100):
    tags = json.loads(h100.one(PROVIDER).inputs["defaultTags"])["tags"]
    assert tags["vllm:stack"] == "aws-h100" and tags["vllm:service"] == "vllm-aws-h100"


# --- secrets --------------------------------------------------------------------------------------------


def test_secret_values_appear_only_in_secrets_manager_versions(h100):
    for resource in h100.resources:
        if resource.type != SECRET_VERSION:
            text = readable(resource)
            assert HF_TOKEN not in text and API_KEY not in text, resource.name
    visible = json.dumps({k: v for k, v in h100.outputs.items() if k != "apiKey"})
    assert HF_TOKEN not in visible and API_KEY not in visible


def test_each_secret_has_a_deterministic_name_and_a_version_holding_its_value(h100):
    names = sorted(r.inputs["name"] for r in h100.of_type(SECRET))
    assert names == ["vllm-aws-h100/api-key", "vllm-aws-h100/hf-token"]
    values = sorted(json.dumps(r.inputs["secretString"]) for r in h100.of_type(SECRET_VERSION))
    assert any(API_KEY in v for v in values) and any(HF_TOKEN in v for v in values)


def test_secrets_are_deleted_at_once_so_destroy_then_up_reuses_their_names(h100):
    assert all(r.inputs["recoveryWindowInDays"] == 0 for r in h100.of_type(SECRET))


def role_statements(run: Run) -> dict[str, dict]:
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    return {",".join(_listed(statement["Action"])): statement for statement in policy["Statement"]}


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_the_instance_role_may_read_the_secrets_report_its_health_write_logs_and_metrics_and_nothing_else(
    h100,
):
    statements = role_statements(h100)
    weight_cache = {
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
    }  # its own bucket: test_weight_cache_clouds
    assert set(statements) == {
        "secretsmanager:GetSecretValue",
        "autoscaling:SetInstanceHealth",
        *weight_cache,
        "logs:CreateLogStream,logs:PutLogEvents",
        "cloudwatch:PutMetricData",  # its own namespace: test_metrics_agent
        # its own groups' launch hook, and which group it is in: test_the_role_may_complete_and_beat_...
        "autoscaling:CompleteLifecycleAction,autoscaling:RecordLifecycleActionHeartbeat",
        "autoscaling:DescribeAutoScalingInstances",
        "ec2:CreateTags",  # its own start's phase on its own instance: the next test
    }
    secret_arns = sorted(r.outputs["arn"] for r in h100.of_type(SECRET))
    assert statements["secretsmanager:GetSecretValue"] == {
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": secret_arns,
    }
    # Every grant names its resources, but PutMetricData, which has none: a condition scopes it instead;
    # and DescribeAutoScalingInstances, a read that supports no resource-level permissions.
    assert all(
        s["Effect"] == "Allow"
        and (
            s["Resource"] != "*"
            or list(s.get("Condition", {})) == ["StringEquals"]
            or s["Action"] == "autoscaling:DescribeAutoScalingInstances"
        )
        for s in statements.values()
    )
    assert not h100.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")


def test_the_role_may_tag_only_the_stacks_own_instances_and_only_with_the_phase(h100):
    statement = role_statements(h100)["ec2:CreateTags"]
    assert statement["Resource"] == "arn:aws:ec2:us-east-1:*:instance/*"
    assert statement["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/vllm:stack": "aws-h100"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["vllm:phase", "vllm:timings"]},
    }


def test_container_logs_go_to_a_stack_owned_log_group_with_a_retention_period(h100):
    (group,) = h100.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == "/vllm/vllm-aws-h100"
    assert group.inputs["retentionInDays"] == 30
    statement = role_statements(h100)["logs:CreateLogStream,logs:PutLogEvents"]
    assert statement["Resource"] == f"{group.outputs['arn']}:log-stream:*"
    assert h100.outputs["replicaSource"]["logs"] == "/vllm/vllm-aws-h100"


def test_every_machine_ships_its_container_log_to_that_group(h100):
    assert all("\nLOG_GROUP=/vllm/vllm-aws-h100\n" in user_data(t) for t in h100.of_type(TEMPLATE))


def test_machines_may_mark_unhealthy_only_the_groups_of_their_own_stack(h100):
    statement = role_statements(h100)["autoscaling:SetInstanceHealth"]
    assert statement["Resource"] == (
        "arn:aws:autoscaling:us-east-1:*:autoScalingGroup:*:autoScalingGroupName/vllm-aws-h100-*"
    )
    assert statement["Condition"] == {"StringEquals": {"autoscaling:ResourceTag/vllm:stack": "aws-h100"}}
    for group in h100.of_type(GROUP):
        assert group.name.startswith("vllm-aws-h100-")  # Pulumi auto-names the group after it
        tags = {t["key"]: t["value"] for t in group.inputs["tags"]}
        assert tags["vllm:stack"] == "aws-h100"


def test_the_health_permission_follows_the_region():
    run = aws_stack("L4:1", **{"aws:region": "eu-west-2"})
    statement = role_statements(run)["autoscaling:SetInstanceHealth"]
    assert statement["Resource"].startswith("arn:aws:autoscaling:eu-west-2:*:")


@pytest.mark.parametrize(
    ("region", "expected"),
    [("us-east-1", "aws"), ("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn")],
)
def test_arns_use_the_partition_of_the_region(region, expected):
    # No catalogued GPU is sold in GovCloud or China today, so no stack reaches these through the program.
    from components.aws.identity import partition

    assert partition(region) == expected


def test_only_ec2_may_assume_the_instance_role(h100):
    trust = json.loads(h100.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert (
        statement["Principal"] == {"Service": "ec2.amazonaws.com"} and statement["Action"] == "sts:AssumeRole"
    )


def test_an_open_model_has_no_hf_token_secret_and_the_role_reads_only_the_api_key():
    run = aws_stack("L4:1")
    assert [r.inputs["name"] for r in run.of_type(SECRET)] == ["vllm-aws-test/api-key"]
    statement = role_statements(run)["secretsmanager:GetSecretValue"]
    assert statement["Resource"] == [run.one(SECRET).outputs["arn"]]
    assert "hf-token" not in user_data(run.one(TEMPLATE)).split("HF_TOKEN_SECRET=")[1].split("\n")[0]


def test_the_boot_script_reads_the_secrets_by_name_from_secrets_manager(h100):
    script = user_data(h100.one(TEMPLATE))
    assert "API_KEY_SECRET=vllm-aws-h100/api-key" in script
    assert "HF_TOKEN_SECRET=vllm-aws-h100/hf-token" in script
    assert "aws secretsmanager get-secret-value" in script and "\nREGION=us-east-1\n" in script


# --- machines -------------------------------------------------------------------------------------------


def test_machines_boot_the_catalog_instance_type_from_the_dlami_ec2_resolves_at_launch(h100):
    template = h100.one(TEMPLATE).inputs
    assert template["instanceType"] == "p5.48xlarge"
    assert template["imageId"] == f"resolve:ssm:{machines.DLAMI_PARAMETER}"


def test_the_dlami_is_the_ubuntu_24_04_family_whose_driver_runs_cuda_13():
    # vLLM 0.33 images are CUDA 13 builds: driver >= 580, shipped by the 24.04 Base OSS family
    assert machines.DLAMI_PARAMETER == (
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    )


def test_a_new_dlami_release_changes_no_launch_template(h100, monkeypatch):
    monkeypatch.setattr(fakes_aws, "DLAMI_ID", "ami-0123456789abcdef1")
    released = run_program("aws-h100", secrets=SECRETS)
    assert released.one(TEMPLATE).inputs == h100.one(TEMPLATE).inputs


def test_a_pinned_ami_is_booted_as_is_with_its_own_root_device():
    run = aws_stack("L4:1", **{"vllm:amiId": "ami-0abc1234def567890"})
    template = run.one(TEMPLATE).inputs
    assert template["imageId"] == "ami-0abc1234def567890"
    assert template["blockDeviceMappings"][0]["deviceName"] == "/dev/sda1"
    assert ("aws:ec2/getAmi:getAmi", ["ami-0abc1234def567890"]) in [
        (i.token, i.args["filters"][0]["values"]) for i in run.invokes if i.token == "aws:ec2/getAmi:getAmi"
    ]
    assert not [i for i in run.invokes if i.token == "aws:ssm/getParameter:getParameter"]


def test_the_root_volume_is_encrypted_gp3_on_the_amis_root_device(h100):
    (mapping,) = h100.one(TEMPLATE).inputs["blockDeviceMappings"]
    assert mapping["deviceName"] == "/dev/sda1"
    assert mapping["ebs"]["volumeType"] == "gp3"  # its size: tests/test_boot_disk.py
    assert mapping["ebs"]["encrypted"] == "true"
    assert mapping["ebs"]["throughput"] >= 250  # the load budget assumes ~200 MB/s of weights


def test_instance_metadata_requires_imdsv2_tokens_within_the_host(h100):
    metadata = h100.one(TEMPLATE).inputs["metadataOptions"]
    assert metadata["httpTokens"] == "required" and metadata["httpPutResponseHopLimit"] == 1


def test_the_machine_profile_is_the_secret_readers_instance_profile(h100):
    profile = h100.one("aws:iam/instanceProfile:InstanceProfile").outputs["arn"]
    assert h100.one(TEMPLATE).inputs["iamInstanceProfile"] == {"arn": profile}


def test_user_data_is_the_shared_boot_script_and_passes_shellcheck(h100):
    script = user_data(h100.one(TEMPLATE))
    assert script.startswith("#!/usr/bin/env bash") and "ROLE=serve" in script
    result = shellcheck(script)
    assert result.returncode == 0, result.stdout


def test_on_demand_stacks_launch_on_demand_machines(h100):
    assert h100.one(TEMPLATE).inputs.get("instanceMarketOptions") is None


def test_single_node_spot_stacks_launch_every_machine_on_spot_from_a_mixed_instances_group():
    run = aws_stack("A10G:4", **{"vllm:spot": True})
    assert run.one(TEMPLATE).inputs["instanceType"] == "g5.12xlarge"
    assert "instanceMarketOptions" not in run.one(TEMPLATE).inputs  # the group's policy picks the market
    distribution = run.one("aws:autoscaling/group:Group").inputs["mixedInstancesPolicy"][
        "instancesDistribution"
    ]
    assert (distribution["onDemandBaseCapacity"], distribution["onDemandPercentageAboveBaseCapacity"]) == (
        0,
        0,
    )


def test_spot_ray_groups_launch_one_time_spot_machines_that_terminate_on_interruption():
    run = aws_stack("H100:8", **{"vllm:spot": True, "vllm:nodes": 2})
    for template in run.of_type(TEMPLATE):
        assert template.inputs["instanceMarketOptions"] == {
            "marketType": "spot",
            "spotOptions": {"spotInstanceType": "one-time", "instanceInterruptionBehavior": "terminate"},
        }


@pytest.mark.parametrize(
    ("gpu", "machine"), [("L4:1", "g6.xlarge"), ("T4:1", "g4dn.xlarge"), ("A10G:4", "g5.12xlarge")]
)
def test_each_gpu_request_boots_the_catalogs_machine(gpu, machine):
    assert aws_stack(gpu).one(TEMPLATE).inputs["instanceType"] == machine


def tag_specification(template: Resource, kind: str) -> dict:
    (found,) = [t for t in template.inputs["tagSpecifications"] if t["resourceType"] == kind]
    return found["tags"]


def test_instances_and_volumes_carry_the_stack_tags_the_provider_default_tags_do_not_reach(h100):
    template = h100.one(TEMPLATE)
    for kind in ("instance", "volume", "network-interface"):
        tags = tag_specification(template, kind)
        assert tags["vllm:stack"] == "aws-h100" and tags["vllm:service"] == "vllm-aws-h100"
        assert tags["managed-by"] == "pulumi" and tags["vllm:role"] == "serve"


def test_instances_carry_the_version_ids_of_the_current_secrets_never_their_values(h100):
    versions = {r.name.split("-")[-2]: r.outputs["versionId"] for r in h100.of_type(SECRET_VERSION)}
    revision = tag_specification(h100.one(TEMPLATE), "instance")[machines.SECRETS_REVISION_TAG]
    assert revision == f"api-key={versions['key']} hf-token={versions['token']}"
    assert HF_TOKEN not in revision and API_KEY not in revision


@pytest.mark.parametrize("rotated", ["vllm:apiKey", "vllm:hfToken"])
def test_a_rotated_secret_changes_the_launch_template_so_the_group_refreshes_its_machines(h100, rotated):
    run = run_program("aws-h100", secrets={**SECRETS, rotated: "a-new-value-0123456789"})
    assert run.one(TEMPLATE).inputs != h100.one(TEMPLATE).inputs
    assert run.one(TEMPLATE).inputs["userData"] == h100.one(TEMPLATE).inputs["userData"]  # only the tag moved
    refresh = run.one(GROUP).inputs["instanceRefresh"]
    assert refresh["strategy"] == "Rolling" and refresh["preferences"]["minHealthyPercentage"] == 100


def test_an_unchanged_secret_leaves_the_launch_template_as_it_is(h100):
    assert run_program("aws-h100", secrets=SECRETS).one(TEMPLATE).inputs == h100.one(TEMPLATE).inputs


# --- the group: size, placement, health, rollout --------------------------------------------------------


def test_one_group_runs_a_machine_per_replica_registered_in_the_target_group(h100):
    group = h100.one(GROUP).inputs
    assert group["minSize"] == group["desiredCapacity"] == 2
    assert group["targetGroupArns"] == [h100.one(TARGET_GROUP).outputs["arn"]]


def test_the_load_balancer_only_routes_and_ec2_health_decides_replacement(h100):
    group = h100.one(GROUP).inputs
    assert group["healthCheckType"] == "EC2"  # a vLLM restart fails ELB checks; it must not cost a machine
    # H100:8 without vllm:modelSizeGb: 90% of 640 GB, the fixed steps, the Hub download onto the instance
    # store, then the load into GPU memory, at components/rates.py's slowest rates (the budget)
    first, _ = launch.cold_starts(build_spec("aws-h100", {}), slowest=True)
    storage = first.storage
    hub = math.ceil(576 * 1000 / min(rates.HUB.slowest_mbps, storage.write.slowest_mbps))
    load = math.ceil(576 * 1000 / min(storage.read.slowest_mbps, rates.SAFETENSORS_LOAD.slowest_mbps))
    assert group["healthCheckGracePeriod"] == first.fixed_seconds + hub + load


def test_every_group_of_every_variant_uses_ec2_health():
    for run in (aws_stack("L4:1"), run_program("aws-h200-multinode", config={"vllm:replicas": 2})):
        groups = run.of_type(GROUP)
        assert groups and {g.inputs["healthCheckType"] for g in groups} == {"EC2"}


def test_pulumi_up_does_not_wait_for_gpu_capacity(h100):
    # a timed-out create leaves an unmanaged group launching GPUs (pulumi-aws#5178): never wait
    assert h100.one(GROUP).inputs["waitForCapacityTimeout"] == machines.WAIT_FOR_CAPACITY_TIMEOUT == "0"


def test_groups_carry_the_stack_tags_the_provider_default_tags_do_not_give_them(h100):
    tags = {t["key"]: (t["value"], t["propagateAtLaunch"]) for t in h100.one(GROUP).inputs["tags"]}
    assert tags == {
        "vllm:stack": ("aws-h100", False),
        "vllm:service": ("vllm-aws-h100", False),
        "managed-by": ("pulumi", False),
    }


def test_machines_go_only_to_zones_that_sell_the_instance_type(h100):
    zones = {fakes_aws.SUBNETS[s][1] for s in h100.one(GROUP).inputs["vpcZoneIdentifiers"]}
    assert zones == set(fakes_aws.OFFERED_ZONES["p5.48xlarge"])


def test_a_type_sold_in_a_single_zone_still_gets_its_machines_there():
    group = aws_stack("T4:1").one(GROUP).inputs
    assert [fakes_aws.SUBNETS[s][1] for s in group["vpcZoneIdentifiers"]] == ["us-east-1e"]


def test_the_group_uses_the_latest_launch_template_version(h100):
    template = h100.one(TEMPLATE)
    assert h100.one(GROUP).inputs["launchTemplate"] == {"id": f"{template.name}-id", "version": "1"}


def test_rollouts_launch_a_replacement_before_terminating_one_machine_at_a_time(h100):
    refresh = h100.one(GROUP).inputs["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["minHealthyPercentage"] == 100
    assert refresh["preferences"]["maxHealthyPercentage"] == 150  # 2 replicas: one surge machine
    assert h100.one(GROUP).inputs["maxSize"] == 3


def test_a_single_replica_rolls_with_a_full_surge_machine():
    run = aws_stack("L4:1")
    assert run.one(GROUP).inputs["instanceRefresh"]["preferences"]["maxHealthyPercentage"] == 200
    assert run.one(GROUP).inputs["maxSize"] == 2


# --- load balancer ---------------------------------------------------------------------------------------


def test_the_load_balancer_is_an_internet_facing_alb_across_every_default_subnet(h100):
    alb = h100.one(ALB).inputs
    assert alb["loadBalancerType"] == "application" and alb["internal"] is False
    default_subnets = [
        s for s, (vpc, _, default) in fakes_aws.SUBNETS.items() if vpc == fakes_aws.DEFAULT_VPC
    ]
    assert sorted(alb["subnets"]) == sorted(default_subnets)


def test_idle_timeout_and_draining_outlast_a_long_non_streamed_completion(h100):
    assert h100.one(ALB).inputs["idleTimeout"] >= 600
    assert h100.one(TARGET_GROUP).inputs["deregistrationDelay"] >= h100.one(ALB).inputs["idleTimeout"]


def test_the_target_group_checks_health_on_the_vllm_port_with_the_launch_probes(h100):
    target_group = h100.one(TARGET_GROUP).inputs
    assert target_group["port"] == PORT and target_group["protocol"] == "HTTP"
    check = target_group["healthCheck"]
    assert check["path"] == "/health" and check["matcher"] == "200"
    assert (check["interval"], check["timeout"]) == (10, 5)
    assert 2 <= check["healthyThreshold"] <= 10 and check["unhealthyThreshold"] == 3


def test_requests_go_to_the_replica_with_the_fewest_in_flight(h100):
    assert h100.one(TARGET_GROUP).inputs["loadBalancingAlgorithmType"] == "least_outstanding_requests"


def test_the_listener_forwards_only_the_api_and_health_paths_to_the_replicas(h100):
    (rule,) = h100.of_type(RULE)
    (condition,) = rule.inputs["conditions"]
    assert condition == {"pathPattern": {"values": ["/v1/*", "/health"]}}
    assert rule.inputs["actions"] == [
        {"type": "forward", "targetGroupArn": h100.one(TARGET_GROUP).outputs["arn"]}
    ]


def test_the_listener_answers_every_other_path_with_a_fixed_404(h100):
    listener = h100.one(LISTENER).inputs
    assert listener["port"] == 80 and listener["protocol"] == "HTTP"
    (action,) = listener["defaultActions"]
    assert action["type"] == "fixed-response" and action["fixedResponse"]["statusCode"] == "404"


# --- exposure ---------------------------------------------------------------------------------------------


def test_the_internet_reaches_only_the_listener_port_on_the_load_balancer(h100):
    open_rules = [r for r in h100.of_type(INGRESS) if "cidrIpv4" in r.inputs or "cidrIpv6" in r.inputs]
    assert open_rules
    for rule in open_rules:
        assert rule.inputs["securityGroupId"] == sg_id(h100, "-alb")
        assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (80, 80)


def test_instances_accept_only_the_vllm_port_and_only_from_the_load_balancer(h100):
    (rule,) = [r for r in h100.of_type(INGRESS) if r.inputs["securityGroupId"] == sg_id(h100, "-instances")]
    assert rule.inputs["referencedSecurityGroupId"] == sg_id(h100, "-alb")
    assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == ("tcp", PORT, PORT)
    assert h100.one(TEMPLATE).inputs["networkInterfaces"][0]["securityGroups"] == [sg_id(h100, "-instances")]


def test_the_load_balancer_may_only_reach_the_vllm_port_of_the_instances(h100):
    (egress,) = [
        r
        for r in h100.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.inputs["securityGroupId"] == sg_id(h100, "-alb")
    ]
    assert egress.inputs["referencedSecurityGroupId"] == sg_id(h100, "-instances")
    assert (egress.inputs["fromPort"], egress.inputs["toPort"]) == (PORT, PORT)


def test_allowed_cidrs_replace_the_open_internet_on_the_listener_port():
    run = aws_stack("L4:1", **{"vllm:allowedCidrs": ["203.0.113.0/24", "198.51.100.0/24"]})
    sources = sorted(r.inputs["cidrIpv4"] for r in run.of_type(INGRESS) if "-alb-" in r.name)
    assert sources == ["198.51.100.0/24", "203.0.113.0/24"]


def test_default_vpc_machines_keep_a_public_ip_for_downloads_but_no_ingress_from_it(h100):
    interface = h100.one(TEMPLATE).inputs["networkInterfaces"][0]
    assert interface["associatePublicIpAddress"] == "true"
    instance_rules = [
        r for r in h100.of_type(INGRESS) if r.inputs["securityGroupId"] == sg_id(h100, "-instances")
    ]
    assert all("cidrIpv4" not in r.inputs and "cidrIpv6" not in r.inputs for r in instance_rules)


# --- a user's VPC ----------------------------------------------------------------------------------------


def test_a_named_vpc_hosts_the_load_balancer_in_the_named_subnets(user_vpc):
    assert sorted(user_vpc.one(ALB).inputs["subnets"]) == USER_VPC["vllm:subnetIds"]
    assert {r.inputs["vpcId"] for r in user_vpc.of_type(SECURITY_GROUP)} == {fakes_aws.USER_VPC}
    assert user_vpc.one(TARGET_GROUP).inputs["vpcId"] == fakes_aws.USER_VPC


def test_in_a_named_vpc_machines_use_only_the_named_subnets_in_selling_zones(user_vpc):
    assert user_vpc.one(GROUP).inputs["vpcZoneIdentifiers"] == ["subnet-0a5e40000000000a1"]


def test_in_a_named_vpc_the_subnets_own_setting_decides_public_ips(user_vpc):
    assert "associatePublicIpAddress" not in user_vpc.one(TEMPLATE).inputs["networkInterfaces"][0]


PRIVATE_INSTANCES = {
    "vllm:vpcId": fakes_aws.USER_VPC,
    "vllm:subnetIds": ["subnet-0a5e40000000000a1"],
    "vllm:loadBalancerSubnetIds": ["subnet-0a5e4000000000a2a", "subnet-0a5e4000000000c2c"],
}


def test_private_instances_sit_behind_a_load_balancer_in_the_named_public_subnets():
    run = run_program("aws-h100", config=PRIVATE_INSTANCES, secrets=SECRETS)
    assert run.one(ALB).inputs["subnets"] == PRIVATE_INSTANCES["vllm:loadBalancerSubnetIds"]
    assert run.one(GROUP).inputs["vpcZoneIdentifiers"] == ["subnet-0a5e40000000000a1"]
    assert "associatePublicIpAddress" not in run.one(TEMPLATE).inputs["networkInterfaces"][0]


def test_load_balancer_subnets_in_a_single_zone_are_refused():
    config = {
        **PRIVATE_INSTANCES,
        "vllm:loadBalancerSubnetIds": ["subnet-0a5e40000000000a1", "subnet-0a5e4000000000a2a"],
    }
    error = refused("aws-h100", config)
    assert isinstance(error, NetworkError)
    assert str(error).startswith("vllm:loadBalancerSubnetIds: subnet-0a5e40000000000a1 (us-east-1a), ")
    assert "two availability zones" in str(error)


def test_instance_subnets_that_host_the_load_balancer_too_must_span_two_zones():
    config = {**USER_VPC, "vllm:subnetIds": ["subnet-0a5e40000000000a1", "subnet-0a5e4000000000a2a"]}
    error = refused("aws-h100", config)
    assert isinstance(error, NetworkError) and str(error).startswith("vllm:subnetIds: ")


def test_load_balancer_subnets_outside_the_vpc_are_refused_by_id():
    config = {
        **PRIVATE_INSTANCES,
        "vllm:loadBalancerSubnetIds": ["subnet-0a5e4000000000a2a", "subnet-0defb0000000000b"],
    }
    error = refused("aws-h100", config)
    assert isinstance(error, NetworkError)
    assert str(error) == (
        f"vllm:loadBalancerSubnetIds: subnet-0defb0000000000b not found in vllm:vpcId {fakes_aws.USER_VPC}"
    )


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key", "hint"),
    [
        ({"vllm:gpu": "T4:3"}, "vllm:gpu", "counts 1, 4, 8"),
        ({"vllm:gpu": "V100:1"}, "vllm:gpu", "aws offers"),
        ({"vllm:vpcId": "vpc-nothex", "vllm:subnetIds": USER_VPC["vllm:subnetIds"]}, "vllm:vpcId", "VPC id"),
        ({"vllm:vpcId": fakes_aws.USER_VPC}, "vllm:subnetIds", "two or more subnets"),
        (
            {"vllm:vpcId": fakes_aws.USER_VPC, "vllm:subnetIds": ["subnet-0a5e40000000000a1"]},
            "vllm:subnetIds",
            "different availability zones",
        ),
        ({"aws:region": "mars-1"}, "aws:region", "us-east-1"),
        ({"vllm:amiId": "ami-XYZ"}, "vllm:amiId", "AMI id"),
        (
            {**PRIVATE_INSTANCES, "vllm:loadBalancerSubnetIds": ["subnet-0a5e4000000000a2a"]},
            "vllm:loadBalancerSubnetIds",
            "two or more public subnets",
        ),
        (
            {"vllm:loadBalancerSubnetIds": PRIVATE_INSTANCES["vllm:loadBalancerSubnetIds"]},
            "vllm:loadBalancerSubnetIds",
            "set together with vllm:vpcId",
        ),
        (
            {
                "vllm:vpcId": fakes_aws.USER_VPC,
                "vllm:loadBalancerSubnetIds": ["subnet-0a5e4000000000a2a", "subnet-0a5e4000000000c2c"],
            },
            "vllm:subnetIds",
            "the instances run in",
        ),
        ({"vllm:amiId": "resolve:ssm:/my/param"}, "vllm:amiId", "AMI id"),
    ],
)
def test_invalid_aws_values_fail_before_any_resource_with_the_key(config, key, hint):
    error = refused("aws-h100", config)
    assert isinstance(error, SpecError) and error.key == key and hint in str(error)
    assert error.declared_resources == []


def test_subnets_outside_the_named_vpc_are_refused_by_id():
    config = {**USER_VPC, "vllm:subnetIds": ["subnet-0a5e40000000000a1", "subnet-0defb0000000000b"]}
    error = refused("aws-h100", config)
    assert isinstance(error, NetworkError)
    assert (
        str(error) == f"vllm:subnetIds: subnet-0defb0000000000b not found in vllm:vpcId {fakes_aws.USER_VPC}"
    )


def test_named_subnets_with_no_zone_selling_the_type_are_refused():
    config = {**USER_VPC, "vllm:subnetIds": ["subnet-0a5e40000000000b1", "subnet-0a5e40000000000d1"]}
    error = refused("aws-h100", config)
    assert isinstance(error, NetworkError)
    assert str(error).startswith("vllm:subnetIds: no subnet is in a zone that sells p5.48xlarge")


def test_a_region_that_sells_no_such_machine_is_refused(monkeypatch):
    monkeypatch.setitem(fakes_aws.OFFERED_ZONES, "p5.48xlarge", ())
    error = refused("aws-h100", {})
    assert isinstance(error, NetworkError)
    assert str(error) == "aws:region: us-east-1 sells no p5.48xlarge in any availability zone"


# --- user data encoding ------------------------------------------------------------------------------------


def test_user_data_that_fits_is_plain_base64():
    assert base64.b64decode(machines.user_data("#!/bin/bash\necho hi\n")) == b"#!/bin/bash\necho hi\n"


def test_user_data_over_16_kb_is_gzipped_byte_for_byte_stably():
    script = "#!/usr/bin/env bash\n" + "".join(f"echo line {n}\n" for n in range(3000))
    assert len(script) > machines.USER_DATA_LIMIT
    encoded = machines.user_data(script)
    assert encoded == machines.user_data(script)  # no timestamp: no spurious launch template diff
    raw = base64.b64decode(encoded)
    assert len(raw) <= machines.USER_DATA_LIMIT and gzip.decompress(raw).decode() == script


def test_user_data_too_large_even_gzipped_is_refused():
    incompressible = "".join(hashlib.sha256(str(n).encode()).hexdigest() for n in range(1000))
    with pytest.raises(ValueError, match="over EC2's"):
        machines.user_data(incompressible)


# --- the launch lifecycle hook (components/aws/lifecycle.py) --------------------------------------------

HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"


def test_a_new_machine_waits_at_launch_on_a_hook_that_abandons_it_unless_its_agent_completes_it(h100):
    # Capacity Rebalancing terminates the replaced machine once the new one is InService, not once it
    # serves: the launch hook holds InService until the health agent completes it (or ABANDON at timeout).
    hook = h100.one(HOOK).inputs
    group = h100.one(GROUP)
    assert hook["autoscalingGroupName"] == group.name
    assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert hook["defaultResult"] == "ABANDON"
    # the load budget, within the 7200 s PutLifecycleHook accepts (the agent beats the hook meanwhile)
    assert hook["heartbeatTimeout"] == min(group.inputs["healthCheckGracePeriod"], 7200)
    line = next(
        line for line in user_data(h100.one(TEMPLATE)).splitlines() if line.startswith("HEALTH_AGENT_ARGS=(")
    )
    assert f"--lifecycle-hook {hook['name']}" in line
    assert f"--lifecycle-heartbeat {int(hook['heartbeatTimeout']) // 2}" in line


def test_the_hooks_timeout_stays_within_what_put_lifecycle_hook_accepts():
    # HeartbeatTimeout: 30-7200 s (EC2 Auto Scaling API, PutLifecycleHook); the agent's heartbeats carry a
    # longer budget.
    from components.aws import lifecycle

    assert lifecycle.heartbeat_seconds(4850) == 4850
    assert lifecycle.heartbeat_seconds(9000) == 7200
    assert lifecycle.heartbeat_seconds(10) == 30


def test_the_role_may_complete_and_beat_the_launch_hook_of_its_own_groups_only(h100):
    (policy,) = h100.of_type("aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    (hook,) = [s for s in statements if "autoscaling:CompleteLifecycleAction" in s["Action"]]
    (health,) = [s for s in statements if s["Action"] == "autoscaling:SetInstanceHealth"]
    assert set(hook["Action"]) == {
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
    }
    assert (hook["Resource"], hook["Condition"]) == (health["Resource"], health["Condition"])


def test_ray_groups_have_no_launch_hook():
    run = run_program("aws-h200-multinode", secrets=SECRETS)
    assert not run.of_type(HOOK)
    (policy,) = run.of_type("aws:iam/rolePolicy:RolePolicy")
    assert "LifecycleAction" not in policy.inputs["policy"]


def agent_flags(template: Resource) -> list[str]:
    (line,) = [line for line in user_data(template).splitlines() if line.startswith("HEALTH_AGENT_ARGS=(")]
    return line.removeprefix("HEALTH_AGENT_ARGS=(").removesuffix(")").split()


def test_spot_machines_may_take_themselves_out_of_the_stacks_target_group_and_no_other():
    # DeregisterTargets' resource type is targetgroup (Service Authorization Reference, Elastic Load
    # Balancing V2): the grant names this stack's target group's ARN, which the agent is given.
    run = aws_stack("A10G:4", **{"vllm:spot": True})
    target_group = run.one("aws:lb/targetGroup:TargetGroup").outputs["arn"]
    assert role_statements(run)["elasticloadbalancing:DeregisterTargets"] == {
        "Effect": "Allow",
        "Action": "elasticloadbalancing:DeregisterTargets",
        "Resource": target_group,
    }
    flags = agent_flags(run.one(TEMPLATE))
    assert flags[flags.index("--drain-target-group") + 1] == target_group


def test_on_demand_machines_get_no_notice_so_neither_the_drain_nor_its_grant(h100):
    assert "elasticloadbalancing:DeregisterTargets" not in role_statements(h100)
    assert "--drain-target-group" not in agent_flags(h100.one(TEMPLATE))


def test_a_spot_ray_head_leaves_the_target_group_on_a_notice_and_its_workers_are_in_none():
    run = aws_stack("H100:8", **{"vllm:spot": True, "vllm:nodes": 2})
    target_group = [
        group.outputs["arn"]
        for group in run.of_type("aws:lb/targetGroup:TargetGroup")
        if group.inputs.get("protocol") == "HTTP"
    ]
    assert role_statements(run)["elasticloadbalancing:DeregisterTargets"]["Resource"] == target_group[0]
    drains = {
        t.name.rsplit("-", 1)[-1]: "--drain-target-group" in agent_flags(t) for t in run.of_type(TEMPLATE)
    }
    assert drains == {"head": True, "worker": False}
