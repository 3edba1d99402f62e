"""vllm:canary of multi-node (Ray) replicas on GCP and AWS: each revision's Ray replicas named by its slot,
behind the one load balancer with the weighted split, heads only; promotion renames and replaces nothing."""

from __future__ import annotations

import ipaddress

import pytest

from components.aws import fakes
from components.config import SpecError
from components.gcp.network import GOOGLE_LB_RANGES, HEALTH_AGENT_PORT, SUBNET_CIDR
from components.gcp.quota import gpu_quota_needs
from components.gcp.ray_replica import head_address
from components.launch import PORT
from components.service_spec import REVISIONS
from tests.harness import Resource, Run, checked_spec, run_program
from tests.test_canary import backend_of, compared, gates, picked, weighted_services

#: The presets (one replica of two 8-GPU nodes) and the model each serves.
GCP_STACK, AWS_STACK = "gcp-h100-multinode", "aws-h200-multinode"
STABLE_MODELS = {GCP_STACK: "deepseek-ai/DeepSeek-R1-0528", AWS_STACK: "moonshotai/Kimi-K2-Instruct"}
CANARY_MODEL = "deepseek-ai/DeepSeek-V3-0324"
#: The served name both revisions keep.
STABLE = {"vllm:servedModelName": "chat"}
CANARY = {**STABLE, "vllm:canary": {"model": CANARY_MODEL, "weight": 10}}


def promoted(stack: str, weight: int) -> dict:
    """After promotion: the stable keys describe the canary's revision (slot 2), the canary object the old
    stable one (slot 1), which takes ``weight``."""
    return {
        **STABLE,
        "vllm:model": CANARY_MODEL,
        "vllm:stableRevision": "2",
        "vllm:canary": {"model": STABLE_MODELS[stack], "weight": weight},
    }


GCP_RAY = "vllm:gcp:RayReplica"
ZONAL_MIG = "gcp:compute/instanceGroupManager:InstanceGroupManager"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
ADDRESS = "gcp:compute/address:Address"
FIREWALL = "gcp:compute/firewall:Firewall"
BACKEND = "gcp:compute/backendService:BackendService"

AWS_RAY = "vllm:aws:RayReplica"
ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ELB = "aws:lb/loadBalancer:LoadBalancer"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RULE = "aws:lb/listenerRule:ListenerRule"


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    configs = {
        "gcp": (GCP_STACK, CANARY),
        "gcp_promoted": (GCP_STACK, promoted(GCP_STACK, 90)),
        "gcp_stable": (GCP_STACK, STABLE),
        "aws": (AWS_STACK, {**CANARY, "vllm:canary": {"model": CANARY_MODEL, "weight": 25}}),
        "aws_promoted": (AWS_STACK, promoted(AWS_STACK, 75)),
        "aws_stable": (AWS_STACK, STABLE),
    }
    return {key: run_program(stack, config) for key, (stack, config) in configs.items()}


def inside(run: Run, component: Resource, type_: str) -> list[Resource]:
    return [r for r in run.of_type(type_) if component in run.ancestors(r)]


def in_replicas(run: Run, component_type: str, promoted: bool = False) -> dict[str, dict]:
    """Every custom resource of the stack's Ray replicas, by URN: what adding a canary and promotion must
    leave alone; for a promotion, as an update compares it (without what it ignores: a group's serving wait,
    a create's alone)."""
    replicas = run.of_type(component_type)
    inputs = compared if promoted else (lambda r: r.inputs)
    return {
        r.urn: inputs(r) for r in run.resources if r.custom and any(g in run.ancestors(r) for g in replicas)
    }


def gcp_heads(run: Run, slot_name: str) -> list[Resource]:
    (replica,) = [g for g in run.of_type(GCP_RAY) if g.name == slot_name]
    return [m for m in inside(run, replica, ZONAL_MIG) if m.inputs["versions"][0]["name"] == "ray-head"]


def template_of(run: Run, mig: Resource) -> Resource:
    link = mig.inputs["versions"][0]["instanceTemplate"]
    return next(t for t in run.of_type(TEMPLATE) if t.outputs["selfLinkUnique"] == link)


# --- which canaries of multi-node replicas are valid -------------------------------------------------


