"""AWS's own rules on what the program declares, which the mock runtime does not enforce: checked on every
resource of the presets and of generated variants (long stack names, another region, a user's VPC,
multi-node with several replicas)."""

from __future__ import annotations

import json

import pytest

from components.aws import machines, names, sizing
from components.aws import policy as aws_policy
from components.spec import build_spec
from policy import validators
from tests.harness import ROOT, Run, run_program
from tests.test_aws import PRIVATE_INSTANCES, SECRETS, USER_VPC

ALB = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_RULES = (
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
)
LONG_STACK = "production-inference-llama-4-maverick-us-east-1-blue"

VARIANTS = {
    "aws-h100": ("aws-h100", {}),
    "aws-h200-multinode": ("aws-h200-multinode", {}),
    "multinode-3-replicas": ("aws-h200-multinode", {"vllm:replicas": 3}),
    "long-stack": (LONG_STACK, {"vllm:preset": "aws-h100"}),
    "long-stack-multinode": (
        f"{LONG_STACK}-multinode",
        {"vllm:preset": "aws-h200-multinode", "vllm:replicas": 2},
    ),
    "other-region": ("eu-serving", {"vllm:preset": "aws-h100", "aws:region": "eu-west-2"}),
    "user-vpc": ("aws-h100", USER_VPC),
    "private-instances": ("aws-h100", PRIVATE_INSTANCES),
    "long-stack-https": (
        LONG_STACK,
        {
            "vllm:preset": "aws-h100",
            "vllm:domain": "llm.example.com",
            "vllm:dnsZone": "Z0123456789ABCDEFGHIJ",
        },
    ),
    "l4-allowed-cidrs": (
        "aws-dev",
        {
            "vllm:cloud": "aws",
            "vllm:gpu": "L4:1",
            "vllm:model": "Qwen/Qwen3-8B",
            "vllm:allowedCidrs": ["203.0.113.0/24", "198.51.100.0/24"],
        },
    ),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request) -> Run:
    stack, config = VARIANTS[request.param]
    return run_program(stack, config=config, secrets=SECRETS)


def descriptions(run: Run) -> list[str]:
    """Every EC2 description the program emits: security groups, their inline rules, standalone rules."""
    found = []
    for resource in run.of_type(SECURITY_GROUP):
        found.append(resource.inputs.get("description", ""))
        for direction in ("ingress", "egress"):
            found += [rule.get("description", "") for rule in resource.inputs.get(direction) or []]
    for type_ in SG_RULES:
        found += [r.inputs.get("description", "") for r in run.of_type(type_)]
    return found


def elb_names(run: Run) -> list[str]:
    return [r.inputs["name"] for r in run.of_type(ALB) + run.of_type(TARGET_GROUP)]


def test_every_ec2_description_uses_only_the_characters_ec2_accepts(variant):
    emitted = descriptions(variant)
    assert emitted and all(emitted)
    for text in emitted:
        assert names.EC2_DESCRIPTION.match(text) and len(text) <= 255, text


def test_every_load_balancer_and_target_group_has_an_explicit_name_aws_accepts(variant):
    declared = variant.of_type(ALB) + variant.of_type(TARGET_GROUP)
    assert declared and all("name" in r.inputs and "namePrefix" not in r.inputs for r in declared)
    for name in elb_names(variant):
        assert len(name) <= 32 and names.ELB_NAME.match(name), name
        assert not name.startswith("internal-"), name


def test_load_balancer_and_target_group_names_are_unique_within_a_stack(variant):
    for type_ in (ALB, TARGET_GROUP):
        declared = [r.inputs["name"] for r in variant.of_type(type_)]
        assert len(set(declared)) == len(declared)


def test_elb_names_are_deterministic_from_run_to_run():
    first = elb_names(run_program(LONG_STACK, config={"vllm:preset": "aws-h100"}, secrets=SECRETS))
    second = elb_names(run_program(LONG_STACK, config={"vllm:preset": "aws-h100"}, secrets=SECRETS))
    assert first == second


def test_stacks_whose_long_names_share_a_prefix_get_different_elb_names():
    ours = set(elb_names(run_program(f"{LONG_STACK}-a", config={"vllm:preset": "aws-h100"}, secrets=SECRETS)))
    theirs = set(
        elb_names(run_program(f"{LONG_STACK}-b", config={"vllm:preset": "aws-h100"}, secrets=SECRETS))
    )
    assert not ours & theirs


