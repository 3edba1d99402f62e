"""GPU capacity: spot with an on-demand base, several regions behind one endpoint, reservations (issue 16)."""

from __future__ import annotations

import pytest

from components import catalog, replica_shares
from components.aws import purchase_options
from components.spec import SpecError, build_spec
from tests.harness import Run, run_program

SECRETS = {"vllm:apiKey": "sk-test-key-4567890"}
MODEL = "Qwen/Qwen3-8B"
MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
NAT = "gcp:compute/routerNat:RouterNat"
ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"


def gcp(**config) -> dict:
    return {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": MODEL, **config}


def aws(**config) -> dict:
    return {"vllm:cloud": "aws", "vllm:gpu": "A100:8", "vllm:model": MODEL, **config}


def k8s(**config) -> dict:
    return {"vllm:cloud": "kubernetes", "vllm:gpu": "L4:1", "vllm:model": MODEL, **config}


MIXED_REGIONS = gcp(
    **{
        "vllm:replicas": 5,
        "vllm:spot": True,
        "vllm:onDemandBaseReplicas": 2,
        "vllm:regions": ["us-central1", "us-east4"],
    }
)


@pytest.fixture(scope="module")
def gcp_mixed() -> Run:
    return run_program("mixed", MIXED_REGIONS, secrets=SECRETS)


@pytest.fixture(scope="module")
def aws_mixed() -> Run:
    config = aws(**{"vllm:replicas": 3, "vllm:spot": True, "vllm:onDemandBaseReplicas": 1})
    return run_program("mixed", config, secrets=SECRETS)


# --- the split ------------------------------------------------------------------------------------------


def test_replicas_and_the_on_demand_base_spread_evenly_over_the_regions_first_regions_first():
    spec = build_spec("mixed", MIXED_REGIONS)
    assert replica_shares.shares(spec) == [
        replica_shares.Share("us-central1", False, 1),
        replica_shares.Share("us-central1", True, 2),
        replica_shares.Share("us-east4", False, 1),
        replica_shares.Share("us-east4", True, 1),
    ]


@pytest.mark.parametrize("total", range(0, 12))
@pytest.mark.parametrize("parts", range(1, 5))
def test_a_spread_adds_up_and_differs_by_one_at_most(total, parts):
    counts = replica_shares.spread(total, parts)
    assert sum(counts) == total and max(counts) - min(counts) <= 1


def test_the_cost_adds_the_on_demand_base_and_the_spot_rest_at_each_regions_price():
    spec = build_spec("mixed", MIXED_REGIONS)
    offering = spec.offering
    expected = sum(
        offering.hourly(share.spot, share.region) * share.replicas for share in replica_shares.shares(spec)
    )
    assert replica_shares.cost_per_hour(spec) == round(expected, 2)
    assert replica_shares.cost_per_hour(spec) < offering.on_demand_hourly * 5


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        (gcp(**{"vllm:onDemandBaseReplicas": 1}), "vllm:onDemandBaseReplicas", "without vllm:spot true"),
        (
            gcp(**{"vllm:spot": True, "vllm:replicas": 2, "vllm:onDemandBaseReplicas": 3}),
            "vllm:onDemandBaseReplicas",
            "<= vllm:replicas (2)",
        ),
        (gcp(**{"vllm:spot": True, "vllm:onDemandBaseReplicas": -1}), "vllm:onDemandBaseReplicas", ">= 0"),
        (
            gcp(**{"vllm:gpu": "H100:4", "vllm:spot": True, "vllm:onDemandBaseReplicas": 1}),
            "vllm:gpu",
            "vllm:onDemandBaseReplicas 0",
        ),
        (gcp(**{"vllm:regions": ["us-central1", "us-east4"]}), "vllm:regions", "at most vllm:replicas (1)"),
        (
            gcp(**{"vllm:regions": ["us-central1", "us-central1"], "vllm:replicas": 2}),
            "vllm:regions",
            "each region once",
        ),
        (
            gcp(**{"vllm:gpu": "H100:8", "vllm:regions": ["us-central1", "us-east1"], "vllm:replicas": 2}),
            "vllm:regions",
            "a region that sells a3-highgpu-8g",
        ),
        (
            gcp(
                **{
                    "vllm:regions": ["us-central1", "us-east4"],
                    "vllm:replicas": 2,
                    "gcp:zone": "us-central1-a",
                }
            ),
            "gcp:zone",
            "unset with vllm:regions",
        ),
        (
            gcp(
                **{
                    "vllm:gpu": "H100:8",
                    "vllm:nodes": 2,
                    "vllm:regions": ["us-central1", "us-east4"],
                    "vllm:replicas": 2,
                }
            ),
            "vllm:regions",
            "vllm:nodes > 1",
        ),
        (gcp(**{"vllm:regions": ["US Central"]}), "vllm:regions", "a GCP region"),
        (
            gcp(
                **{"vllm:regions": ["us-east4", "us-west1"], "vllm:replicas": 2, "gcp:region": "us-central1"}
            ),
            "gcp:region",
            "one of vllm:regions (us-east4, us-west1)",
        ),
        (gcp(**{"vllm:reservation": "my-reservation"}), "vllm:reservation", "gcp:zone"),
        (
            gcp(**{"vllm:reservation": "Bad_Name", "gcp:zone": "us-central1-a"}),
            "vllm:reservation",
            "a reservation name",
        ),
        (
            gcp(**{"vllm:reservation": "r1", "gcp:zone": "us-central1-a", "vllm:spot": True}),
            "vllm:reservation",
            "Spot VMs do not consume reservations",
        ),
        (aws(**{"vllm:regions": ["us-east-1", "us-west-2"]}), "vllm:regions", "run a stack per region"),
        (aws(**{"vllm:reservation": "r-123"}), "vllm:reservation", "cr-0123456789abcdef0"),
        (
            aws(**{"vllm:reservation": "cr-0123456789abcdef0", "vllm:spot": True}),
            "vllm:reservation",
            "on-demand capacity",
        ),
        (k8s(**{"vllm:regions": ["us-central1"]}), "vllm:regions", "run a stack per cluster"),
        (k8s(**{"vllm:reservation": "r1"}), "vllm:reservation", "node pools"),
        (k8s(**{"vllm:spot": True}), "vllm:spot", "vllm:gpuNodeSelector to gke or karpenter"),
    ],
)
def test_capacity_keys_a_platform_cannot_honour_are_refused_with_what_to_do(config, key, words):
    with pytest.raises(SpecError) as refused:
        build_spec("refused", config)
    assert refused.value.key == key
    assert words in refused.value.valid


