"""Autoscaling on load (issue 15): SkyServe's replica_policy, refused where a platform cannot honour it, and
each platform's own autoscaler under the real program."""

from __future__ import annotations

import pytest

from components import autoscaling
from components.spec import SpecError, build_spec
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
    from components import spec as spec_module

    preset = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B", **POLICY}
    monkeypatch.setattr(spec_module, "available_presets", lambda: ["scaled"])
    monkeypatch.setattr(spec_module, "read_preset", lambda name: dict(preset))
    spec = build_spec("scaled", {"vllm:replicas": "3"})
    assert (spec.autoscaling, spec.replicas) == (None, 3)


def test_a_stack_unsetting_replicas_keeps_a_presets_policy(monkeypatch) -> None:
    from components import spec as spec_module

    preset = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B", **POLICY}
    monkeypatch.setattr(spec_module, "available_presets", lambda: ["scaled"])
    monkeypatch.setattr(spec_module, "read_preset", lambda name: dict(preset))
    assert build_spec("scaled", {"vllm:replicas": "unset"}).autoscaling is not None


def test_the_public_view_shows_the_bounds_and_the_policy() -> None:
    view = build_spec("gcp-h100", POLICY).public_view()
    assert view["replicas"] == {"min": 1, "max": 4}
    assert view["autoscaling"]["targetQpsPerReplica"] == 2.5


def test_cost_is_a_range_from_the_least_to_the_most_replicas() -> None:
    spec = build_spec("gcp-h100", {**POLICY, "vllm:minReplicas": "2"})
    fixed = build_spec("gcp-h100", {"vllm:replicas": "1"}).cost_per_hour()
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
    assert error.key == key and error.valid.startswith("unset on") and "README Autoscaling" in error.valid


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
        'sum(rate(vllm:request_success_total{namespace="vllm-k8s-l4",model_name="Qwen/Qwen3-8B"}[1m]))'
    )


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
    # components/kubernetes/capacity.py SCALED_REPLICAS (pulumi-kubernetes keeps an ignored field live).
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
    assert run.outputs["replicas"] == {"min": 0, "max": 4}
    # Created with one pod, so that the first `up` proves a replica loads (the Deployment's await; the
    # Service's would complete with no pod at all); KEDA takes it to 0 once idle.
    assert run.one(DEPLOYMENT).inputs["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("config", "key", "says"),
    [
        ({**POLICY, "vllm:replicas": "unset"}, "vllm:prometheusUrl", "required with vllm:maxReplicas"),
        ({**K8S_POLICY, "vllm:prometheusUrl": "prometheus:9090"}, "vllm:prometheusUrl", "an http(s) URL"),
        ({**K8S_POLICY, "vllm:minReplicas": "0"}, "vllm:activationQuery", "required with vllm:minReplicas 0"),
        ({**K8S_POLICY, "vllm:activationQuery": "sum(x)"}, "vllm:activationQuery", "with vllm:minReplicas 0"),
        ({"vllm:prometheusUrl": PROMETHEUS}, "vllm:prometheusUrl", "set with vllm:maxReplicas"),
        ({**K8S_POLICY, "vllm:upscaleDelaySeconds": "3601"}, "vllm:upscaleDelaySeconds", "<= 3600"),
    ],
)
def test_kubernetes_refuses_what_keda_cannot_do(config: dict, key: str, says: str) -> None:
    error = refusal("k8s-l4", config)
    assert error.key == key and says in error.valid


def test_kubernetes_scaled_object_is_a_child_of_its_component(k8s: Run) -> None:
    assert k8s.by_urn(k8s.one(SCALED_OBJECT).parent).type == "vllm:kubernetes:Autoscaler"


#: The parts of KEDA's ScaledObject schema the program uses, transcribed from its CRD
#: (kedacore/keda config/crd/bases/keda.sh_scaledobjects.yaml, v1alpha1): int32 counts and windows, trigger
#: metadata a map of strings, scaleTargetRef needing a name. Unknown fields are refused here, so a typo
#: that the API server would prune silently fails this test.
_INT = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_WINDOW = {"type": "object", "properties": {"stabilizationWindowSeconds": {**_INT, "maximum": 3600}}}
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {k: {"type": "string"} for k in ("apiVersion", "kind", "name")},
                },
                **{
                    k: _INT
                    for k in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod")
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"scaleUp": _WINDOW, "scaleDown": _WINDOW},
                                }
                            },
                        }
                    },
                },
                "triggers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["metadata", "type"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["Value", "AverageValue", "Utilization"]},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
            },
        }
    },
}


@pytest.mark.parametrize(
    ("stack", "extra"),
    [
        ("k8s-l4", {}),
        ("k8s-l4", {"vllm:minReplicas": "0", "vllm:activationQuery": "sum(rate(requests_total[1m]))"}),
        ("k8s-h100-multinode", {}),
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
