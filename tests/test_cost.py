"""components/cost.py: the costBreakdown output (which tools.plan prints), consistent with costPerHour."""

import pytest

from components.autoscaling import cost_output
from components.cost import CLUSTER_PRICED, breakdown
from components.spec import build_spec

SPOT_TWO_REGIONS = {
    "vllm:replicas": "3",
    "vllm:spot": "true",
    "vllm:onDemandBaseReplicas": "1",
    "vllm:regions": '["us-central1", "us-east4"]',
}
#: Stacks whose every price the catalog knows: fixed, spot with a base over two regions, autoscaled
#: with AWS's rollout surge on top of the bound.
PRICED = {
    "fixed": ("gcp-h100", {"vllm:replicas": "3"}),
    "spot over two regions": ("gcp-h100", SPOT_TWO_REGIONS),
    "multi-node": ("gcp-h100-multinode", {}),
    "autoscaled": (
        "aws-h100",
        {"vllm:replicas": "unset", "vllm:maxReplicas": "4", "vllm:targetQpsPerReplica": "2"},
    ),
}


@pytest.mark.parametrize("case", PRICED)
def test_the_total_is_the_cost_per_hour_output(case):
    spec = build_spec(*PRICED[case])
    assert breakdown(spec)["totalHourly"] == cost_output(spec)


@pytest.mark.parametrize("case", ["fixed", "spot over two regions", "multi-node"])
def test_the_shares_add_up_to_the_total(case):
    cost = breakdown(build_spec(*PRICED[case]))
    assert sum(share["hourly"] for share in cost["shares"]) == pytest.approx(cost["totalHourly"], abs=0.01)


def test_the_shares_count_every_node_of_every_replica():
    spec = build_spec(*PRICED["multi-node"])
    (share,) = breakdown(spec)["shares"]
    assert share["replicas"] == spec.replicas
    assert share["perReplicaHourly"] == round(spec.offering.on_demand_hourly * spec.nodes, 2)


def test_an_autoscaled_stack_is_priced_at_its_most_replicas_surge_included():
    cost = breakdown(build_spec(*PRICED["autoscaled"]))
    assert cost["replicas"] == {"min": 1, "max": 4}
    assert cost["scaleOutSurge"] == 1
    assert [share["replicas"] for share in cost["shares"]] == [5]


def test_spot_with_a_base_spreads_the_base_and_the_rest_over_the_regions():
    cost = breakdown(build_spec(*PRICED["spot over two regions"]))
    shares = [(s["region"], s["market"], s["replicas"]) for s in cost["shares"]]
    assert shares == [("us-central1", "on-demand", 1), ("us-central1", "spot", 1), ("us-east4", "spot", 1)]
    assert cost["pricing"] == "spot, 1 of 3 on-demand"


def test_candidates_are_cheapest_first_and_the_chosen_machine_is_marked_where_it_serves():
    cost = breakdown(build_spec(*PRICED["spot over two regions"]))
    blended = [c["blendedHourly"] for c in cost["candidates"]]
    assert blended == sorted(blended)
    assert {c["region"] for c in cost["candidates"] if c["chosen"]} == {"us-central1", "us-east4"}


def test_a_kubernetes_stack_has_no_machines_to_price():
    assert breakdown(build_spec("k8s-l4", {})) == {"candidates": [], "note": CLUSTER_PRICED}