# --- GCP ------------------------------------------------------------------------------------------------


def test_gcp_builds_an_on_demand_and_a_spot_group_in_each_region(gcp_mixed):
    groups = {
        (g.inputs["region"], g.inputs["baseInstanceName"]): g.inputs["targetSize"]
        for g in gcp_mixed.of_type(MIG)
    }
    assert groups == {
        ("us-central1", "vllm-mixed-od"): 1,
        ("us-central1", "vllm-mixed-spot"): 2,
        ("us-east4", "vllm-mixed-od"): 1,
        ("us-east4", "vllm-mixed-spot"): 1,
    }


def test_gcp_spot_groups_run_spot_vms_and_on_demand_groups_standard_ones(gcp_mixed):
    models = sorted(t.inputs["scheduling"]["provisioningModel"] for t in gcp_mixed.of_type(TEMPLATE))
    assert models == ["SPOT", "SPOT", "STANDARD", "STANDARD"]


def test_gcp_every_group_is_a_backend_of_the_one_global_load_balancer(gcp_mixed):
    backends = gcp_mixed.one(BACKEND_SERVICE).inputs["backends"]
    groups = {g.outputs["instanceGroup"] for g in gcp_mixed.of_type(MIG)}
    assert {b["group"] for b in backends} == groups and len(groups) == 4