def test_a_change_that_replaces_a_target_group_also_renames_it_so_create_before_delete_never_collides():
    default_vpc = run_program("aws-h100", secrets=SECRETS).one(TARGET_GROUP).inputs["name"]
    user_vpc = run_program("aws-h100", config=USER_VPC, secrets=SECRETS).one(TARGET_GROUP).inputs["name"]
    assert default_vpc != user_vpc  # vpc_id forces a new target group


def test_the_load_balancer_keeps_its_name_when_nothing_that_replaces_it_changes():
    h100 = run_program("aws-h100", secrets=SECRETS).one(ALB).inputs["name"]
    four = run_program("aws-h100", config={"vllm:replicas": 4}, secrets=SECRETS).one(ALB).inputs["name"]
    assert h100 == four


def test_a_too_long_role_is_refused_rather_than_truncated_into_a_collision():
    with pytest.raises(ValueError):
        names.elb_name(build_spec("aws-h100", {}), "a-role-name-longer-than-the-32-character-limit")


def test_an_apostrophe_in_a_description_is_refused():
    with pytest.raises(ValueError):
        names.ec2_description("the replicas' vLLM port")


def test_nlb_health_checks_time_out_before_the_next_check(variant):
    for target_group in variant.of_type(TARGET_GROUP):
        check = target_group.inputs["healthCheck"]
        assert check["timeout"] < check["interval"], target_group.name