def test_a_canary_of_multi_node_replicas_runs_on_the_stable_revisions_node_count():
    spec = checked_spec(GCP_STACK, {**STABLE, "vllm:canary": {"gpu": "A100-80GB:8"}})
    assert spec.canary is not None
    canary = spec.canary.spec
    assert (spec.nodes, canary.nodes) == (2, 2)
    assert canary.gpu is not None and canary.gpu.type == "A100-80GB"


def test_a_canary_gpu_that_is_not_a_whole_machine_per_node_is_refused_naming_the_inherited_node_count():
    with pytest.raises(SpecError) as caught:
        checked_spec(GCP_STACK, {**STABLE, "vllm:canary": {"gpu": "L4:4"}})
    error = caught.value
    assert (error.key, error.value) == ("vllm:canary.gpu", "L4:4")
    assert "L4:8 per node" in error.valid and "vllm:nodes (2)" in error.valid
    assert "vllm:nodes 1" not in error.valid  # the stable revision's node count is not the canary's to change


def test_a_canary_cannot_change_the_node_count():
    with pytest.raises(SpecError) as caught:
        checked_spec(GCP_STACK, {**STABLE, "vllm:canary": {"model": CANARY_MODEL, "nodes": 1}})
    assert caught.value.key == "vllm:canary.nodes"


# --- GCP: each revision's Ray replicas behind the one URL map ----------------------------------------


def test_gcp_each_revision_has_its_own_ray_replicas_named_by_its_slot(runs):
    run = runs["gcp"]
    assert sorted(g.name for g in run.of_type(GCP_RAY)) == [
        "vllm-gcp-h100-multinode-r0",
        "vllm-gcp-h100-multinode-rev2-r0",
    ]
    names = sorted(m.inputs["baseInstanceName"] for m in run.of_type(ZONAL_MIG))
    assert names == [
        "vllm-gcp-h100-multinode-r0-head",
        "vllm-gcp-h100-multinode-r0-worker",
        "vllm-gcp-h100-multinode-rev2-r0-head",
        "vllm-gcp-h100-multinode-rev2-r0-worker",
    ]


def test_gcp_the_canarys_ray_replica_serves_the_canary_model(runs):
    run = runs["gcp"]
    for replica in run.of_type(GCP_RAY):
        model, other = CANARY_MODEL, STABLE_MODELS[GCP_STACK]
        if "-rev2-" not in replica.name:
            model, other = other, model
        for template in inside(run, replica, TEMPLATE):
            script = template.inputs["metadata"]["startup-script"]
            assert model in script and other not in script


def test_gcp_each_slots_heads_keep_addresses_of_their_own(runs):
    run = runs["gcp"]
    for replica in run.of_type(GCP_RAY):
        slot = "2" if "-rev2-" in replica.name else "1"
        (address,) = inside(run, replica, ADDRESS)
        assert address.inputs["address"] == head_address(0, slot)
        for template in inside(run, replica, TEMPLATE):
            assert (
                f"RAY_HEAD_ADDRESS={head_address(0, slot)}" in template.inputs["metadata"]["startup-script"]
            )


def test_head_addresses_of_both_slots_are_distinct_usable_addresses_of_the_subnet():
    addresses = [ipaddress.ip_address(head_address(i, slot)) for slot in REVISIONS for i in range(1000)]
    assert len(set(addresses)) == len(addresses)
    reserved = {
        SUBNET_CIDR.network_address,
        SUBNET_CIDR.network_address + 1,
        SUBNET_CIDR.broadcast_address - 1,
        SUBNET_CIDR.broadcast_address,
    }
    assert all(address in SUBNET_CIDR and address not in reserved for address in addresses)
    # Below them, the low addresses GCP hands out first still hold one revision's 1000 x 63 workers.
    assert int(min(addresses)) - int(SUBNET_CIDR.network_address) - 2 >= 1000 * 63


def test_gcp_each_backend_service_holds_its_own_revisions_heads_only(runs):
    run = runs["gcp"]
    backends = {r.name: sorted(b["group"] for b in r.inputs["backends"]) for r in run.of_type(BACKEND)}
    assert backends == {
        "vllm-gcp-h100-multinode-backend": [
            m.outputs["instanceGroup"] for m in gcp_heads(run, "vllm-gcp-h100-multinode-r0")
        ],
        "vllm-gcp-h100-multinode-rev2-backend": [
            m.outputs["instanceGroup"] for m in gcp_heads(run, "vllm-gcp-h100-multinode-rev2-r0")
        ],
    }


