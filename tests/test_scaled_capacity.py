"""Autoscaling (issue 15) together with capacity (issue 16): an on-demand base under autoscaling on every
platform, and autoscaling over several GCP regions. The base is a fixed floor counted inside the bounds;
the autoscalers scale the rest, each group between its region's share of the bounds."""

from __future__ import annotations

import pytest

from components import autoscaling, replica_shares
from components.spec import SpecError, build_spec
from tests.harness import Run, run_program
from tests.test_autoscaling import SCALED_OBJECT_SCHEMA

SECRETS = {"vllm:apiKey": "sk-test-key-4567890"}
MODEL = "Qwen/Qwen3-8B"
REGIONS = ["us-central1", "us-east4"]
THREE_REGIONS = [*REGIONS, "us-west1"]
POLICY = {"vllm:maxReplicas": 7, "vllm:targetQpsPerReplica": 2.5}
SPOT_BASE = {"vllm:spot": True, "vllm:onDemandBaseReplicas": 1}
PROMETHEUS = "http://prometheus.monitoring:9090"

MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
AUTOSCALER = "gcp:compute/regionAutoscaler:RegionAutoscaler"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
ASG = "aws:autoscaling/group:Group"
AWS_POLICY = "aws:autoscaling/policy:Policy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def gcp(**config) -> dict:
    return {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": MODEL, **POLICY, **config}


def aws(**config) -> dict:
    return {"vllm:cloud": "aws", "vllm:gpu": "A100:8", "vllm:model": MODEL, **POLICY, **config}


def k8s(**config) -> dict:
    return {
        "vllm:cloud": "kubernetes",
        "vllm:gpu": "L4:1",
        "vllm:model": MODEL,
        "vllm:gpuNodeSelector": "gke",
        "vllm:prometheusUrl": PROMETHEUS,
        **POLICY,
        **config,
    }


def refusal(config: dict) -> SpecError:
    with pytest.raises(SpecError) as refused:
        build_spec("scaled", config)
    return refused.value


#: min 4 = 1 on-demand + 3 spot, max 7 = 1 on-demand + 6 spot; over two regions.
GCP_SCALED = gcp(**SPOT_BASE, **{"vllm:minReplicas": 4, "vllm:regions": REGIONS})


@pytest.fixture(scope="module")
def gcp_scaled() -> Run:
    return run_program("scaled", GCP_SCALED, secrets=SECRETS)


# --- the split ------------------------------------------------------------------------------------------


def test_each_scaled_groups_bounds_are_its_regions_share_at_the_stacks_bounds():
    spec = build_spec("scaled", GCP_SCALED)
    bounds = {
        region: replica_shares.share_scaling(spec, region, spot=True) for region in REGIONS
    }  # us-central1 holds the base: 4 = 2 + 2 and 7 = 4 + 3, less its on-demand replica
    assert {region: (p.min_replicas, p.max_replicas) for region, p in bounds.items() if p} == {
        "us-central1": (1, 3),
        "us-east4": (2, 3),
    }


@pytest.mark.parametrize(
    ("low", "high", "base", "regions"),
    [
        (low, high, base, regions)
        for low in range(1, 7)
        for high in range(low + 1, 10, 2)
        for base in range(low)
        for regions in (1, 2, 3)
        if low - base >= regions
    ],
)
def test_the_scaled_bounds_add_up_to_the_stacks_bounds_less_the_base(low, high, base, regions):
    spot = {"vllm:spot": True, "vllm:onDemandBaseReplicas": base} if base else {}
    bounds = {"vllm:minReplicas": low, "vllm:maxReplicas": high}
    spec = build_spec("scaled", gcp(**spot, **bounds, **{"vllm:regions": THREE_REGIONS[:regions]}))
    policies = [replica_shares.share_scaling(spec, region, base > 0) for region in spec.regions]
    assert all(p is not None and 1 <= p.min_replicas <= p.max_replicas for p in policies)
    assert sum(p.min_replicas for p in policies if p) == low - base
    assert sum(p.max_replicas for p in policies if p) == high - base


def test_the_on_demand_base_of_a_scaled_spot_stack_has_no_autoscaling():
    spec = build_spec("scaled", GCP_SCALED)
    assert replica_shares.share_scaling(spec, "us-central1", spot=False) is None


def test_the_first_up_starts_the_minimum_with_no_empty_share():
    spec = build_spec("scaled", GCP_SCALED)
    assert spec.replicas == 4
    assert [(s.region, s.spot, s.replicas) for s in replica_shares.shares(spec)] == [
        ("us-central1", False, 1),
        ("us-central1", True, 1),
        ("us-east4", True, 2),
    ]


def test_the_cost_range_prices_the_base_on_demand_and_the_rest_on_spot_in_each_region():
    spec = build_spec("scaled", GCP_SCALED)
    offering = spec.offering
    assert offering is not None

    def hourly(spot: bool, region: str) -> float:
        price = offering.hourly(spot, region)
        assert price is not None
        return price

    at_least = hourly(False, "us-central1") + hourly(True, "us-central1") + 2 * hourly(True, "us-east4")
    at_most = hourly(False, "us-central1") + 3 * hourly(True, "us-central1") + 3 * hourly(True, "us-east4")
    assert autoscaling.cost_output(spec) == {
        "min": pytest.approx(at_least, abs=0.02),
        "max": pytest.approx(at_most, abs=0.02),
    }


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "value"),
    [
        (gcp(**{"vllm:spot": True, "vllm:onDemandBaseReplicas": 3, "vllm:minReplicas": 2}), 3),
        (aws(**{"vllm:spot": True, "vllm:onDemandBaseReplicas": 3, "vllm:minReplicas": 2}), 3),
        (
            k8s(
                **{
                    "vllm:spot": True,
                    "vllm:onDemandBaseReplicas": 4,
                    "vllm:minReplicas": 4,
                    "vllm:maxReplicas": 4,
                }
            ),
            4,
        ),
    ],
)
def test_a_base_above_the_minimum_or_at_the_maximum_is_refused_naming_the_bounds(config, value):
    error = refusal(config)
    assert (error.key, error.value) == ("vllm:onDemandBaseReplicas", value)
    assert "<= vllm:minReplicas" in error.valid and "< vllm:maxReplicas" in error.valid


