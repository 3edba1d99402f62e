"""AWS multi-node: each replica is a Ray group (head + workers) in one zone, serving through its head."""

from __future__ import annotations

import base64

import pytest

from components import launch, rates
from components.aws import fakes as fakes_aws
from components.aws import machines
from components.launch import RAY_GROUP_WAIT_SECONDS
from components.spec import build_spec
from components.vm import RAY_GCS_PORT
from tests.harness import Resource, Run, run_program
from tests.test_aws import (
    ALB,
    API_KEY,
    GROUP,
    HF_TOKEN,
    INGRESS,
    PROVIDER,
    SECRET_VERSION,
    SECRETS,
    SECURITY_GROUP,
    TARGET_GROUP,
    TEMPLATE,
    readable,
    shellcheck,
    user_data,
)

LISTENER = "aws:lb/listener:Listener"


@pytest.fixture(scope="module")
def h200() -> Run:
    """The preset (1 replica x 2 nodes of p5en.48xlarge) with two replicas, to see groups side by side."""
    return run_program("aws-h200-multinode", config={"vllm:replicas": 2}, secrets=SECRETS)


def groups(run: Run) -> list[Resource]:
    return run.of_type("vllm:aws:RayReplica")


def inside(run: Run, group: Resource, type_: str) -> list[Resource]:
    return [r for r in run.of_type(type_) if group in run.ancestors(r)]


def named(resources: list[Resource], suffix: str) -> Resource:
    (found,) = [r for r in resources if r.name.endswith(suffix)]
    return found


def ray_settings(template: Resource) -> dict[str, str]:
    line = next(line for line in user_data(template).splitlines() if line.startswith("RAY_ENV=("))
    return dict(word.split("=", 1) for word in line.removeprefix("RAY_ENV=(").removesuffix(")").split())


def test_each_replica_is_one_ray_replica_of_a_head_and_its_workers(h200):
    assert sorted(g.name for g in groups(h200)) == [
        "vllm-aws-h200-multinode-r0",
        "vllm-aws-h200-multinode-r1",
    ]
    assert not h200.of_type("vllm:aws:ReplicaGroup")
    for group in groups(h200):
        scaling = inside(h200, group, GROUP)
        assert named(scaling, "-head").inputs["desiredCapacity"] == 1
        assert named(scaling, "-workers").inputs["desiredCapacity"] == 1  # nodes - 1


def test_a_groups_machines_share_one_zone_and_a_cluster_placement_group(h200):
    for group in groups(h200):
        (placement,) = inside(h200, group, "aws:ec2/placementGroup:PlacementGroup")
        assert placement.inputs["strategy"] == "cluster"
        scaling = inside(h200, group, GROUP)
        assert len({tuple(g.inputs["vpcZoneIdentifiers"]) for g in scaling}) == 1
        assert all(len(g.inputs["vpcZoneIdentifiers"]) == 1 for g in scaling)
        assert {g.inputs["placementGroup"] for g in scaling} == {f"{placement.name}-id"}


def test_groups_spread_over_the_zones_that_sell_the_instance_type(h200):
    zones = [
        fakes_aws.SUBNETS[named(inside(h200, group, GROUP), "-head").inputs["vpcZoneIdentifiers"][0]][1]
        for group in groups(h200)
    ]
    assert sorted(zones) == sorted(fakes_aws.OFFERED_ZONES["p5en.48xlarge"])


def test_only_heads_serve_behind_the_public_load_balancer(h200):
    alb_targets = [t for t in h200.of_type(TARGET_GROUP) if t.inputs["protocol"] == "HTTP"]
    (serving,) = alb_targets
    for group in groups(h200):
        scaling = inside(h200, group, GROUP)
        head, workers = named(scaling, "-head"), named(scaling, "-workers")
        assert serving.outputs["arn"] in head.inputs["targetGroupArns"]
        assert workers.inputs["targetGroupArns"] == []


def test_neither_load_balancer_decides_whether_a_groups_machines_are_replaced(h200):
    # the NLB on the GCS port and the ALB only route: a head re-forming its group keeps its machine
    for scaling in h200.of_type(GROUP):
        assert scaling.inputs["healthCheckType"] == "EC2"


def test_a_heads_grace_period_is_the_model_load_budget(h200):
    head = named(inside(h200, groups(h200)[0], GROUP), "-head").inputs
    # 2 x H200:8 with vllm:modelSizeGb 1030 (the preset): the fixed steps, the wait for the group's workers,
    # the Hub download onto the instance store and the load into GPU memory, at the slowest rates (the budget)
    first, _ = launch.cold_starts(build_spec("aws-h200-multinode", {"vllm:replicas": "2"}), slowest=True)
    vllm_start = sum(step.slowest_seconds for _, step in rates.vllm_start())
    assert first.start_seconds == vllm_start + RAY_GROUP_WAIT_SECONDS
    assert head["healthCheckGracePeriod"] == first.total_seconds