def test_gcp_each_region_gets_its_own_subnet_and_nat_without_overlap(gcp_mixed):
    subnets = {s.inputs["region"]: s.inputs["ipCidrRange"] for s in gcp_mixed.of_type(SUBNET)}
    assert subnets == {"us-central1": "10.64.0.0/16", "us-east4": "10.65.0.0/16"}
    assert sorted(n.inputs["region"] for n in gcp_mixed.of_type(NAT)) == ["us-central1", "us-east4"]


def test_gcp_a_regions_groups_spread_over_that_regions_zones_that_sell_the_machine(gcp_mixed):
    offering = build_spec("mixed", MIXED_REGIONS).offering
    for group in gcp_mixed.of_type(MIG):
        assert group.inputs["distributionPolicyZones"] == list(offering.zones[group.inputs["region"]])


def test_gcp_a_regions_templates_use_that_regions_subnet(gcp_mixed):
    for template in gcp_mixed.of_type(TEMPLATE):
        region = "us-east4" if "us-east4" in template.name else "us-central1"
        subnet = next(s for s in gcp_mixed.of_type(SUBNET) if s.inputs["region"] == region)
        assert template.inputs["networkInterfaces"][0]["subnetwork"] == subnet.outputs.get(
            "id", f"{subnet.name}-id"
        )


def test_gcp_a_single_group_stack_keeps_its_names():
    run = run_program("plain", gcp(), secrets=SECRETS)
    assert [g.name for g in run.of_type(MIG)] == ["vllm-plain-mig"]


def test_gcp_a_reservation_is_consumed_by_name_by_the_on_demand_vms_only():
    config = gcp(
        **{
            "vllm:reservation": "l4-block",
            "gcp:zone": "us-central1-a",
            "vllm:spot": True,
            "vllm:replicas": 3,
            "vllm:onDemandBaseReplicas": 1,
        }
    )
    run = run_program("reserved", config, secrets=SECRETS)
    affinity = {
        t.inputs["scheduling"]["provisioningModel"]: t.inputs.get("reservationAffinity")
        for t in run.of_type(TEMPLATE)
    }
    assert affinity == {
        "STANDARD": {
            "type": "SPECIFIC_RESERVATION",
            "specificReservation": {"key": "compute.googleapis.com/reservation-name", "values": ["l4-block"]},
        },
        "SPOT": None,
    }


def test_gcp_a_shared_reservation_of_another_project_is_accepted():
    config = gcp(
        **{"vllm:reservation": "projects/other-proj/reservations/l4-block", "gcp:zone": "us-central1-a"}
    )
    assert build_spec("shared", config).platform.reservation == "projects/other-proj/reservations/l4-block"


# --- AWS ------------------------------------------------------------------------------------------------


def test_aws_one_group_keeps_the_on_demand_base_and_puts_the_rest_on_spot(aws_mixed):
    distribution = aws_mixed.one(ASG).inputs["mixedInstancesPolicy"]["instancesDistribution"]
    assert distribution == {
        "onDemandBaseCapacity": 1,
        "onDemandPercentageAboveBaseCapacity": 0,
        "spotAllocationStrategy": "price-capacity-optimized",
    }


def test_aws_the_group_rebalances_spot_capacity(aws_mixed):
    assert aws_mixed.one(ASG).inputs["capacityRebalance"] is True


def test_aws_every_instance_type_with_the_same_gpus_is_an_override(aws_mixed):
    overrides = aws_mixed.one(ASG).inputs["mixedInstancesPolicy"]["launchTemplate"]["overrides"]
    assert [o["instanceType"] for o in overrides] == ["p4d.24xlarge", "p4de.24xlarge"]