def test_gcp_the_url_map_splits_the_public_paths_between_the_revisions_heads_by_weight(runs):
    run = runs["gcp"]
    split = {backend_of(run, s["backendService"]): s["weight"] for s in weighted_services(run)}
    assert split == {"vllm-gcp-h100-multinode-backend": 900, "vllm-gcp-h100-multinode-rev2-backend": 100}
    assert picked(run) == [
        ("x-vllm-revision", "1", "vllm-gcp-h100-multinode-backend"),
        ("x-vllm-revision", "2", "vllm-gcp-h100-multinode-rev2-backend"),
    ]


def test_gcp_each_revisions_serving_gate_waits_on_its_own_heads(runs):
    run = runs["gcp"]
    found = {slot: (gate["backend"], gate["groups"]) for slot, gate in gates(run).items()}
    assert found == {
        "1": (
            "vllm-gcp-h100-multinode-backend",
            [m.outputs["instanceGroup"] for m in gcp_heads(run, "vllm-gcp-h100-multinode-r0")],
        ),
        "2": (
            "vllm-gcp-h100-multinode-rev2-backend",
            [m.outputs["instanceGroup"] for m in gcp_heads(run, "vllm-gcp-h100-multinode-rev2-r0")],
        ),
    }


def test_gcp_ray_traffic_stays_inside_each_revisions_own_replica(runs):
    run = runs["gcp"]
    replicas = run.of_type(GCP_RAY)
    for replica in replicas:
        (rule,) = inside(run, replica, FIREWALL)
        assert not rule.inputs.get("sourceRanges")  # never from the internet
        assert rule.inputs["sourceTags"] == rule.inputs["targetTags"]
        (tag,) = rule.inputs["targetTags"]
        for other in replicas:
            carries = [tag in t.inputs["tags"] for t in inside(run, other, TEMPLATE)]
            assert carries == [other is replica] * len(carries)


def test_gcp_google_reaches_only_the_serving_and_health_agent_ports_and_only_heads_serve(runs):
    run = runs["gcp"]
    opened = [r for r in run.of_type(FIREWALL) if r.inputs.get("sourceRanges")]
    ports = sorted(port for rule in opened for allowed in rule.inputs["allows"] for port in allowed["ports"])
    assert ports == sorted([str(HEALTH_AGENT_PORT), str(PORT)])
    assert all(sorted(rule.inputs["sourceRanges"]) == sorted(GOOGLE_LB_RANGES) for rule in opened)
    (serving,) = [r for r in opened if r.inputs["allows"][0]["ports"] == [str(PORT)]]
    (serving_tag,) = serving.inputs["targetTags"]
    (replica,) = [g for g in run.of_type(GCP_RAY) if "-rev2-" in g.name]
    for mig in inside(run, replica, ZONAL_MIG):
        is_head = mig.inputs["versions"][0]["name"] == "ray-head"
        assert (serving_tag in template_of(run, mig).inputs["tags"]) is is_head


def test_gcp_adding_a_canary_leaves_the_stable_ray_replicas_untouched(runs):
    stable = in_replicas(runs["gcp_stable"], GCP_RAY)
    assert stable and stable.items() <= in_replicas(runs["gcp"], GCP_RAY).items()


def test_gcp_promoting_swaps_the_roles_and_replaces_no_ray_resource(runs):
    before, after = runs["gcp"], runs["gcp_promoted"]
    assert in_replicas(before, GCP_RAY) == in_replicas(after, GCP_RAY)
    assert {r.urn: r.inputs for r in before.of_type(BACKEND)} == {
        r.urn: r.inputs for r in after.of_type(BACKEND)
    }
    split = {backend_of(after, s["backendService"]): s["weight"] for s in weighted_services(after)}
    assert split == {"vllm-gcp-h100-multinode-backend": 900, "vllm-gcp-h100-multinode-rev2-backend": 100}


def test_gcp_status_finds_each_revisions_heads_and_workers(runs):
    source = runs["gcp"].outputs["replicaSource"]
    rows = {g["name"]: (g["role"], g["revision"], g.get("balancer", "")) for g in source["groups"]}
    canary_backend = "vllm-gcp-h100-multinode-rev2-backend"
    assert rows == {
        "vllm-gcp-h100-multinode-r0-head": ("ray-head", "1", ""),
        "vllm-gcp-h100-multinode-r0-workers": ("ray-worker", "1", ""),
        "vllm-gcp-h100-multinode-rev2-r0-head": ("ray-head", "2", canary_backend),
        "vllm-gcp-h100-multinode-rev2-r0-workers": ("ray-worker", "2", canary_backend),
    }
    assert source["replicas"] == 2


