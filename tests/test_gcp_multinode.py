"""The GCP platform, multi-node: one Ray group (head MIG + worker MIG, one zone) per replica."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from components import launch, vm
from components.gcp.load_balancer import CONNECTION_DRAINING_SECONDS
from components.gcp.machine import (
    AGENT_START_SECONDS,
    MAX_INITIAL_DELAY_SECONDS,
    SECRET_VERSIONS_METADATA_KEY,
    roll_timings,
)
from components.gcp.network import GOOGLE_LB_RANGES, HEALTH_AGENT_PORT, SUBNET_CIDR
from components.gcp.ray_replica import head_address
from components.spec import build_spec
from tests.harness import Resource, Run, run_program
from tests.test_gcp import registrations  # noqa: F401 - the fixture, used through request
from tests.test_vm_bootstrap import shellcheck

HF_TOKEN, API_KEY = "hf_testtoken123", "sk-test-key-4567890"
SECRETS = {"vllm:hfToken": HF_TOKEN, "vllm:apiKey": API_KEY}
STACK, REPLICAS = "gcp-h100-multinode", 2

ZONAL_MIG = "gcp:compute/instanceGroupManager:InstanceGroupManager"
REGIONAL_MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
PER_INSTANCE = "gcp:compute/perInstanceConfig:PerInstanceConfig"
ADDRESS = "gcp:compute/address:Address"
PLACEMENT = "gcp:compute/resourcePolicy:ResourcePolicy"
FIREWALL = "gcp:compute/firewall:Firewall"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
RAY_REPLICA = "vllm:gcp:RayReplica"


@pytest.fixture(scope="module")
def run() -> Run:
    """The preset (one replica of two a3-highgpu-8g nodes) scaled to two replicas: two groups."""
    return run_program(STACK, {"vllm:replicas": REPLICAS}, secrets=SECRETS)


@pytest.fixture(scope="module")
def spec():
    return build_spec(STACK, {"vllm:replicas": REPLICAS})


def launch_of(spec) -> launch.LaunchSpec:
    return launch.launch_spec(spec, has_hf_token=True)


def members(run: Run, group: Resource, type_: str) -> list[Resource]:
    return [r for r in run.children(group) if r.type == type_]


def head_and_workers(run: Run, group: Resource) -> tuple[Resource, Resource]:
    migs = members(run, group, ZONAL_MIG)
    head = next(m for m in migs if m.inputs["versions"][0]["name"] == "ray-head")
    workers = next(m for m in migs if m.inputs["versions"][0]["name"] == "ray-worker")
    return head, workers


def template_of(run: Run, mig: Resource) -> Resource:
    link = mig.inputs["versions"][0]["instanceTemplate"]
    return next(t for t in run.of_type(TEMPLATE) if t.outputs["selfLinkUnique"] == link)


def test_each_replica_is_one_ray_replica_and_no_regional_group(run):
    assert len(run.of_type(RAY_REPLICA)) == REPLICAS
    assert not run.of_type(REGIONAL_MIG)


def test_each_group_has_a_head_of_one_vm_and_nodes_minus_one_workers(run, spec):
    for group in run.of_type(RAY_REPLICA):
        head, workers = head_and_workers(run, group)
        (config,) = members(run, group, PER_INSTANCE)
        assert "targetSize" not in head.inputs  # the per-instance config creates the one head
        assert config.inputs["instanceGroupManager"] == head.outputs["name"]
        assert workers.inputs["targetSize"] == spec.nodes - 1


def test_a_group_lives_in_one_zone_and_groups_take_different_zones(run, spec):
    zones = []
    for group in run.of_type(RAY_REPLICA):
        head, workers = head_and_workers(run, group)
        assert head.inputs["zone"] == workers.inputs["zone"]
        assert head.inputs["zone"] in spec.offering.zones[spec.region]
        zones.append(head.inputs["zone"])
    assert len(set(zones)) == REPLICAS


def test_a_group_is_compactly_placed(run):
    for group in run.of_type(RAY_REPLICA):
        (policy,) = members(run, group, PLACEMENT)
        assert policy.inputs["groupPlacementPolicy"]["collocation"] == "COLLOCATED"
        for mig in head_and_workers(run, group):
            assert template_of(run, mig).inputs["resourcePolicies"] == policy.outputs["selfLink"]


def test_the_head_keeps_a_reserved_internal_ip_that_the_scripts_name(run):
    for index, group in enumerate(sorted(run.of_type(RAY_REPLICA), key=lambda g: g.name)):
        (address,) = members(run, group, ADDRESS)
        (config,) = members(run, group, PER_INSTANCE)
        assert address.inputs["addressType"] == "INTERNAL"
        assert address.inputs["address"] == head_address(index)
        (kept,) = config.inputs["preservedState"]["internalIps"]
        assert kept["ipAddress"]["address"] == f"{address.name}-id"
        assert kept["autoDelete"] == "NEVER"
        for mig in head_and_workers(run, group):
            script = template_of(run, mig).inputs["metadata"]["startup-script"]
            assert f"RAY_HEAD_ADDRESS={head_address(index)}" in script


def test_head_addresses_are_distinct_usable_addresses_of_the_subnet():
    addresses = [ipaddress.ip_address(head_address(index)) for index in range(1000)]
    assert len(set(addresses)) == len(addresses)
    # GCP reserves the network and gateway addresses and the last two of every subnet.
    reserved = {
        SUBNET_CIDR.network_address,
        SUBNET_CIDR.network_address + 1,
        SUBNET_CIDR.broadcast_address - 1,
        SUBNET_CIDR.broadcast_address,
    }
    assert all(address in SUBNET_CIDR and address not in reserved for address in addresses)


def test_heads_and_workers_run_the_bootstrap_in_their_ray_role(run, spec):
    for group in run.of_type(RAY_REPLICA):
        head, workers = head_and_workers(run, group)
        for mig, role in ((head, "ray-head"), (workers, "ray-worker")):
            script = template_of(run, mig).inputs["metadata"]["startup-script"]
            assert f"ROLE={role}" in script
            assert f"RAY_EXPECTED_NODES={spec.nodes}" in script
            assert f"RAY_GPUS_PER_NODE={spec.gpu.count}" in script


def test_the_ray_startup_scripts_pass_shellcheck(run):
    head, workers = head_and_workers(run, run.of_type(RAY_REPLICA)[0])
    for mig in (head, workers):
        result = shellcheck(template_of(run, mig).inputs["metadata"]["startup-script"])
        assert result.returncode == 0, result.stdout


def test_ray_traffic_is_open_only_between_members_of_the_same_group(run):
    for group in run.of_type(RAY_REPLICA):
        (rule,) = members(run, group, FIREWALL)
        assert not rule.inputs.get("sourceRanges")
        assert rule.inputs["sourceTags"] == rule.inputs["targetTags"]
        (tag,) = rule.inputs["targetTags"]
        for mig in head_and_workers(run, group):
            assert tag in template_of(run, mig).inputs["tags"]
        others = [g for g in run.of_type(RAY_REPLICA) if g is not group]
        for other in others:
            for mig in head_and_workers(run, other):
                assert tag not in template_of(run, mig).inputs["tags"]


def test_only_heads_carry_the_tag_the_lb_firewall_admits(run):
    (lb_rule,) = [r for r in run.of_type(FIREWALL) if str(launch.PORT) in str(r.inputs.get("allows"))]
    assert sorted(lb_rule.inputs["sourceRanges"]) == sorted(GOOGLE_LB_RANGES)
    assert lb_rule.inputs["allows"] == [{"protocol": "tcp", "ports": [str(launch.PORT)]}]
    (serving_tag,) = lb_rule.inputs["targetTags"]
    for group in run.of_type(RAY_REPLICA):
        head, workers = head_and_workers(run, group)
        assert serving_tag in template_of(run, head).inputs["tags"]
        assert serving_tag not in template_of(run, workers).inputs["tags"]


def test_the_lb_backends_are_the_heads_only(run):
    groups = [b["group"] for b in run.one(BACKEND_SERVICE).inputs["backends"]]
    heads = [head_and_workers(run, g)[0].outputs["instanceGroup"] for g in run.of_type(RAY_REPLICA)]
    assert sorted(groups) == sorted(heads)


def test_heads_are_recreated_in_place(run):
    for group in run.of_type(RAY_REPLICA):
        head, _ = head_and_workers(run, group)
        assert head.inputs["namedPorts"] == [{"name": "http", "port": launch.PORT}]
        assert head.inputs["updatePolicy"]["replacementMethod"] == "RECREATE"


def test_heads_and_workers_autoheal_on_the_health_agent_within_gcps_delay_cap(run, spec):
    checks = {f"{c.name}-id": c for c in run.of_type("gcp:compute/healthCheck:HealthCheck")}
    for group in run.of_type(RAY_REPLICA):
        for mig in head_and_workers(run, group):
            policy = mig.inputs["autoHealingPolicies"]
            assert policy["initialDelaySec"] == roll_timings(launch_of(spec)).initial_delay_seconds
            assert AGENT_START_SECONDS <= policy["initialDelaySec"] <= MAX_INITIAL_DELAY_SECONDS
            assert checks[policy["healthCheck"]].inputs["httpHealthCheck"]["port"] == HEALTH_AGENT_PORT


def test_workers_agents_judge_ray_membership_of_their_own_head(run, spec):
    caps = " ".join(launch.health_caps(spec).as_args())
    for index, group in enumerate(sorted(run.of_type(RAY_REPLICA), key=lambda g: g.name)):
        head, workers = head_and_workers(run, group)
        script = template_of(run, workers).inputs["metadata"]["startup-script"]
        assert f"--role ray-worker {caps}" in script
        assert f"--ray-head {head_address(index)} --ray-port {vm.RAY_GCS_PORT}" in script
        head_script = template_of(run, head).inputs["metadata"]["startup-script"]
        (head_args,) = [line for line in head_script.splitlines() if line.startswith("HEALTH_AGENT_ARGS=(")]
        assert f"--role ray-head {caps}" in head_args and "--ray-head" not in head_args


def test_the_health_agent_port_is_open_to_googles_checkers_on_every_node(run):
    rule = next(
        r for r in run.of_type("gcp:compute/firewall:Firewall") if str(HEALTH_AGENT_PORT) in str(r.inputs)
    )
    for group in run.of_type(RAY_REPLICA):
        for mig in head_and_workers(run, group):
            assert set(rule.inputs["targetTags"]) <= set(template_of(run, mig).inputs["tags"])


def test_all_groups_share_one_service_account_and_one_set_of_secrets(run):
    assert len(run.of_type("gcp:serviceaccount/account:Account")) == 1
    assert len(run.of_type("gcp:secretmanager/secret:Secret")) == 2
    emails = {t.inputs["serviceAccount"]["email"] for t in run.of_type(TEMPLATE)}
    assert len(emails) == 1


def test_secret_values_appear_only_in_secret_versions(run):
    for resource in run.resources:
        if resource.type != "gcp:secretmanager/secretVersion:SecretVersion":
            assert HF_TOKEN not in resource.text() and API_KEY not in resource.text(), resource.name


def test_cost_per_hour_counts_every_node_of_every_replica(run, spec):
    assert run.outputs["costPerHour"] == pytest.approx(
        round(spec.offering.hourly(False) * spec.nodes * REPLICAS, 2)
    )


# --- rollouts ---------------------------------------------------------------------------------------------


def test_up_waits_for_each_groups_roll(run):
    for group in run.of_type(RAY_REPLICA):
        for mig in head_and_workers(run, group):
            assert mig.inputs["waitForInstances"] is True
            assert mig.inputs["waitForInstancesStatus"] == "UPDATED"


def test_groups_roll_one_after_another_so_an_update_never_takes_every_replica_down(request):
    registered = request.getfixturevalue("registrations")
    run = run_program(STACK, {"vllm:replicas": 3}, secrets=SECRETS)
    groups = sorted(run.of_type(RAY_REPLICA), key=lambda g: g.name)
    for earlier, later in itertools.pairwise(groups):
        for mig in head_and_workers(run, later):
            needs = set(registered[mig.urn].dependencies)
            assert {m.urn for m in head_and_workers(run, earlier)} <= needs, mig.name
    for mig in head_and_workers(run, groups[0]):
        assert not {m.urn for g in groups[1:] for m in head_and_workers(run, g)} & set(
            registered[mig.urn].dependencies
        )


def test_the_head_counts_as_rolled_only_once_it_had_its_load_budget(run, spec):
    budget = launch.probe_timings(spec).expected_startup_seconds  # a roll waits for the estimate
    timings = roll_timings(launch_of(spec))
    for group in run.of_type(RAY_REPLICA):
        head, _ = head_and_workers(run, group)
        assert head.inputs["updatePolicy"]["minReadySec"] == timings.min_ready_seconds
        assert timings.roll_wait_seconds >= budget
        script = template_of(run, head).inputs["metadata"]["startup-script"]
        assert f"--hold-until-uptime {timings.hold_until_uptime}" in script


def test_each_groups_wait_covers_its_roll(request, spec):
    registered = request.getfixturevalue("registrations")
    run = run_program(STACK, {"vllm:replicas": REPLICAS}, secrets=SECRETS)
    timings = roll_timings(launch_of(spec))
    for group in run.of_type(RAY_REPLICA):
        for mig in head_and_workers(run, group):
            timeout = registered[mig.urn].customTimeouts.update
            assert (
                int(timeout.removesuffix("m")) * 60 >= timings.roll_wait_seconds + CONNECTION_DRAINING_SECONDS
            )


def test_every_template_names_the_secret_versions_so_a_rotation_rolls_every_group(run):
    names = sorted(v.outputs["name"] for v in run.of_type("gcp:secretmanager/secretVersion:SecretVersion"))
    for template in run.of_type(TEMPLATE):
        assert sorted(template.inputs["metadata"][SECRET_VERSIONS_METADATA_KEY].split()) == names
