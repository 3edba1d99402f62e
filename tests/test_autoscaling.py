"""Autoscaling on load (issue 15): SkyServe's replica_policy, refused where a platform cannot honour it, and
each platform's own autoscaler under the real program."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components import autoscaling, presets, replica_shares
from components.spec import SpecError, build_spec, public_view
from tests.harness import Run, run_program

POLICY = {"vllm:maxReplicas": "4", "vllm:targetQpsPerReplica": "2.5"}

REGIONAL_AUTOSCALER = "gcp:compute/regionAutoscaler:RegionAutoscaler"
REGIONAL_MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
GCP_BACKEND = "gcp:compute/backendService:BackendService"


def refusal(stack: str, config: dict[str, str]) -> SpecError:
    with pytest.raises(SpecError) as raised:
        build_spec(stack, config)
    return raised.value


# --- the spec -------------------------------------------------------------------------------------------


def test_max_replicas_turns_autoscaling_on_with_skyserve_defaults() -> None:
    spec = build_spec("gcp-h100", POLICY)
    assert spec.autoscaling == autoscaling.Autoscaling(
        min_replicas=1, max_replicas=4, target_qps_per_replica=2.5
    )
    assert (spec.autoscaling.upscale_delay_seconds, spec.autoscaling.downscale_delay_seconds) == (300, 1200)


def test_without_max_replicas_the_count_is_fixed() -> None:
    spec = build_spec("gcp-h100", {})
    assert (spec.autoscaling, spec.replicas, spec.max_replicas) == (None, 2, 2)


def test_a_stack_max_replicas_replaces_the_presets_fixed_count() -> None:
    spec = build_spec("gcp-h100", {**POLICY, "vllm:minReplicas": "2"})  # the preset sets replicas: 2
    assert (spec.replicas, spec.max_replicas) == (2, 4)


def test_a_stack_replicas_replaces_a_presets_policy(monkeypatch) -> None:
    preset = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B", **POLICY}
    monkeypatch.setattr(presets, "available_presets", lambda: ["scaled"])
    monkeypatch.setattr(presets, "read_preset", lambda name: dict(preset))
    spec = build_spec("scaled", {"vllm:replicas": "3"})
    assert (spec.autoscaling, spec.replicas) == (None, 3)


def test_a_stack_unsetting_replicas_keeps_a_presets_policy(monkeypatch) -> None:
    preset = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B", **POLICY}
    monkeypatch.setattr(presets, "available_presets", lambda: ["scaled"])
    monkeypatch.setattr(presets, "read_preset", lambda name: dict(preset))
    assert build_spec("scaled", {"vllm:replicas": "unset"}).autoscaling is not None


def test_the_public_view_shows_the_bounds_and_the_policy() -> None:
    view = public_view(build_spec("gcp-h100", POLICY))
    assert view["replicas"] == {"min": 1, "max": 4}
    assert view["autoscaling"]["targetQpsPerReplica"] == 2.5


def test_cost_is_a_range_from_the_least_to_the_most_replicas() -> None:
    spec = build_spec("gcp-h100", {**POLICY, "vllm:minReplicas": "2"})
    fixed = replica_shares.cost_per_hour(build_spec("gcp-h100", {"vllm:replicas": "1"}))
    cost = autoscaling.cost_output(spec)
    assert cost == {"min": pytest.approx(2 * fixed, abs=0.02), "max": pytest.approx(4 * fixed, abs=0.02)}


@pytest.mark.parametrize(
    ("config", "key", "says"),
    [
        ({"vllm:replicas": "2", **POLICY}, "vllm:replicas", "unset with vllm:maxReplicas"),
        ({"vllm:maxReplicas": "4"}, "vllm:targetQpsPerReplica", "a number > 0"),
        ({**POLICY, "vllm:targetQpsPerReplica": "0"}, "vllm:targetQpsPerReplica", "a number > 0"),
        ({**POLICY, "vllm:targetQpsPerReplica": "-1"}, "vllm:targetQpsPerReplica", "a number > 0"),
        ({**POLICY, "vllm:minReplicas": "5"}, "vllm:maxReplicas", ">= vllm:minReplicas (5)"),
        ({**POLICY, "vllm:maxReplicas": "0"}, "vllm:maxReplicas", "an integer >= 1"),
        ({**POLICY, "vllm:maxReplicas": "1001"}, "vllm:maxReplicas", "<= 1000"),
        ({**POLICY, "vllm:minReplicas": "-1"}, "vllm:minReplicas", "an integer >= 0"),
        ({**POLICY, "vllm:downscaleDelaySeconds": "3601"}, "vllm:downscaleDelaySeconds", "<= 3600"),
        ({"vllm:targetQpsPerReplica": "2"}, "vllm:targetQpsPerReplica", "set with vllm:maxReplicas"),
        ({"vllm:minReplicas": "2"}, "vllm:minReplicas", "set with vllm:maxReplicas"),
    ],
)
def test_bad_policies_are_refused_naming_the_key(config: dict, key: str, says: str) -> None:
    error = refusal("gcp-h100", {"vllm:replicas": "unset", **config})
    assert error.key == key and says in error.valid


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({**POLICY, "vllm:targetQueuePerReplica": "0"}, "a number > 0"),
        ({**POLICY, "vllm:targetQueuePerReplica": "-2"}, "a number > 0"),
        ({**POLICY, "vllm:targetQueuePerReplica": "many"}, "a number > 0"),
        ({"vllm:targetQueuePerReplica": "4"}, "set with vllm:maxReplicas"),
    ],
)
def test_a_bad_queue_target_is_refused_naming_the_key(config: dict, says: str) -> None:
    error = refusal("aws-h100", {"vllm:replicas": "unset", **config})
    assert error.key == "vllm:targetQueuePerReplica" and says in error.valid


def test_a_queue_target_alone_is_a_policy() -> None:
    spec = build_spec(
        "aws-h100", {"vllm:replicas": "unset", "vllm:maxReplicas": "4", "vllm:targetQueuePerReplica": "6"}
    )
    assert spec.autoscaling is not None
    assert (spec.autoscaling.target_qps_per_replica, spec.autoscaling.target_queue_per_replica) == (None, 6.0)


def test_gcp_refuses_queue_depth_saying_why_and_what_it_offers() -> None:
    error = refusal("gcp-h100", {**POLICY, "vllm:targetQueuePerReplica": "6"})
    assert (error.key, error.value) == ("vllm:targetQueuePerReplica", "6")
    assert "gce_instance" in error.valid and "prometheus_target" in error.valid
    assert "vllm:targetQpsPerReplica" in error.valid and "\n" not in error.valid


@pytest.mark.parametrize("stack", ["gcp-h100-multinode", "aws-h200-multinode"])
def test_multi_node_replicas_on_vms_are_refused_pointing_to_kubernetes(stack: str) -> None:
    error = refusal(stack, {"vllm:replicas": "unset", **POLICY})
    assert error.key == "vllm:maxReplicas"
    assert "cannot add or remove as one unit" in error.valid and "Kubernetes" in error.valid


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_scale_to_zero_on_vms_is_refused_pointing_to_kubernetes(stack: str) -> None:
    error = refusal(stack, {**POLICY, "vllm:minReplicas": "0"})
    assert (error.key, error.value) == ("vllm:minReplicas", 0)
    assert error.valid.startswith(">= 1 on") and "Kubernetes" in error.valid


@pytest.mark.parametrize(
    ("stack", "key"),
    [
        ("gcp-h100", "vllm:upscaleDelaySeconds"),
        ("aws-h100", "vllm:upscaleDelaySeconds"),
        ("aws-h100", "vllm:downscaleDelaySeconds"),
    ],
)
def test_a_delay_the_platform_cannot_set_is_refused(stack: str, key: str) -> None:
    error = refusal(stack, {**POLICY, key: "300"})
    assert error.key == key and error.valid.startswith("unset on") and "docs/autoscaling.md" in error.valid


# --- outputs --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcp() -> Run:
    return run_program("gcp-h100", config={**POLICY, "vllm:minReplicas": "2"})


def test_the_replicas_output_is_the_fixed_count_without_autoscaling() -> None:
    run = run_program(
        "l4-fixed", config={"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B"}
    )
    assert run.outputs["replicas"] == 1
    assert isinstance(run.outputs["costPerHour"], float)


def test_the_outputs_show_the_bounds_and_the_cost_range(gcp: Run) -> None:
    assert gcp.outputs["replicas"] == {"min": 2, "max": 4}
    assert set(gcp.outputs["costPerHour"]) == {"min", "max"}
    assert gcp.outputs["costPerHour"]["max"] == pytest.approx(2 * gcp.outputs["costPerHour"]["min"], abs=0.02)


# --- GCP ------------------------------------------------------------------------------------------------


def test_gcp_autoscales_the_replicas_group_between_the_bounds(gcp: Run) -> None:
    scaler = gcp.one(REGIONAL_AUTOSCALER)
    policy = scaler.inputs["autoscalingPolicy"]
    assert (policy["minReplicas"], policy["maxReplicas"], policy["mode"]) == (2, 4, "ON")
    assert scaler.inputs["target"] == f"{gcp.one(REGIONAL_MIG).name}-id"  # the mock's id of the group
    assert scaler.inputs["region"] == "us-central1"


def test_gcp_scales_on_request_rate_per_vm_at_the_target(gcp: Run) -> None:
    (backend,) = gcp.one(GCP_BACKEND).inputs["backends"]
    assert (backend["balancingMode"], backend["maxRatePerInstance"]) == ("RATE", 2.5)
    policy = gcp.one(REGIONAL_AUTOSCALER).inputs["autoscalingPolicy"]
    assert policy["loadBalancingUtilization"] == {"target": 1.0}


def test_gcp_waits_out_the_load_budget_before_reading_a_new_vm(gcp: Run) -> None:
    from components.launch import probe_timings

    budget = probe_timings(build_spec("gcp-h100", {})).expected_startup_seconds
    policy = gcp.one(REGIONAL_AUTOSCALER).inputs["autoscalingPolicy"]
    assert policy["cooldownPeriod"] == budget


#: A replica that loads for longer than the initialization period holds: 900 GB on H200:8 (Spot only on GCP).
SLOW_LOADING = {
    "vllm:cloud": "gcp",
    "vllm:gpu": "H200:8",
    "vllm:spot": "true",
    "vllm:model": "Qwen/Qwen3-8B",
    "vllm:modelSizeGb": "900",
    "vllm:diskSizeGb": "2000",
    **POLICY,
}


def test_gcp_refuses_to_autoscale_a_replica_that_loads_longer_than_the_initialization_period() -> None:
    # GCP's initialization period is kept within 3600 s (components/gcp/autoscaler.py); a VM still loading
    # past it would count as initialized, serve nothing, and the group would over-scale.
    from components.gcp.autoscaler import MAX_INITIALIZATION_SECONDS
    from components.launch import probe_timings

    assert (
        probe_timings(build_spec("slow", SLOW_LOADING)).expected_startup_seconds
        > MAX_INITIALIZATION_SECONDS
        == 3600
    )
    with pytest.raises(SpecError) as raised:
        run_program("slow", config=SLOW_LOADING)
    assert raised.value.key == "vllm:maxReplicas" and "estimated load" in raised.value.valid
    assert raised.value.declared_resources == []


def test_gcp_scales_in_only_after_the_downscale_delay(gcp: Run) -> None:
    # terraform-provider-google drops an empty value (tpgresource.IsEmptyValue: 0) in the expanders of
    # scale_in_control.max_scaled_in_replicas (resource_compute_region_autoscaler.go), so a limit of 0
    # never reaches the API: 1, the smallest it sends, lets one VM go early and the rest after the delay.
    control = gcp.one(REGIONAL_AUTOSCALER).inputs["autoscalingPolicy"]["scaleInControl"]
    assert control == {"maxScaledInReplicas": {"fixed": 1}, "timeWindowSec": 1200}


def test_gcp_without_a_downscale_delay_sets_no_scale_in_control() -> None:
    from components.gcp.autoscaler import autoscaling_policy
    from components.launch import launch_spec

    spec = build_spec("gcp-h100", {**POLICY, "vllm:minReplicas": "2", "vllm:downscaleDelaySeconds": "0"})
    assert spec.autoscaling is not None
    assert "scale_in_control" not in autoscaling_policy(
        spec.autoscaling, launch_spec(spec, has_hf_token=False)
    )


def test_gcp_group_size_is_the_autoscalers_after_create(gcp: Run) -> None:
    mig = gcp.one(REGIONAL_MIG)
    assert mig.inputs["targetSize"] == 2  # the first up starts the minimum
    assert "targetSize" in mig.ignore_changes


def test_gcp_without_autoscaling_owns_its_size_and_balances_on_utilization() -> None:
    run = run_program("gcp-h100")
    assert not run.of_type(REGIONAL_AUTOSCALER)
    assert run.one(REGIONAL_MIG).ignore_changes == ()
    assert {b["balancingMode"] for b in run.one(GCP_BACKEND).inputs["backends"]} == {"UTILIZATION"}


def test_gcp_autoscaler_is_a_child_of_its_component(gcp: Run) -> None:
    scaler = gcp.one(REGIONAL_AUTOSCALER)
    parent = gcp.by_urn(scaler.parent)
    assert parent.type == "vllm:gcp:Autoscaler"


# --- AWS ------------------------------------------------------------------------------------------------

AWS_GROUP = "aws:autoscaling/group:Group"
AWS_POLICY = "aws:autoscaling/policy:Policy"


@pytest.fixture(scope="module")
def aws() -> Run:
    return run_program("aws-h100", config={"vllm:replicas": "unset", **POLICY, "vllm:minReplicas": "2"})


def test_aws_group_runs_between_the_bounds_with_room_for_the_rollout_surge(aws: Run) -> None:
    group = aws.one(AWS_GROUP)
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"], group.inputs["maxSize"]) == (2, 2, 5)
    refresh = group.inputs["instanceRefresh"]["preferences"]
    assert (refresh["minHealthyPercentage"], refresh["maxHealthyPercentage"]) == (100, 125)  # 1 of 4


def test_aws_cost_counts_the_machine_target_tracking_may_run_above_the_bound(aws: Run) -> None:
    # The group's maxSize keeps a rollout's surge room above vllm:maxReplicas, and target tracking has no
    # cap of its own below MaxSize: costPerHour's max counts what the group may run (the GPU budget policy
    # reads maxSize itself).
    most = aws.one(AWS_GROUP).inputs["maxSize"]
    cost = aws.outputs["costPerHour"]
    assert most == 5 and aws.outputs["spec"]["scaleOutSurge"] == 1
    assert cost["max"] == pytest.approx(cost["min"] * most / 2, abs=0.02)


def test_aws_desired_capacity_is_the_policys_after_create(aws: Run) -> None:
    assert "desiredCapacity" in aws.one(AWS_GROUP).ignore_changes


def test_aws_tracks_requests_per_target_per_minute_at_the_target(aws: Run) -> None:
    policy = aws.one(AWS_POLICY)
    tracking = policy.inputs["targetTrackingConfiguration"]
    assert policy.inputs["policyType"] == "TargetTrackingScaling"
    assert tracking["targetValue"] == 150.0  # 2.5 requests/s x 60
    metric = tracking["predefinedMetricSpecification"]
    assert metric["predefinedMetricType"] == "ALBRequestCountPerTarget"
    alb = aws.one("aws:lb/loadBalancer:LoadBalancer")
    target_group = aws.one("aws:lb/targetGroup:TargetGroup")
    assert metric["resourceLabel"] == (
        f"app/{alb.inputs['name']}/50dc6c495c0c9188/targetgroup/{target_group.inputs['name']}/73e2d6bc24d8a067"
    )
    assert policy.inputs["autoscalingGroupName"] == aws.one(AWS_GROUP).name


def test_aws_warms_new_machines_up_for_the_load_budget(aws: Run) -> None:
    group = aws.one(AWS_GROUP)
    from components.aws import machines

    budget = group.inputs["healthCheckGracePeriod"]  # the launch spec's load budget
    assert group.inputs["defaultInstanceWarmup"] == min(budget, machines.DEFAULT_WARMUP_MAX_SECONDS)
    assert aws.one(AWS_POLICY).inputs["estimatedInstanceWarmup"] == budget


#: An autoscaled H200:8 serving a 1 TB model: a load budget of 4850 s, over what the group's warmup accepts.
SLOW_AWS = {
    "vllm:cloud": "aws",
    "vllm:gpu": "H200:8",
    "vllm:model": "Qwen/Qwen3-8B",
    "vllm:modelSizeGb": "1000",
    **POLICY,
}


@pytest.fixture(scope="module")
def aws_slow() -> Run:
    return run_program("aws-slow", config=SLOW_AWS)


def test_aws_caps_the_groups_default_warmup_and_keeps_the_full_budget_where_the_api_allows_it(
    aws_slow: Run,
) -> None:
    # DefaultInstanceWarmup: 0-3600 s (EC2 Auto Scaling, "Enable the default instance warmup"); the
    # policy's EstimatedInstanceWarmup and the refresh's InstanceWarmup carry no such cap.
    from components.aws import machines

    group = aws_slow.one(AWS_GROUP)
    budget = group.inputs["healthCheckGracePeriod"]
    assert budget > machines.DEFAULT_WARMUP_MAX_SECONDS
    assert group.inputs["defaultInstanceWarmup"] == machines.DEFAULT_WARMUP_MAX_SECONDS
    assert aws_slow.one(AWS_POLICY).inputs["estimatedInstanceWarmup"] == budget
    assert group.inputs["instanceRefresh"]["preferences"]["instanceWarmup"] == str(int(budget))


def test_aws_vcpu_quota_counts_the_upper_bound_and_its_surge() -> None:
    from components.aws import sizing

    spec = build_spec("aws-h100", {"vllm:replicas": "unset", **POLICY})
    needs = [(quota.name, quota.vcpus) for quota in sizing.vcpu_quotas(spec)]
    assert needs == [("Running On-Demand P instances", 5 * spec.offering.vcpus)]


def test_aws_without_autoscaling_owns_its_capacity() -> None:
    run = run_program("aws-h100")
    group = run.one(AWS_GROUP)
    assert not run.of_type(AWS_POLICY)
    assert group.ignore_changes == () and "defaultInstanceWarmup" not in group.inputs
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"]) == (2, 2)


@pytest.fixture(scope="module")
def aws_queue() -> Run:
    return run_program(
        "aws-h100", config={"vllm:replicas": "unset", **POLICY, "vllm:targetQueuePerReplica": "6"}
    )


def test_aws_tracks_requests_running_and_waiting_per_machine_beside_the_request_rate(aws_queue: Run) -> None:
    # The metrics agent writes both gauges without a dimension into the stack's namespace each minute:
    # Average over the minute is per machine that reported; metric math adds the two.
    policies = {
        policy.name.removeprefix("vllm-aws-h100-"): policy for policy in aws_queue.of_type(AWS_POLICY)
    }
    assert set(policies) == {"requests-per-replica", "queue-per-replica"}
    rate, queue = policies["requests-per-replica"], policies["queue-per-replica"]
    tracking = queue.inputs["targetTrackingConfiguration"]
    assert tracking["targetValue"] == 6.0 and "predefinedMetricSpecification" not in tracking
    running, waiting, held = tracking["customizedMetricSpecification"]["metrics"]
    for metric, name in ((running, "RequestsRunning"), (waiting, "RequestsWaiting")):
        assert metric["metricStat"] == {
            "metric": {"metricName": name, "namespace": "vLLM/vllm-aws-h100"},
            "stat": "Average",
        }
        assert metric["returnData"] is False
    assert (held["expression"], held["returnData"]) == ("running + waiting", True)
    assert queue.inputs["autoscalingGroupName"] == aws_queue.one(AWS_GROUP).name
    assert queue.inputs["estimatedInstanceWarmup"] == rate.inputs["estimatedInstanceWarmup"]


def test_aws_tracks_metrics_the_agent_publishes() -> None:
    from components.aws.autoscaler import queue_metric
    from components.scripts import metrics_agent

    spec = build_spec("aws-h100", {"vllm:replicas": "unset", **POLICY, "vllm:targetQueuePerReplica": "6"})
    published = {metric.name for metric in metrics_agent.PUBLISHED}
    tracked = {
        m["metric_stat"]["metric"]["metric_name"] for m in queue_metric(spec)["metrics"] if "metric_stat" in m
    }
    assert tracked <= published


def test_aws_scales_on_queue_depth_alone() -> None:
    config = {"vllm:replicas": "unset", "vllm:maxReplicas": "4", "vllm:targetQueuePerReplica": "6"}
    run = run_program("aws-h100", config=config)
    (policy,) = run.of_type(AWS_POLICY)
    assert "customizedMetricSpecification" in policy.inputs["targetTrackingConfiguration"]


def test_aws_policy_is_a_child_of_its_component(aws: Run) -> None:
    assert aws.by_urn(aws.one(AWS_POLICY).parent).type == "vllm:aws:Autoscaler"


# --- Kubernetes -----------------------------------------------------------------------------------------

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
PROMETHEUS = "http://prometheus.monitoring:9090"
K8S_POLICY = {"vllm:replicas": "unset", **POLICY, "vllm:prometheusUrl": PROMETHEUS}


def scaled_object(run: Run) -> dict:
    return run.one(SCALED_OBJECT).inputs


@pytest.fixture(scope="module")
def k8s() -> Run:
    return run_program("k8s-l4", config={**K8S_POLICY, "vllm:upscaleDelaySeconds": "120"})


def test_kubernetes_scales_the_deployment_with_keda_between_the_bounds(k8s: Run) -> None:
    scaled = scaled_object(k8s)
    assert (scaled["apiVersion"], scaled["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    deployment = k8s.one(DEPLOYMENT).inputs
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert scaled["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 4)


def test_kubernetes_scales_on_vllms_request_rate_per_replica(k8s: Run) -> None:
    (trigger,) = scaled_object(k8s)["spec"]["triggers"]
    assert (trigger["type"], trigger["metricType"]) == ("prometheus", "AverageValue")
    metadata = trigger["metadata"]
    assert metadata["serverAddress"] == PROMETHEUS
    assert metadata["threshold"] == "2.5"
    assert metadata["query"] == (
        'sum(rate(vllm:request_success_total{namespace="vllm-k8s-l4",model_name="Qwen/Qwen3-8B"}[60s]))'
    )


def test_kubernetes_windows_hold_four_of_the_pod_monitors_scrapes(k8s: Run) -> None:
    # A rate needs two samples in its window; four scrape intervals keep two when a scrape fails.
    from components.kubernetes.scrape import SCRAPE_INTERVAL_SECONDS

    (trigger,) = scaled_object(k8s)["spec"]["triggers"]
    assert trigger["metadata"]["query"].endswith(f"[{4 * SCRAPE_INTERVAL_SECONDS}s]))")


def test_kubernetes_an_empty_result_is_an_error_while_a_vllm_pod_always_reports(k8s: Run) -> None:
    # KEDA's prometheus scaler reads an empty result as 0 unless ignoreNullValues is false (pkg/scalers/
    # prometheus_scaler.go, default=true): a Prometheus that never scrapes vLLM would never scale out.
    (trigger,) = scaled_object(k8s)["spec"]["triggers"]
    assert trigger["metadata"]["ignoreNullValues"] == "false"


@pytest.fixture(scope="module")
def k8s_queue() -> Run:
    return run_program("k8s-l4", config={**K8S_POLICY, "vllm:targetQueuePerReplica": "8"})


def test_kubernetes_scales_on_requests_running_and_waiting_per_replica(k8s_queue: Run) -> None:
    rate, queue = scaled_object(k8s_queue)["spec"]["triggers"]
    assert (rate["name"], queue["name"]) == ("vllm-requests", "vllm-queue")
    assert (queue["type"], queue["metricType"], queue["metadata"]["threshold"]) == (
        "prometheus",
        "AverageValue",
        "8",
    )
    labels = '{namespace="vllm-k8s-l4",model_name="Qwen/Qwen3-8B"}'
    assert queue["metadata"]["query"] == (
        f"(sum(avg_over_time(vllm:num_requests_running{labels}[60s])) + "
        f"sum(avg_over_time(vllm:num_requests_waiting{labels}[60s])))"
    )


def test_kubernetes_scales_on_queue_depth_alone() -> None:
    config = {**K8S_POLICY, "vllm:targetQpsPerReplica": "unset", "vllm:targetQueuePerReplica": "4"}
    spec = build_spec("k8s-l4", config)
    assert spec.autoscaling is not None
    from components.kubernetes.autoscaler import triggers

    assert [trigger["name"] for trigger in triggers(spec, spec.autoscaling)] == ["vllm-queue"]


def test_kubernetes_delays_are_the_hpas_stabilization_windows(k8s: Run) -> None:
    behavior = scaled_object(k8s)["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior == {
        "scaleUp": {"stabilizationWindowSeconds": 120},
        "scaleDown": {"stabilizationWindowSeconds": 1200},
    }


def test_kubernetes_deployment_starts_at_the_lower_bound_then_leaves_its_count_to_the_autoscaler(
    k8s: Run,
) -> None:
    # Without replicas the API server would default it to 1, whatever the bound. ignore_changes: see
    # components/kubernetes/spot_pods.py SCALED_REPLICAS (pulumi-kubernetes keeps an ignored field live).
    deployment = k8s.one(DEPLOYMENT)
    assert deployment.inputs["spec"]["replicas"] == scaled_object(k8s)["spec"]["minReplicaCount"] == 1
    assert deployment.ignore_changes == ("spec.replicas",)


def test_kubernetes_without_autoscaling_declares_its_count_and_no_scaled_object() -> None:
    run = run_program("k8s-l4")
    assert run.one(DEPLOYMENT).inputs["spec"]["replicas"] == 1
    assert run.one(DEPLOYMENT).ignore_changes == ()  # Pulumi owns the count
    assert not run.of_type(SCALED_OBJECT)


def test_kubernetes_switching_a_running_stack_to_autoscaling_keeps_its_live_count(k8s: Run) -> None:
    # Server-side apply drops a field its manager no longer sends, and the API server defaults a
    # Deployment's replicas to 1 before the HPA (created after it) acts. The same Deployment (same URN,
    # same name: updated, not replaced) ignores the field, so pulumi-kubernetes sends its live value.
    fixed = run_program("k8s-l4", config={"vllm:replicas": "3"}).one(DEPLOYMENT)
    scaled = k8s.one(DEPLOYMENT)
    assert (scaled.urn, scaled.inputs["metadata"]["name"]) == (fixed.urn, fixed.inputs["metadata"]["name"])
    assert fixed.inputs["spec"]["replicas"] == 3 and "spec.replicas" in scaled.ignore_changes


def test_kubernetes_scales_a_leader_worker_set_by_whole_groups() -> None:
    run = run_program("k8s-h100-multinode", config=K8S_POLICY)
    lws = run.one(LWS).inputs
    target = scaled_object(run)["spec"]["scaleTargetRef"]
    assert target == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": "vllm-k8s-h100-multinode",
    }
    assert target["name"] == lws["metadata"]["name"] and lws["spec"]["replicas"] == 1
    assert run.one(LWS).ignore_changes == ("spec.replicas",)
    # Ray's NetworkPolicies cover every group index the autoscaler may create (4 groups + 1 surge).
    indices = {
        r.inputs["spec"]["podSelector"]["matchLabels"]["leaderworkerset.sigs.k8s.io/group-index"]
        for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if "leaderworkerset.sigs.k8s.io/group-index" in r.inputs["spec"]["podSelector"]["matchLabels"]
    }
    assert indices >= {"0", "1", "2", "3"}


def test_kubernetes_scales_to_zero_woken_by_the_request_rate_in_front_of_vllm() -> None:
    front = 'sum(rate(nginx_ingress_controller_requests{exported_service="vllm-k8s-l4-api"}[1m]))'
    run = run_program("k8s-l4", config={**K8S_POLICY, "vllm:minReplicas": "0", "vllm:activationQuery": front})
    spec = scaled_object(run)["spec"]
    assert (spec["minReplicaCount"], spec["cooldownPeriod"]) == (0, 1200)
    queries = [trigger["metadata"]["query"] for trigger in spec["triggers"]]
    assert queries[1] == front and "vllm:request_success_total" in queries[0]
    assert {trigger["metadata"]["activationThreshold"] for trigger in spec["triggers"]} == {"0"}
    # With no pod, vLLM's series are gone: empty is 0 there, not an error.
    assert not [trigger for trigger in spec["triggers"] if "ignoreNullValues" in trigger["metadata"]]
    assert run.outputs["replicas"] == {"min": 0, "max": 4}
    # Created with one pod, so that the first `up` proves a replica loads (the Deployment's await; the
    # Service's would complete with no pod at all); KEDA takes it to 0 once idle.
    assert run.one(DEPLOYMENT).inputs["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("config", "key", "says"),
    [
        ({**POLICY, "vllm:replicas": "unset"}, "vllm:prometheusUrl", "required with vllm:maxReplicas"),
        ({**K8S_POLICY, "vllm:prometheusUrl": "prometheus:9090"}, "vllm:prometheusUrl", "an http(s) URL"),
        ({**K8S_POLICY, "vllm:minReplicas": "0"}, "vllm:serviceType", "KEDA HTTP add-on's interceptor"),
        ({**K8S_POLICY, "vllm:activationQuery": "sum(x)"}, "vllm:activationQuery", "with vllm:minReplicas 0"),
        (
            {
                **K8S_POLICY,
                "vllm:targetQpsPerReplica": "unset",
                "vllm:targetQueuePerReplica": "8",
                "vllm:minReplicas": "0",
                "vllm:activationQuery": "sum(x)",
            },
            "vllm:activationQuery",
            "set with vllm:targetQpsPerReplica",
        ),
        ({"vllm:prometheusUrl": PROMETHEUS}, "vllm:prometheusUrl", "set with vllm:maxReplicas"),
        ({**K8S_POLICY, "vllm:upscaleDelaySeconds": "3601"}, "vllm:upscaleDelaySeconds", "<= 3600"),
    ],
)
def test_kubernetes_refuses_what_keda_cannot_do(config: dict, key: str, says: str) -> None:
    error = refusal("k8s-l4", config)
    assert error.key == key and says in error.valid


# --- Kubernetes: scale from zero through the KEDA HTTP add-on's interceptor ------------------------------

INTERCEPTOR_ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
COLD_START = {
    **K8S_POLICY,
    "vllm:minReplicas": "0",
    "vllm:targetQueuePerReplica": "6.5",
    "vllm:serviceType": "ClusterIP",
    "vllm:domain": "llm.example.com",
}


def named(run: Run, type_: str, name: str) -> dict:
    (found,) = [r.inputs for r in run.of_type(type_) if r.inputs["metadata"]["name"] == name]
    return found


@pytest.fixture(scope="module")
def k8s_cold() -> Run:
    return run_program("k8s-l4", config={**COLD_START, "vllm:installKedaHttpAddOn": "true"})


def test_kubernetes_at_zero_requests_wake_the_workload_through_the_interceptors_trigger(
    k8s_cold: Run,
) -> None:
    spec = scaled_object(k8s_cold)["spec"]
    interceptor = spec["triggers"][-1]
    assert interceptor == {
        "type": "external-push",
        "name": "interceptor",
        "metadata": {
            "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090",
            "interceptorRoute": k8s_cold.one(INTERCEPTOR_ROUTE).inputs["metadata"]["name"],
        },
    }
    assert spec["minReplicaCount"] == 0


def test_kubernetes_the_route_forwards_api_requests_with_a_key_to_the_stacks_service(k8s_cold: Run) -> None:
    route = k8s_cold.one(INTERCEPTOR_ROUTE).inputs
    service = named(k8s_cold, "kubernetes:core/v1:Service", "vllm-k8s-l4-api")
    assert route["spec"]["target"] == {"service": service["metadata"]["name"], "port": 80}
    assert route["spec"]["rules"] == [
        {"hosts": ["llm.example.com"], "paths": [{"value": "/v1"}], "headers": [{"name": "Authorization"}]}
    ]
    assert route["metadata"]["namespace"] == service["metadata"]["namespace"]


def test_kubernetes_the_interceptor_scales_on_requests_in_flight_at_the_queue_target(k8s_cold: Run) -> None:
    # The CRD's targetValue is an integer >= 1: 6.5 requests per replica rounds up, never below the target.
    assert k8s_cold.one(INTERCEPTOR_ROUTE).inputs["spec"]["scalingMetric"] == {
        "concurrency": {"targetValue": 7}
    }


def test_kubernetes_a_request_at_zero_waits_for_the_pods_start_budget_by_default(k8s_cold: Run) -> None:
    # A new GPU node, the image pull and the model load: what a pod's start may take.
    from tests.test_kubernetes import start_budget

    budget = start_budget(build_spec("k8s-l4", COLD_START))
    assert k8s_cold.one(INTERCEPTOR_ROUTE).inputs["spec"]["timeouts"]["readiness"] == f"{budget}s"


def test_kubernetes_the_wait_at_zero_is_configurable() -> None:
    run = run_program("k8s-l4", config={**COLD_START, "vllm:coldStartTimeoutSeconds": "900"})
    assert run.one(INTERCEPTOR_ROUTE).inputs["spec"]["timeouts"]["readiness"] == "900s"


def test_kubernetes_the_interceptor_waits_for_a_response_as_long_as_a_replica_may_take(k8s_cold: Run) -> None:
    # A non-streaming completion's headers come when it ends; the add-on's default wait is 300 s
    # (KEDA_HTTP_RESPONSE_HEADER_TIMEOUT, interceptor/config/timeouts.go, v0.15.0).
    from components.kubernetes.pods import LONGEST_REQUEST_SECONDS

    timeouts = k8s_cold.one(INTERCEPTOR_ROUTE).inputs["spec"]["timeouts"]
    assert timeouts["responseHeader"] == f"{LONGEST_REQUEST_SECONDS}s"
    assert LONGEST_REQUEST_SECONDS > 300


def test_kubernetes_your_ingress_routes_to_the_interceptor_by_a_service_in_the_stacks_namespace(
    k8s_cold: Run,
) -> None:
    entry = named(k8s_cold, "kubernetes:core/v1:Service", "vllm-k8s-l4-interceptor")
    assert entry["spec"]["type"] == "ExternalName"
    assert entry["spec"]["externalName"] == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local"
    assert entry["spec"]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert entry["metadata"]["namespace"] == "vllm-k8s-l4"


def test_kubernetes_installs_the_pinned_http_add_on_on_request(k8s_cold: Run) -> None:
    from components.kubernetes.cold_start import HTTP_ADD_ON_MANIFEST

    (manifest,) = k8s_cold.of_type("kubernetes:yaml/v2:ConfigFile")
    assert manifest.inputs["file"] == HTTP_ADD_ON_MANIFEST
    assert HTTP_ADD_ON_MANIFEST.endswith("/v0.15.0/keda-add-ons-http-0.15.0.yaml")
    assert k8s_cold.by_urn(manifest.parent).type == "vllm:kubernetes:HttpAddOn"
    assert k8s_cold.by_urn(k8s_cold.one(INTERCEPTOR_ROUTE).parent).type == "vllm:kubernetes:ColdStart"


def test_kubernetes_without_the_request_the_add_on_is_the_clusters() -> None:
    run = run_program("k8s-l4", config=COLD_START)
    assert not run.of_type("kubernetes:yaml/v2:ConfigFile") and run.of_type(INTERCEPTOR_ROUTE)


def test_kubernetes_with_an_activation_query_there_is_no_interceptor() -> None:
    front = "sum(rate(nginx_ingress_controller_requests[1m]))"
    run = run_program("k8s-l4", config={**K8S_POLICY, "vllm:minReplicas": "0", "vllm:activationQuery": front})
    assert not run.of_type(INTERCEPTOR_ROUTE)


@pytest.mark.parametrize(
    ("config", "key", "says"),
    [
        (
            {**COLD_START, "vllm:serviceType": "LoadBalancer", "vllm:domain": "unset"},
            "vllm:serviceType",
            "ClusterIP",
        ),
        (
            {**COLD_START, "vllm:tlsSecretName": "tls", "vllm:domain": "llm.example.com"},
            "vllm:tlsSecretName",
            "TLS ends at your Ingress",
        ),
        (
            {**COLD_START, "vllm:targetQueuePerReplica": "unset"},
            "vllm:targetQueuePerReplica",
            "requests in flight per replica",
        ),
        # The Gateway sends requests straight to the InferencePool's pods: the interceptor would see none.
        (
            {**COLD_START, "vllm:router": "inference-gateway", "vllm:gatewayName": "gateways/public"},
            "vllm:minReplicas",
            "never through the KEDA HTTP add-on's interceptor",
        ),
        # The interceptor is the cluster's and routes by host: without one the route would be a catch-all.
        ({**COLD_START, "vllm:domain": "unset"}, "vllm:domain", "routes each request by its Host"),
        ({**COLD_START, "vllm:coldStartTimeoutSeconds": "0"}, "vllm:coldStartTimeoutSeconds", ">= 1"),
        (
            {**COLD_START, "vllm:coldStartTimeoutSeconds": "soon"},
            "vllm:coldStartTimeoutSeconds",
            "an integer",
        ),
        (
            {**K8S_POLICY, "vllm:coldStartTimeoutSeconds": "60"},
            "vllm:coldStartTimeoutSeconds",
            "set with vllm:minReplicas 0",
        ),
        ({"vllm:installKedaHttpAddOn": "true"}, "vllm:installKedaHttpAddOn", "set with vllm:maxReplicas"),
    ],
)
def test_kubernetes_refuses_a_cold_start_the_interceptor_cannot_hold(
    config: dict, key: str, says: str
) -> None:
    error = refusal("k8s-l4", config)
    assert error.key == key and says in error.valid


def test_kubernetes_the_interceptor_route_fits_the_add_ons_schema(k8s_cold: Run) -> None:
    import jsonschema

    schema = crd_schema(Path(__file__).parent / "crds" / "http.keda.sh_interceptorroutes.yaml")
    jsonschema.validate(k8s_cold.one(INTERCEPTOR_ROUTE).inputs, schema)
    jsonschema.validate(scaled_object(k8s_cold), SCALED_OBJECT_SCHEMA)


def test_the_vendored_add_on_crd_is_the_pinned_release() -> None:
    from components.kubernetes.cold_start import HTTP_ADD_ON_VERSION

    header = (
        (Path(__file__).parent / "crds" / "http.keda.sh_interceptorroutes.yaml").read_text().splitlines()[0]
    )
    assert header.startswith(f"# KEDA HTTP add-on {HTTP_ADD_ON_VERSION} ")


def test_kubernetes_scaled_object_is_a_child_of_its_component(k8s: Run) -> None:
    assert k8s.by_urn(k8s.one(SCALED_OBJECT).parent).type == "vllm:kubernetes:Autoscaler"


def _strict(schema: Any) -> Any:
    """A CRD's structural schema with unknown fields refused (``additionalProperties: false`` wherever it
    lists ``properties`` and says nothing of others): the API server would prune them silently, so a typo
    would reach the cluster as a missing setting."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def crd_schema(path: Path) -> dict:
    """The served version's schema of a CRD vendored from its release (tests/crds/)."""
    crd = yaml.safe_load(path.read_text())
    (version,) = [version for version in crd["spec"]["versions"] if version["served"]]
    return _strict(version["schema"]["openAPIV3Schema"])