def test_aws_the_mixed_group_takes_its_template_from_the_policy_which_asks_for_no_market(aws_mixed):
    group = aws_mixed.one(ASG).inputs
    assert "launchTemplate" not in group
    spec = group["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
    assert spec["launchTemplateId"] == aws_mixed.one(LAUNCH_TEMPLATE).outputs.get(
        "id", spec["launchTemplateId"]
    )
    assert "instanceMarketOptions" not in aws_mixed.one(LAUNCH_TEMPLATE).inputs


def test_aws_overrides_are_only_types_sold_in_the_region():
    spec = build_spec("west", aws(**{"aws:region": "eu-west-1", "vllm:spot": True}))
    assert purchase_options.instance_types(spec) == ["p4d.24xlarge"]


def test_aws_an_on_demand_stack_has_no_mixed_instances_policy():
    run = run_program("od", aws(), secrets=SECRETS)
    assert "mixedInstancesPolicy" not in run.one(ASG).inputs


RESERVATION = {"vllm:reservation": "cr-0123456789abcdef0", "vllm:reservationZone": "us-east-1b"}


@pytest.fixture(scope="module")
def aws_reserved() -> Run:
    return run_program("odcr", aws(**RESERVATION, **{"vllm:replicas": 3}), secrets=SECRETS)


def test_aws_a_capacity_reservation_is_targeted_by_the_launch_template(aws_reserved):
    template = aws_reserved.one(LAUNCH_TEMPLATE).inputs
    target = template["capacityReservationSpecification"]["capacityReservationTarget"]
    assert target == {"capacityReservationId": "cr-0123456789abcdef0"}
    assert "instanceMarketOptions" not in template


def test_aws_a_capacity_block_launches_with_the_capacity_block_market_type():
    config = aws(**{**RESERVATION, "vllm:reservation": "capacity-block:cr-0123456789abcdef0"})
    template = run_program("block", config, secrets=SECRETS).one(LAUNCH_TEMPLATE).inputs
    assert template["instanceMarketOptions"] == {"marketType": "capacity-block"}
    target = template["capacityReservationSpecification"]["capacityReservationTarget"]
    assert target == {"capacityReservationId": "cr-0123456789abcdef0"}


def test_aws_reserved_machines_launch_only_in_the_reservations_zone(aws_reserved):
    # A reservation serves only instances in its own Availability Zone (EC2 user guide, Capacity Blocks:
    # "Your instance can't launch in a subnet in a different Availability Zone from the Availability Zone
    # where your Capacity Block is located"; the same holds for On-Demand Capacity Reservations).
    from components.aws import fakes

    subnets = aws_reserved.one(ASG).inputs["vpcZoneIdentifiers"]
    assert subnets and {fakes.SUBNETS[subnet][1] for subnet in subnets} == {"us-east-1b"}


def test_aws_a_rollout_into_a_reservation_terminates_one_machine_before_it_launches_its_replacement(
    aws_reserved,
):
    # A launch-first refresh needs a free reserved slot: a sized reservation has none, and a Capacity Block
    # never falls back to on-demand. Max healthy 100% terminates first; min healthy 100% less one machine's
    # share (AWS rounds the count up) keeps the others serving.
    group = aws_reserved.one(ASG).inputs
    preferences = group["instanceRefresh"]["preferences"]
    assert (preferences["minHealthyPercentage"], preferences["maxHealthyPercentage"]) == (66, 100)
    assert group["maxSize"] == group["desiredCapacity"] == 3


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"vllm:reservation": "cr-0123456789abcdef0"}, "describe-capacity-reservations"),
        ({**RESERVATION, "vllm:reservationZone": "us-west-2a"}, "in aws:region us-east-1"),
        ({"vllm:reservationZone": "us-east-1b"}, "unset without vllm:reservation"),
    ],
)
def test_aws_a_reservation_without_its_zone_or_a_zone_without_it_is_refused(config, words):
    with pytest.raises(SpecError) as refused:
        build_spec("reserved", aws(**config))
    assert refused.value.key == "vllm:reservationZone"
    assert words in refused.value.valid


def test_same_gpus_are_the_same_chip_count_and_at_least_the_memory():
    a100 = catalog.select("aws", "A100", 8, spot=False)
    a100_80 = catalog.select("aws", "A100-80GB", 8, spot=False)
    assert [o.machine_type for o in catalog.same_gpus("aws", a100)] == ["p4d.24xlarge", "p4de.24xlarge"]
    assert [o.machine_type for o in catalog.same_gpus("aws", a100_80)] == ["p4de.24xlarge"]


# --- Kubernetes -----------------------------------------------------------------------------------------