def test_a_base_without_spot_is_refused_with_autoscaling_too():
    error = refusal(gcp(**{"vllm:onDemandBaseReplicas": 1, "vllm:minReplicas": 2}))
    assert error.key == "vllm:onDemandBaseReplicas" and "without vllm:spot true" in error.valid


@pytest.mark.parametrize(
    ("config", "least"),
    [
        (gcp(**SPOT_BASE, **{"vllm:minReplicas": 1}), 2),  # the spot group would start from zero VMs
        (gcp(**{"vllm:minReplicas": 1, "vllm:regions": REGIONS}), 2),  # one region without a VM
        (gcp(**SPOT_BASE, **{"vllm:minReplicas": 2, "vllm:regions": REGIONS}), 3),
    ],
)
def test_gcp_refuses_a_scaled_group_without_a_vm_saying_why(config, least):
    error = refusal(config)
    assert error.key == "vllm:minReplicas"
    assert error.valid.startswith(f">= {least} on GCP")
    assert "a group without VMs has none to measure" in error.valid


def test_gcp_serves_as_many_regions_as_the_minimum_fills():
    spec = build_spec("scaled", gcp(**{"vllm:minReplicas": 2, "vllm:regions": REGIONS}))
    assert spec.regions == tuple(REGIONS) and spec.replicas == 2


# --- GCP ------------------------------------------------------------------------------------------------


def test_gcp_each_scaled_group_has_its_own_autoscaler_between_its_share_of_the_bounds(gcp_scaled):
    groups = {mig.name: mig for mig in gcp_scaled.of_type(MIG)}
    scaled = {
        groups[f"{scaler.inputs['target'].removesuffix('-id')}"].name: (
            scaler.inputs["region"],
            scaler.inputs["autoscalingPolicy"]["minReplicas"],
            scaler.inputs["autoscalingPolicy"]["maxReplicas"],
        )
        for scaler in gcp_scaled.of_type(AUTOSCALER)
    }
    assert scaled == {
        "vllm-scaled-us-central1-spot-mig": ("us-central1", 1, 3),
        "vllm-scaled-us-east4-spot-mig": ("us-east4", 2, 3),
    }


def test_gcp_autoscaler_names_are_unique_per_group(gcp_scaled):
    names = [scaler.name for scaler in gcp_scaled.of_type(AUTOSCALER)]
    assert sorted(names) == [
        "vllm-scaled-us-central1-spot-autoscaler",
        "vllm-scaled-us-east4-spot-autoscaler",
    ]


def test_gcp_scaled_groups_leave_their_size_to_the_autoscaler_and_the_base_keeps_its_own(gcp_scaled):
    sizes = {
        mig.name: (mig.inputs["targetSize"], "targetSize" in mig.ignore_changes)
        for mig in gcp_scaled.of_type(MIG)
    }
    assert sizes == {
        "vllm-scaled-us-central1-od-mig": (1, False),
        "vllm-scaled-us-central1-spot-mig": (1, True),
        "vllm-scaled-us-east4-spot-mig": (2, True),
    }