#: KEDA's ScaledObject schema at the release the program pins (autoscaler.KEDA_VERSION).
SCALED_OBJECT_SCHEMA = crd_schema(Path(__file__).parent / "crds" / "keda.sh_scaledobjects.yaml")


def test_the_vendored_crd_is_the_pinned_keda_release() -> None:
    from components.kubernetes.autoscaler import KEDA_VERSION

    header = (Path(__file__).parent / "crds" / "keda.sh_scaledobjects.yaml").read_text().splitlines()[0]
    assert header.startswith(f"# KEDA {KEDA_VERSION} ")


@pytest.mark.parametrize(
    ("stack", "extra"),
    [
        ("k8s-l4", {}),
        ("k8s-l4", {"vllm:minReplicas": "0", "vllm:activationQuery": "sum(rate(requests_total[1m]))"}),
        ("k8s-h100-multinode", {}),
        ("k8s-l4", {"vllm:targetQueuePerReplica": "8"}),
    ],
)
def test_kubernetes_scaled_object_fits_kedas_schema(stack: str, extra: dict) -> None:
    import jsonschema

    run = run_program(stack, config={**K8S_POLICY, **extra})
    jsonschema.validate(scaled_object(run), SCALED_OBJECT_SCHEMA)


# --- the plan -------------------------------------------------------------------------------------------