def test_workers_find_the_head_through_the_groups_internal_load_balancer(h200):
    for group in groups(h200):
        (nlb,) = inside(h200, group, ALB)
        assert nlb.inputs["loadBalancerType"] == "network" and nlb.inputs["internal"] is True
        (listener,) = inside(h200, group, LISTENER)
        (gcs,) = inside(h200, group, TARGET_GROUP)
        assert listener.inputs["port"] == gcs.inputs["port"] == RAY_GCS_PORT
        forward = {"type": "forward", "targetGroupArn": gcs.outputs["arn"]}
        assert listener.inputs["defaultActions"] == [forward]
        head = named(inside(h200, group, GROUP), "-head")
        assert gcs.outputs["arn"] in head.inputs["targetGroupArns"]
        assert nlb.inputs["subnets"] == head.inputs["vpcZoneIdentifiers"]
        for template in inside(h200, group, TEMPLATE):
            assert ray_settings(template)["RAY_HEAD_ADDRESS"] == nlb.outputs["dnsName"]
            assert ray_settings(template)["RAY_PORT"] == str(RAY_GCS_PORT)


def test_the_head_waits_for_every_node_and_gpu_of_its_group(h200):
    for template in h200.of_type(TEMPLATE):
        settings = ray_settings(template)
        assert settings["RAY_EXPECTED_NODES"] == "2" and settings["RAY_GPUS_PER_NODE"] == "8"
        assert settings["RAY_WAIT_TIMEOUT_SECONDS"] == str(RAY_GROUP_WAIT_SECONDS)


def test_heads_and_workers_boot_their_own_ray_roles(h200):
    for group in groups(h200):
        templates = inside(h200, group, TEMPLATE)
        assert "ROLE=ray-head" in user_data(named(templates, "-ray-head"))
        assert "ROLE=ray-worker" in user_data(named(templates, "-ray-worker"))
        assert all(t.inputs["instanceType"] == "p5en.48xlarge" for t in templates)


def test_ray_traffic_is_open_only_between_members_of_the_same_group(h200):
    group_sgs = []
    for group in groups(h200):
        (ray_sg,) = inside(h200, group, SECURITY_GROUP)
        sg_id = f"{ray_sg.name}-id"
        group_sgs.append(sg_id)
        (rule,) = [r for r in h200.of_type(INGRESS) if r.inputs["securityGroupId"] == sg_id]
        assert rule.inputs["referencedSecurityGroupId"] == sg_id and "cidrIpv4" not in rule.inputs
        (nlb,) = inside(h200, group, ALB)
        assert nlb.inputs["securityGroups"] == [sg_id]
        for template in inside(h200, group, TEMPLATE):
            assert sg_id in template.inputs["networkInterfaces"][0]["securityGroups"]
    assert len(set(group_sgs)) == len(group_sgs)
    for template in h200.of_type(TEMPLATE):
        assert len(set(template.inputs["networkInterfaces"][0]["securityGroups"]) & set(group_sgs)) == 1


def test_the_internet_reaches_only_the_public_listener(h200):
    for rule in h200.of_type(INGRESS):
        if "cidrIpv4" in rule.inputs or "cidrIpv6" in rule.inputs:
            assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (80, 80)


def test_every_ray_node_carries_the_current_secret_versions_so_a_rotation_rolls_the_groups(h200):
    rotated = run_program(
        "aws-h200-multinode",
        config={"vllm:replicas": 2},
        secrets={**SECRETS, "vllm:apiKey": "sk-rotated-0123456789"},
    )
    before = {t.name: t.inputs for t in h200.of_type(TEMPLATE)}
    after = {t.name: t.inputs for t in rotated.of_type(TEMPLATE)}
    assert before.keys() == after.keys() and all(before[name] != after[name] for name in before)


def test_a_group_rolls_by_replacing_its_machines_in_place(h200):
    for scaling in h200.of_type(GROUP):
        assert scaling.inputs["instanceRefresh"]["preferences"]["minHealthyPercentage"] == 0


def test_multi_node_user_data_fits_ec2s_limit(h200):
    for template in h200.of_type(TEMPLATE):
        assert len(base64.b64decode(template.inputs["userData"])) <= machines.USER_DATA_LIMIT


def test_multi_node_user_data_passes_shellcheck(h200):
    for template in h200.of_type(TEMPLATE):
        result = shellcheck(user_data(template))
        assert result.returncode == 0, result.stdout


def test_secret_values_stay_in_secrets_manager_versions(h200):
    for resource in h200.resources:
        if resource.type != SECRET_VERSION:
            assert HF_TOKEN not in readable(resource) and API_KEY not in readable(resource), resource.name


def test_every_aws_resource_of_the_groups_uses_the_explicit_provider(h200):
    provider = h200.one(PROVIDER)
    reference = f"{provider.urn}::{provider.name}-id"
    for group in groups(h200):
        resources = [r for r in h200.resources if group in h200.ancestors(r)]
        assert resources and all(r.provider == reference for r in resources)