def as_crossguard_hands_it(value):
    """Properties as the CrossGuard Python SDK deserializes them: every number a float."""
    if isinstance(value, dict):
        return {key: as_crossguard_hands_it(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_crossguard_hands_it(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def test_the_policy_pack_finds_nothing_to_flag_in_what_the_program_declares(variant):
    checks = (
        aws_policy.aws_elb_name_violations,
        aws_policy.aws_description_violations,
        aws_policy.aws_health_check_violations,
        validators.exposure_violations,
        validators.public_path_violations,
        validators.secret_violations,
    )
    for resource in (r for r in variant.resources if r.type.startswith("aws:")):
        props = as_crossguard_hands_it(resource.inputs)
        for check in checks:
            assert check(resource.type, props) == [], (check.__name__, resource.name)


def test_every_gpu_launch_template_is_run_by_a_self_healing_group_as_the_policy_pack_sees_it(variant):
    stack = [
        validators.StackResource(
            type=r.type,
            urn=r.urn,
            props=as_crossguard_hands_it({**r.inputs, "id": f"{r.name}-id"}),
            parent=r.parent,
        )
        for r in variant.resources
        if r.type.startswith("aws:")
    ]
    assert validators.autohealing_violations(stack) == []


QUOTA_CASES = {
    "aws-h100": ("aws-h100", {}, [("Running On-Demand P instances", 576)]),
    "aws-h200-multinode": ("aws-h200-multinode", {}, [("Running On-Demand P instances", 384)]),
    "spot-g5": (
        "aws-dev",
        {
            "vllm:cloud": "aws",
            "vllm:gpu": "A10G:4",
            "vllm:model": "Qwen/Qwen3-8B",
            "vllm:spot": True,
            "vllm:replicas": 3,
        },
        [("All G and VT Spot Instance Requests", 5 * 48)],
    ),
    "spot-g5-on-demand-base": (
        "aws-dev",
        {
            "vllm:cloud": "aws",
            "vllm:gpu": "A10G:4",
            "vllm:model": "Qwen/Qwen3-8B",
            "vllm:spot": True,
            "vllm:replicas": 3,
            "vllm:onDemandBaseReplicas": 1,
        },
        [("Running On-Demand G and VT instances", 48), ("All G and VT Spot Instance Requests", 4 * 48)],
    ),
}


@pytest.mark.parametrize("case", sorted(QUOTA_CASES))
def test_the_vcpu_quotas_cover_every_group_at_its_maximum_size_rollout_surge_included(case):
    stack, config, expected = QUOTA_CASES[case]
    spec = build_spec(
        stack,
        {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in config.items()},
    )
    assert [(quota.name, quota.vcpus) for quota in sizing.vcpu_quotas(spec)] == expected
    run = run_program(stack, config=config, secrets=SECRETS)
    peak = sum(group.inputs["maxSize"] for group in run.of_type("aws:autoscaling/group:Group"))
    assert peak * spec.offering.vcpus == sum(needed for _, needed in expected)


def test_the_aws_docs_state_the_quota_of_each_aws_preset():
    page = (ROOT / "docs" / "aws.md").read_text()
    for stack in ("aws-h100", "aws-h200-multinode"):
        (quota,) = sizing.vcpu_quotas(build_spec(stack, {}))
        name, vcpus = quota.name, quota.vcpus
        assert f"| `{stack}` | {name} | {vcpus} |" in page


def test_every_group_of_every_variant_leaves_replacement_to_ec2_health_and_does_not_wait_for_capacity(
    variant,
):
    groups = variant.of_type("aws:autoscaling/group:Group")
    assert groups
    for group in groups:
        assert group.inputs["healthCheckType"] == "EC2", group.name
        assert group.inputs["waitForCapacityTimeout"] == "0", group.name
        assert {t["key"] for t in group.inputs["tags"]} >= {"vllm:stack", "vllm:service"}, group.name
        assert group.inputs["instanceRefresh"]["strategy"] == "Rolling", group.name


def test_every_launch_template_of_every_variant_resolves_the_ami_at_launch_and_tags_what_it_starts(variant):
    templates = variant.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert templates
    for template in templates:
        assert template.inputs["imageId"] == f"resolve:ssm:{machines.DLAMI_PARAMETER}", template.name
        kinds = {spec["resourceType"]: spec["tags"] for spec in template.inputs["tagSpecifications"]}
        assert {"instance", "volume"} <= kinds.keys(), template.name
        assert all("vllm:stack" in tags for tags in kinds.values()), template.name
        assert machines.SECRETS_REVISION_TAG in kinds["instance"], template.name


def test_every_variant_may_mark_unhealthy_only_its_own_groups(variant):

    (policy,) = variant.of_type("aws:iam/rolePolicy:RolePolicy")
    (statement,) = [
        s
        for s in json.loads(policy.inputs["policy"])["Statement"]
        if s["Action"] == "autoscaling:SetInstanceHealth"
    ]
    stack = variant.outputs["spec"]["stack"]
    assert statement["Condition"] == {"StringEquals": {"autoscaling:ResourceTag/vllm:stack": stack}}
    prefix = statement["Resource"].rsplit("autoScalingGroupName/", 1)[1].removesuffix("*")
    assert all(g.name.startswith(prefix) for g in variant.of_type("aws:autoscaling/group:Group"))


# --- the quota preflight ----------------------------------------------------------------------------------


def test_up_refuses_in_one_line_when_a_vcpu_quota_cannot_hold_the_stack(monkeypatch):
    # A fresh account has 0 vCPUs of "Running On-Demand P instances": without the check, up succeeds and
    # the group retries VcpuLimitExceeded launches (Service Quotas, GetServiceQuota; quota codes: sizing.py).
    from components.aws import fakes

    monkeypatch.setitem(fakes.QUOTAS, "L-417A185B", 0.0)
    with pytest.raises(machines.QuotaError) as raised:
        run_program("aws-h100", secrets=SECRETS)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("aws quota: Running On-Demand P instances (L-417A185B) in us-east-1 is 0 vCPUs")
    assert "needs 576" in message  # 2 replicas + 1 rollout surge x 192 vCPUs (p5.48xlarge)
    assert "request-service-quota-increase --service-code ec2 --quota-code L-417A185B" in message
    assert "--desired-value 576 --region us-east-1" in message and "console" in message


def test_a_quota_that_holds_the_peak_exactly_passes_and_every_quota_drawn_on_is_read(monkeypatch):
    from components.aws import fakes

    monkeypatch.setitem(fakes.QUOTAS, "L-DB2E81BA", 48.0)  # the on-demand base: 1 x g5.12xlarge
    stack, config, _ = QUOTA_CASES["spot-g5-on-demand-base"]
    run = run_program(stack, config=config, secrets=SECRETS)
    read = sorted(
        invoke.args["quotaCode"]
        for invoke in run.invokes
        if invoke.token == "aws:servicequotas/getServiceQuota:getServiceQuota"
    )
    assert read == ["L-3819A6DF", "L-DB2E81BA"]
    assert all(invoke.provider for invoke in run.invokes)  # through the stack's explicit provider


def test_the_spec_output_names_the_quotas_up_checks_so_the_offline_plan_shows_them():
    run = run_program("aws-h100", secrets=SECRETS)
    assert run.outputs["spec"]["vcpuQuotas"] == [
        {"quota": "Running On-Demand P instances", "code": "L-417A185B", "vcpus": 576}
    ]


def test_the_quota_refusal_comes_at_preview_while_the_load_balancer_is_still_unknown(monkeypatch):
    # pulumi up previews first: the refusal stops it before anything is created.
    from components.aws import fakes

    monkeypatch.setitem(fakes.QUOTAS, "L-417A185B", 0.0)
    with pytest.raises(machines.QuotaError):
        run_program("aws-h100", secrets=SECRETS, preview=True, fake_outputs=False)