def test_gcp_cost_and_quota_count_every_node_of_both_revisions(runs):
    spec = checked_spec(GCP_STACK, CANARY)
    assert spec.offering is not None
    node = spec.offering.hourly(False, spec.region)
    assert node is not None
    assert runs["gcp"].outputs["costPerHour"] == pytest.approx(4 * node, abs=0.01)  # 2 revisions x 2 nodes
    (every,) = [need for need in gpu_quota_needs(spec) if need.metric == "GPUS_ALL_REGIONS"]
    assert every.need == 2 * 2 * 8


# --- AWS: each revision's Ray replicas in its own target group --------------------------------------


def aws_split(run: Run) -> dict[str, int]:
    """The API rule's forward action: each target group's weight, by the group's logical name."""
    (action,) = next(r for r in run.of_type(RULE) if r.name == f"vllm-{AWS_STACK}-api").inputs["actions"]
    names = {r.outputs["arn"]: r.name for r in run.of_type(TARGET_GROUP)}
    return {names[group["arn"]]: group["weight"] for group in action["forward"]["targetGroups"]}


def aws_replica(run: Run, slot: str) -> Resource:
    """The one Ray replica of revision slot ``slot`` (the runs have one replica per revision)."""
    (found,) = [g for g in run.of_type(AWS_RAY) if ("-rev2-" in g.name) == (slot == "2")]
    return found


def test_aws_each_revision_has_its_own_ray_replicas_named_by_its_slot(runs):
    assert sorted(g.name for g in runs["aws"].of_type(AWS_RAY)) == [
        "vllm-aws-h200-multinode-r0",
        "vllm-aws-h200-multinode-rev2-r0",
    ]


def test_aws_each_revisions_heads_alone_join_its_own_target_group(runs):
    run = runs["aws"]
    arns = {r.outputs["arn"]: r.name for r in run.of_type(TARGET_GROUP) if r.inputs["protocol"] == "HTTP"}
    for slot, serving in (
        ("1", "vllm-aws-h200-multinode-replicas"),
        ("2", "vllm-aws-h200-multinode-rev2-replicas"),
    ):
        groups = inside(run, aws_replica(run, slot), ASG)
        joined = {g.name: [arns[a] for a in g.inputs["targetGroupArns"] if a in arns] for g in groups}
        assert sorted(joined.values()) == [[], [serving]]
        (head,) = [name for name, tgs in joined.items() if tgs]
        assert head.endswith("-head")


def test_aws_the_canarys_head_group_create_waits_until_the_head_serves_and_the_weights_wait_for_it(runs):
    run = runs["aws"]
    groups = {g.name: g for slot in REVISIONS for g in inside(run, aws_replica(run, slot), ASG)}
    head = groups["vllm-aws-h200-multinode-rev2-r0-head"]
    assert head.inputs["minElbCapacity"] == 1 and int(head.inputs["waitForCapacityTimeout"][:-1]) > 0
    waiting = [name for name, g in groups.items() if g.inputs["waitForCapacityTimeout"] != "0"]
    assert waiting == [head.name]  # the stable heads and every worker group wait on nothing
    weighted = [rule for rule in run.of_type(RULE) if "forward" in rule.inputs["actions"][0]]
    assert weighted and all(head.urn in rule.dependencies for rule in weighted)
    assert head.urn in run.one("aws:lambda/invocation:Invocation").dependencies


def test_aws_forwards_the_public_paths_between_the_revisions_by_weight(runs):
    split = aws_split(runs["aws"])
    assert split == {"vllm-aws-h200-multinode-replicas": 75, "vllm-aws-h200-multinode-rev2-replicas": 25}


def test_aws_each_revisions_head_has_its_own_internal_load_balancer_named_apart(runs):
    run = runs["aws"]
    names = [nlb.inputs["name"] for nlb in run.of_type(ELB) if nlb.inputs.get("internal")]
    assert len(names) == len(set(names)) == 2 and all(len(name) <= 32 for name in names)
    for slot in REVISIONS:
        (nlb,) = inside(run, aws_replica(run, slot), ELB)
        for template in inside(run, aws_replica(run, slot), LAUNCH_TEMPLATE):
            assert f"RAY_HEAD_ADDRESS={nlb.outputs['dnsName']}" in template.text()