def test_gcp_every_backend_balances_on_rate_at_the_target(gcp_scaled):
    backends = gcp_scaled.one(BACKEND_SERVICE).inputs["backends"]
    assert len(backends) == 3
    assert {(b["balancingMode"], b["maxRatePerInstance"]) for b in backends} == {("RATE", 2.5)}


def test_gcp_autoscalers_are_children_of_the_one_autoscaler_component(gcp_scaled):
    parents = {gcp_scaled.by_urn(scaler.parent).type for scaler in gcp_scaled.of_type(AUTOSCALER)}
    assert parents == {"vllm:gcp:Autoscaler"}


def test_gcp_several_regions_without_spot_scale_every_group():
    run = run_program("scaled", gcp(**{"vllm:minReplicas": 3, "vllm:regions": REGIONS}), secrets=SECRETS)
    bounds = sorted(
        (
            s.inputs["region"],
            s.inputs["autoscalingPolicy"]["minReplicas"],
            s.inputs["autoscalingPolicy"]["maxReplicas"],
        )
        for s in run.of_type(AUTOSCALER)
    )
    assert bounds == [("us-central1", 2, 4), ("us-east4", 1, 3)]
    assert all("targetSize" in mig.ignore_changes for mig in run.of_type(MIG))


def test_gcp_the_outputs_show_the_stack_bounds_and_the_split_cost(gcp_scaled):
    assert gcp_scaled.outputs["replicas"] == {"min": 4, "max": 7}
    expected = autoscaling.cost_output(build_spec("scaled", GCP_SCALED))
    assert gcp_scaled.outputs["costPerHour"] == expected


# --- AWS ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws_scaled() -> Run:
    return run_program("scaled", aws(**SPOT_BASE, **{"vllm:minReplicas": 2}), secrets=SECRETS)


def test_aws_one_group_runs_the_stacks_bounds_with_the_base_on_demand_and_spot_above(aws_scaled):
    group = aws_scaled.one(ASG).inputs
    distribution = group["mixedInstancesPolicy"]["instancesDistribution"]
    assert (distribution["onDemandBaseCapacity"], distribution["onDemandPercentageAboveBaseCapacity"]) == (
        1,
        0,
    )
    # max size: the bound and the rollout's surge machine (ceil(7 x 15%) = 2: one machine's share, 115%)
    assert (group["minSize"], group["desiredCapacity"], group["maxSize"]) == (2, 2, 9)
    assert "desiredCapacity" in aws_scaled.one(ASG).ignore_changes


def test_aws_target_tracking_scales_the_mixed_group_as_any_other(aws_scaled):
    policy = aws_scaled.one(AWS_POLICY).inputs
    assert policy["autoscalingGroupName"] == aws_scaled.one(ASG).name
    assert policy["targetTrackingConfiguration"]["targetValue"] == 150.0


# --- Kubernetes -----------------------------------------------------------------------------------------


def k8s_run(**config) -> Run:
    return run_program("scaled", k8s(**config), secrets=SECRETS)


@pytest.fixture(scope="module")
def k8s_scaled() -> Run:
    return k8s_run(**{"vllm:spot": True, "vllm:onDemandBaseReplicas": 2, "vllm:minReplicas": 3})


def test_kubernetes_the_base_deployment_keeps_its_count(k8s_scaled):
    counts = {
        d.inputs["metadata"]["name"]: d.inputs["spec"].get("replicas") for d in k8s_scaled.of_type(DEPLOYMENT)
    }
    assert counts == {"vllm-scaled": 2, "vllm-scaled-spot": 1}  # the spot one at KEDA's lower bound


def test_kubernetes_up_waits_for_the_on_demand_base_and_not_for_spot_pods(k8s_scaled):
    # pulumi-kubernetes skips its readiness wait for an object annotated pulumi.com/skipAwait
    # (provider/pkg/await/await.go: metadata.SkipAwaitLogic): spot capacity may never come, and an `up`
    # that waited would fail at its timeout before the ScaledObject exists.
    annotations = {
        d.inputs["metadata"]["name"]: d.inputs["metadata"].get("annotations", {})
        for d in k8s_scaled.of_type(DEPLOYMENT)
    }
    assert annotations["vllm-scaled-spot"] == {"pulumi.com/skipAwait": "true"}
    assert "pulumi.com/skipAwait" not in annotations["vllm-scaled"]


def test_kubernetes_the_spot_deployment_count_is_left_to_keda_after_create(k8s_scaled):
    ignored = {d.inputs["metadata"]["name"]: d.ignore_changes for d in k8s_scaled.of_type(DEPLOYMENT)}
    assert ignored == {"vllm-scaled": (), "vllm-scaled-spot": ("spec.replicas",)}