K8S_MIXED = {"vllm:replicas": 3, "vllm:spot": True, "vllm:onDemandBaseReplicas": 1}


@pytest.fixture(scope="module", params=["gke", "karpenter"])
def k8s_mixed(request) -> tuple[str, Run]:
    config = k8s(**K8S_MIXED, **{"vllm:gpuNodeSelector": request.param})
    return request.param, run_program("mixed", config, secrets=SECRETS)


def node_expressions(deployment) -> list[dict]:
    affinity = deployment.inputs["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return [expression for term in terms for expression in term["matchExpressions"]]


CAPACITY_EXPRESSIONS = {
    "gke": {
        "on-demand": {"key": "cloud.google.com/gke-spot", "operator": "DoesNotExist"},
        "spot": {"key": "cloud.google.com/gke-spot", "operator": "In", "values": ["true"]},
    },
    "karpenter": {
        "on-demand": {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
        "spot": {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
    },
}


def test_kubernetes_the_base_and_the_rest_are_two_deployments_on_their_capacity_type(k8s_mixed):
    scheme, run = k8s_mixed
    deployments = {d.inputs["metadata"]["name"]: d for d in run.of_type(DEPLOYMENT)}
    assert {name: d.inputs["spec"]["replicas"] for name, d in deployments.items()} == {
        "vllm-mixed": 1,
        "vllm-mixed-spot": 2,
    }
    assert CAPACITY_EXPRESSIONS[scheme]["on-demand"] in node_expressions(deployments["vllm-mixed"])
    assert CAPACITY_EXPRESSIONS[scheme]["spot"] in node_expressions(deployments["vllm-mixed-spot"])


def test_kubernetes_the_deployments_select_disjoint_pods_and_the_service_selects_both(k8s_mixed):
    _, run = k8s_mixed
    selectors = [d.inputs["spec"]["selector"]["matchLabels"] for d in run.of_type(DEPLOYMENT)]
    assert selectors[0]["vllm.ai/capacity-type"] != selectors[1]["vllm.ai/capacity-type"]
    service = run.one(SERVICE).inputs["spec"]["selector"]
    for deployment in run.of_type(DEPLOYMENT):
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        assert service.items() <= labels.items()
        assert deployment.inputs["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kubernetes_the_capacity_split_deployments_are_valid_objects(k8s_mixed):
    from tests.test_kubernetes import manifest, validate

    _, run = k8s_mixed
    for deployment in run.of_type(DEPLOYMENT):
        validate(manifest(deployment))


def test_kubernetes_an_all_spot_stack_is_one_deployment_on_spot_nodes_with_its_usual_selector():
    run = run_program(
        "allspot", k8s(**{"vllm:spot": True, "vllm:gpuNodeSelector": "karpenter"}), secrets=SECRETS
    )
    deployment = run.one(DEPLOYMENT)
    assert CAPACITY_EXPRESSIONS["karpenter"]["spot"] in node_expressions(deployment)
    assert "vllm.ai/capacity-type" not in deployment.inputs["spec"]["selector"]["matchLabels"]


def test_kubernetes_an_on_demand_stack_has_no_capacity_constraint():
    run = run_program("plain", k8s(**{"vllm:gpuNodeSelector": "gke"}), secrets=SECRETS)
    keys = {e["key"] for e in node_expressions(run.one(DEPLOYMENT))}
    assert keys == {"cloud.google.com/gke-accelerator"}


def test_kubernetes_gke_spot_pods_tolerate_a_spot_node_pools_taint(k8s_mixed):
    scheme, run = k8s_mixed
    spot = next(d for d in run.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"].endswith("-spot"))
    keys = {t["key"] for t in spot.inputs["spec"]["template"]["spec"]["tolerations"]}
    assert ("cloud.google.com/gke-spot" in keys) == (scheme == "gke")


def test_kubernetes_an_on_demand_base_with_multi_node_groups_is_refused():
    config = k8s(
        **{
            "vllm:gpu": "H100:8",
            "vllm:nodes": 2,
            "vllm:spot": True,
            "vllm:onDemandBaseReplicas": 1,
            "vllm:replicas": 2,
            "vllm:gpuNodeSelector": "karpenter",
        }
    )
    with pytest.raises(SpecError) as refused:
        build_spec("lws", config)
    assert refused.value.key == "vllm:onDemandBaseReplicas"
    assert "LeaderWorkerSet" in refused.value.valid


# --- prices by region and market ------------------------------------------------------------------------


def test_every_regional_price_is_for_a_region_that_sells_the_machine():
    for gpu in catalog.gpus_offered("gcp"):
        for count in catalog.counts_offered("gcp", gpu):
            for offering in catalog.offerings("gcp", gpu, count):
                for region in offering.region_prices:
                    assert offering.sold_in(region), (offering.machine_type, region)


def test_a_region_priced_by_the_source_uses_its_own_spot_price():
    h100 = catalog.select("gcp", "H100", 8, spot=False)
    assert h100.price_region == "us-east4"
    assert h100.hourly(True, "europe-west4") == round(1.7888 + 18.3304, 5)
    assert h100.hourly(False, "europe-west4") == round(9.93306 + 101.88413, 5)


def test_an_on_demand_price_the_regions_row_lacks_is_the_reference_regions_and_says_so():
    h100 = catalog.select("gcp", "H100", 8, spot=False)
    price = h100.price_in("us-central1")
    assert price.on_demand == h100.on_demand_hourly
    assert "on-demand: us-east4's" in price.source


def test_a_region_without_a_price_of_its_own_is_priced_at_the_reference_region():
    t4 = catalog.select("gcp", "T4", 1, spot=False)
    price, own = t4.price_in("us-east4"), t4.price_in(None)
    assert (price.on_demand, price.spot) == (own.on_demand, own.spot)
    assert price.on_demand_from == "us-central1" and "none recorded for us-east4" in price.source


def test_an_l4_machine_is_priced_per_region_from_its_host_and_gpu_rows():
    g2 = catalog.select("gcp", "L4", 1, spot=False)  # g2-standard-4
    assert g2.hourly(False, "europe-west4") == round(0.46286 * 4 / 12 + 0.58804, 5)
    assert g2.hourly(True, "europe-west4") == round(0.18521 * 4 / 12 + 0.2106, 5)


def test_the_plan_considers_every_priced_region_cheapest_first_and_marks_the_serving_ones():
    from tools import plan as plan_tool

    data = plan_tool.plan(
        "gcp-h100",
        {"vllm:spot": "true", "vllm:onDemandBaseReplicas": "1", "vllm:regions": ["us-central1", "us-east4"]},
    )
    candidates = data["cost"]["candidates"]
    blended = [c["blendedHourly"] for c in candidates]
    assert blended == sorted(blended)
    assert {c["region"] for c in candidates} >= {"us-central1", "us-east4", "europe-west4"}
    assert {c["region"] for c in candidates if c["chosen"]} == {"us-central1", "us-east4"}
    shares = [(s["region"], s["market"], s["replicas"]) for s in data["cost"]["shares"]]
    assert shares == [("us-central1", "on-demand", 1), ("us-east4", "spot", 1)]
    assert data["cost"]["totalHourly"] == data["outputs"]["costPerHour"]


# --- the policy pack ------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["gcp", "aws"])
def test_capacity_stacks_pass_every_policy_as_the_sdk_hands_them_over(which, gcp_mixed, aws_mixed):
    from policy.validators import (
        StackResource,
        autohealing_violations,
        exposure_violations,
        public_path_violations,
        secret_violations,
    )
    from tests.test_policy import as_the_sdk_hands_it_over

    run = gcp_mixed if which == "gcp" else aws_mixed
    # The mock runtime's ids (name-id) stand in for the ids the engine knows after a create.
    resources = [
        StackResource(
            r.type,
            r.urn,
            as_the_sdk_hands_it_over(
                {**r.outputs, **r.inputs, **({"id": f"{r.name}-id"} if r.custom else {})}
            ),
            r.parent or None,
        )
        for r in run.resources
    ]
    assert autohealing_violations(resources) == []
    for resource in resources:
        rules = (secret_violations, exposure_violations, public_path_violations)
        assert [v for rule in rules for v in rule(resource.type, resource.props)] == [], resource.urn


def test_an_aws_spot_estimate_is_the_median_of_the_regions_zone_spot_prices():
    p5 = catalog.select("aws", "H100", 8, spot=True)
    assert p5.spot_hourly == round((25.8774 + 27.6948) / 2, 5)  # us-east-1's six zones
    assert p5.hourly(True, "us-east-2") == 15.6465
    assert p5.hourly(False, "us-east-2") == p5.on_demand_hourly  # on-demand: us-east-1's list


def test_an_aws_spot_stack_with_an_on_demand_base_is_priced_by_its_split():
    config = aws(
        **{"vllm:gpu": "H100:8", "vllm:replicas": 3, "vllm:spot": True, "vllm:onDemandBaseReplicas": 1}
    )
    spec = build_spec("priced", config)
    expected = spec.offering.on_demand_hourly + 2 * spec.offering.spot_hourly
    assert replica_shares.cost_per_hour(spec) == round(expected, 2)


def test_gcp_region_among_the_regions_comes_first_and_hosts_the_regional_resources():
    config = gcp(
        **{"vllm:regions": ["us-east4", "us-central1"], "vllm:replicas": 2, "gcp:region": "us-central1"}
    )
    spec = build_spec("first", config)
    assert (spec.region, spec.regions) == ("us-central1", ("us-central1", "us-east4"))


def _stack(run: Run) -> list:
    from policy.validators import StackResource

    return [
        StackResource(r.type, r.urn, {**r.outputs, **r.inputs, "id": f"{r.name}-id"}, r.parent or None)
        for r in run.resources
    ]


def test_the_mixed_group_and_its_template_are_a_pair_aws_accepts(aws_mixed):
    from components.aws.policy import aws_mixed_template_violations

    assert aws_mixed_template_violations(_stack(aws_mixed)) == []


def test_a_spot_template_under_a_mixed_group_is_a_policy_violation(aws_mixed):
    from components.aws.policy import aws_mixed_template_violations
    from policy.validators import StackResource

    spot = {"marketType": "spot"}
    resources = [
        StackResource(r.type, r.urn, {**r.props, "instanceMarketOptions": spot}, r.parent)
        if r.type == LAUNCH_TEMPLATE
        else r
        for r in _stack(aws_mixed)
    ]
    violations = aws_mixed_template_violations(resources)
    assert [urn for urn, _ in violations] == [aws_mixed.one(LAUNCH_TEMPLATE).urn]
    assert "mixed instances policy" in violations[0][1]


# --- multi-node replicas --------------------------------------------------------------------------------

MULTI_NODE_BASE = {
    "vllm:gpu": "H100:8",
    "vllm:nodes": 2,
    "vllm:replicas": 2,
    "vllm:spot": True,
    "vllm:onDemandBaseReplicas": 1,
    "vllm:modelSizeGb": 400,
    "vllm:diskSizeGb": 500,
}


def test_gcp_the_first_ray_groups_are_the_on_demand_base():
    run = run_program("rays", gcp(**MULTI_NODE_BASE), secrets=SECRETS)
    models = {t.name: t.inputs["scheduling"]["provisioningModel"] for t in run.of_type(TEMPLATE)}
    assert {name: model for name, model in models.items() if "-r0-" in name} == {
        "vllm-rays-r0-head": "STANDARD",
        "vllm-rays-r0-worker": "STANDARD",
    }
    assert {model for name, model in models.items() if "-r1-" in name} == {"SPOT"}


def test_aws_the_first_ray_groups_are_the_on_demand_base():
    run = run_program("rays", aws(**MULTI_NODE_BASE), secrets=SECRETS)
    markets = {
        t.name: (t.inputs.get("instanceMarketOptions") or {}).get("marketType")
        for t in run.of_type(LAUNCH_TEMPLATE)
    }
    assert {market for name, market in markets.items() if "-r0-" in name} == {None}
    assert {market for name, market in markets.items() if "-r1-" in name} == {"spot"}