def test_the_plan_shows_the_bounds_and_the_cost_range() -> None:
    from tools import plan as plan_tool

    data = plan_tool.plan("aws-h100", {"vllm:replicas": "unset", **POLICY})
    assert data["cost"]["replicas"] == {"min": 1, "max": 4}
    # priced at the most machines, on demand, in the stack's region: the bound and the rollout surge room,
    # which target tracking may use too (components/aws/sizing.py, scale_out_surge)
    (share,) = data["cost"]["shares"]
    assert share["replicas"] == 5
    per_replica = share["perReplicaHourly"]
    assert data["cost"]["totalHourly"] == {"min": per_replica, "max": round(per_replica * 5, 2)}
    assert data["cost"]["totalHourly"] == data["outputs"]["costPerHour"]
    text = plan_tool.render_text(data)
    assert (
        f"total ${per_replica:g}/h to ${round(per_replica * 5, 2):g}/h (1 to 4 replicas + 1 rollout surge "
        "the autoscaler may use, autoscaled" in text
    )
    assert "aws:autoscaling/policy:Policy" in text


@pytest.mark.parametrize(
    ("stack", "config", "requested"),
    [
        # scrape 15 s + window 60 s + HPA sync 15 s + the upscale delay
        ("k8s-l4", {**K8S_POLICY, "vllm:upscaleDelaySeconds": "120"}, 15 + 60 + 15 + 120),
        # the minute the step lands in + the scale-out alarm's 3 one-minute periods
        ("aws-h100", {"vllm:replicas": "unset", **POLICY}, 60 + 180),
        # no delay to set, none documented: a lower bound
        ("gcp-h100", POLICY, 0),
    ],
)
def test_the_plan_prints_the_time_from_a_load_step_to_a_new_replica(
    stack: str, config: dict, requested: int
) -> None:
    from tools import plan as plan_tool

    data = plan_tool.plan(stack, config)
    steps = data["spec"]["autoscaling"]["scaleOut"]
    assert sum(step["seconds"] for step in steps) == requested
    start = data["outputs"]["timeToReady"]["laterReplicas"]["seconds"]
    text = plan_tool.render_text(data)
    assert "Reaction to a load step (estimated, at most)" in text
    requested_line, serving_line = [line for line in text.splitlines() if line.startswith("  replica ")]
    assert plan_tool._minutes(requested) in requested_line
    assert all(f"{step['step']} {step['seconds']} s" in requested_line for step in steps)
    assert plan_tool._minutes(requested + start) in serving_line and plan_tool._minutes(start) in serving_line


def test_a_fixed_count_has_no_reaction_in_the_plan() -> None:
    from tools import plan as plan_tool

    assert "Reaction to a load step" not in plan_tool.render_text(plan_tool.plan("gcp-h100"))