def test_kubernetes_keda_scales_the_spot_deployment_between_the_bounds_less_the_base(k8s_scaled):
    spec = k8s_scaled.one(SCALED_OBJECT).inputs["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "vllm-scaled-spot",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 5)


def test_kubernetes_scales_the_spot_pods_on_the_rate_beyond_what_the_base_serves(k8s_scaled):
    (trigger,) = k8s_scaled.one(SCALED_OBJECT).inputs["spec"]["triggers"]
    rate = 'sum(rate(vllm:request_success_total{namespace="vllm-scaled",model_name="Qwen/Qwen3-8B"}[1m]))'
    assert trigger["metadata"]["query"] == f"clamp_min({rate} - 5, 0)"  # 2 base pods x 2.5 requests/s
    assert (trigger["metricType"], trigger["metadata"]["threshold"]) == ("AverageValue", "2.5")


def test_kubernetes_the_spot_part_may_scale_to_zero_while_the_base_serves():
    run = k8s_run(**{"vllm:spot": True, "vllm:onDemandBaseReplicas": 2, "vllm:minReplicas": 2})
    spec = run.one(SCALED_OBJECT).inputs["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 5)
    spot = [d for d in run.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"] == "vllm-scaled-spot"]
    assert spot[0].inputs["spec"]["replicas"] == 0  # created at KEDA's start: no spot pod to wait for
    # Woken by the excess rate, which the base's own pods report: no rate measured in front of vLLM.
    (trigger,) = spec["triggers"]
    assert trigger["metadata"]["query"].startswith("clamp_min(")
    assert trigger["metadata"]["activationThreshold"] == "0"


def test_kubernetes_an_activation_query_is_refused_while_the_base_serves():
    error = refusal(
        k8s(
            **{
                "vllm:spot": True,
                "vllm:onDemandBaseReplicas": 2,
                "vllm:minReplicas": 2,
                "vllm:activationQuery": "sum(rate(requests_total[1m]))",
            }
        )
    )
    assert error.key == "vllm:activationQuery" and "with vllm:minReplicas 0" in error.valid


def test_kubernetes_the_scaled_object_with_a_base_fits_kedas_schema(k8s_scaled):
    import jsonschema

    jsonschema.validate(k8s_scaled.one(SCALED_OBJECT).inputs, SCALED_OBJECT_SCHEMA)


def test_kubernetes_without_a_base_the_query_is_the_plain_rate():
    run = k8s_run(**{"vllm:spot": True, "vllm:minReplicas": 1})
    (trigger,) = run.one(SCALED_OBJECT).inputs["spec"]["triggers"]
    assert trigger["metadata"]["query"].startswith("sum(rate(")
    assert run.one(SCALED_OBJECT).inputs["spec"]["scaleTargetRef"]["name"] == "vllm-scaled"


# --- the plan and the policy pack -----------------------------------------------------------------------


def test_the_plan_prices_the_range_as_the_output_does():
    from tools import plan as plan_tool

    data = plan_tool.plan("scaled", GCP_SCALED, secrets=SECRETS)
    assert data["cost"]["totalHourly"] == data["outputs"]["costPerHour"]
    text = plan_tool.render_text(data)
    total = data["cost"]["totalHourly"]
    assert f"total ${total['min']:g}/h to ${total['max']:g}/h (4 to 7 replicas, autoscaled" in text


def test_the_gpu_budget_adds_up_every_regions_autoscaler_and_the_on_demand_base(gcp_scaled):
    from policy import gpu_budget
    from tests.test_gpu_budget import resources

    seen = resources(gcp_scaled)
    # At most 7 L4 replicas x 1 GPU: the fixed on-demand base of 1 and the two regions' spot groups at 3.
    assert gpu_budget.gpu_budget_violations(seen, 7) == []
    ((_, message),) = gpu_budget.gpu_budget_violations(seen, 6)
    assert "with the fixed group vllm-scaled-us-central1-od-mig" in message
    assert "may run 7 replicas x 1 GPUs = 7 GPUs, over the budget of 6" in message


def test_the_gpu_budget_counts_the_kubernetes_on_demand_base_beside_the_scaled_object(k8s_scaled):
    from policy import gpu_budget
    from tests.test_gpu_budget import resources

    seen = resources(k8s_scaled)
    most = k8s_scaled.one(SCALED_OBJECT).inputs["spec"]["maxReplicaCount"]
    total = int(most) + 2  # L4:1 replicas: the spot Deployment at its most, the base Deployment's 2
    assert gpu_budget.gpu_budget_violations(seen, total) == []
    ((_, message),) = gpu_budget.gpu_budget_violations(seen, total - 1)
    assert f"= {total} GPUs, over the budget of {total - 1}" in message
    assert "with the fixed group vllm-scaled-deployment " in message