def test_aws_ray_traffic_stays_inside_each_revisions_own_replica_and_off_the_internet(runs):
    run = runs["aws"]
    own = {
        slot: f"{sg.name}-id"
        for slot in REVISIONS
        for sg in inside(run, aws_replica(run, slot), SECURITY_GROUP)
    }
    assert len(set(own.values())) == 2
    for slot, sg_id in own.items():
        (rule,) = [r for r in run.of_type(INGRESS) if r.inputs["securityGroupId"] == sg_id]
        assert rule.inputs["referencedSecurityGroupId"] == sg_id and "cidrIpv4" not in rule.inputs
        for template in inside(run, aws_replica(run, slot), LAUNCH_TEMPLATE):
            groups = set(template.inputs["networkInterfaces"][0]["securityGroups"])
            assert groups & set(own.values()) == {sg_id}
    for rule in run.of_type(INGRESS):
        if "cidrIpv4" in rule.inputs or "cidrIpv6" in rule.inputs:
            assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (80, 80)


def test_aws_adding_a_canary_leaves_the_stable_ray_replicas_untouched(runs):
    stable = in_replicas(runs["aws_stable"], AWS_RAY)
    assert stable and stable.items() <= in_replicas(runs["aws"], AWS_RAY).items()


def test_aws_promoting_swaps_the_roles_and_replaces_no_ray_resource(runs):
    before, after = runs["aws"], runs["aws_promoted"]
    assert in_replicas(before, AWS_RAY, promoted=True) == in_replicas(after, AWS_RAY, promoted=True)
    assert {r.urn: r.inputs for r in before.of_type(TARGET_GROUP)} == {
        r.urn: r.inputs for r in after.of_type(TARGET_GROUP)
    }
    split = aws_split(after)
    assert split == {"vllm-aws-h200-multinode-replicas": 75, "vllm-aws-h200-multinode-rev2-replicas": 25}


def test_aws_status_finds_each_revisions_heads_and_workers_and_the_canarys_target_group(runs):
    run = runs["aws"]
    (canary_arn,) = [
        r.outputs["arn"]
        for r in run.of_type(TARGET_GROUP)
        if r.name == "vllm-aws-h200-multinode-rev2-replicas"
    ]
    rows = [(g["role"], g["revision"], g.get("balancer", "")) for g in run.outputs["replicaSource"]["groups"]]
    assert rows == [
        ("ray-head", "1", ""),
        ("ray-worker", "1", ""),
        ("ray-head", "2", canary_arn),
        ("ray-worker", "2", canary_arn),
    ]


def test_aws_a_canary_on_another_machine_places_its_ray_replica_where_that_machine_is_sold():
    # p5en.48xlarge (the stable revision's H200:8) and p5.48xlarge (the canary's H100:8) sell in
    # different zones: each revision's groups take subnets of their own machine's zones.
    run = run_program(AWS_STACK, {**STABLE, "vllm:canary": {"gpu": "H100:8", "replicas": 2, "weight": 10}})
    for replica in run.of_type(AWS_RAY):
        instance_type = "p5.48xlarge" if "-rev2-" in replica.name else "p5en.48xlarge"
        for group in inside(run, replica, ASG):
            (subnet,) = group.inputs["vpcZoneIdentifiers"]
            assert fakes.SUBNETS[subnet][1] in fakes.OFFERED_ZONES[instance_type]
    assert len(run.of_type(AWS_RAY)) == 3


def test_aws_a_single_node_canary_on_another_machine_spreads_over_that_machines_zones():
    # g6.xlarge (the preset's L4:1) sells in four zones, g4dn.xlarge (the canary's T4:1) in one other.
    canary = {"gpu": "T4:1", "model": "Qwen/Qwen3-0.6B", "weight": 10}
    run = run_program("aws-l4", {**STABLE, "vllm:canary": canary})
    zones = {
        group.name: sorted(fakes.SUBNETS[subnet][1] for subnet in group.inputs["vpcZoneIdentifiers"])
        for group in run.of_type(ASG)
    }
    assert zones == {
        "vllm-aws-l4-group": sorted(fakes.OFFERED_ZONES["g6.xlarge"]),
        "vllm-aws-l4-rev2-group": sorted(fakes.OFFERED_ZONES["g4dn.xlarge"]),
    }
