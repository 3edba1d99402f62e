"""The policy pack's GPU budget for autoscaled services (policy/gpu_budget.py, with each platform's bounds in
components/<platform>/policy.py), on the program's own stacks as the policy SDK hands them over, and on
hand-made resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from components.aws import policy as aws_policy
from components.gcp import policy as gcp_policy
from policy import gpu_budget
from tests.harness import Run, run_program
from tests.test_policy import as_the_sdk_hands_it_over

POLICY = {"vllm:replicas": "unset", "vllm:targetQpsPerReplica": "2"}
K8S = {"vllm:prometheusUrl": "http://prometheus.monitoring:9090"}
ROUTER = {"vllm:router": "inference-gateway", "vllm:gatewayClassName": "istio"}


@dataclass
class Resource:
    type: str
    urn: str
    props: dict[str, Any]
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


def resources(run: Run) -> list[Resource]:
    """What the policy sees: each resource's outputs and inputs (numbers as floats) and its id."""
    return [
        Resource(r.type, r.urn, as_the_sdk_hands_it_over({"id": f"{r.name}-id", **r.outputs, **r.inputs}))
        for r in run.resources
        if r.custom
    ]


@pytest.mark.parametrize(
    ("stack", "config", "gpus_at_the_top"),
    [
        ("gcp-h100", {"vllm:maxReplicas": "4"}, 32),  # 4 x a3-highgpu-8g
        ("aws-h100", {"vllm:maxReplicas": "4"}, 40),  # max size 5 (the rollout surge) x p5.48xlarge
        ("k8s-h100", {"vllm:maxReplicas": "4", **K8S}, 32),
        ("k8s-h100-multinode", {"vllm:maxReplicas": "3", **K8S}, 48),  # 3 groups x 2 pods x 8
    ],
)
def test_an_autoscaled_service_is_flagged_only_over_the_budget(
    stack: str, config: dict, gpus_at_the_top: int
):
    seen = resources(run_program(stack, config={**POLICY, **config}))
    assert gpu_budget.gpu_budget_violations(seen, gpus_at_the_top) == []
    (violation,) = gpu_budget.gpu_budget_violations(seen, gpus_at_the_top - 1)
    assert f"= {gpus_at_the_top} GPUs, over the budget of {gpus_at_the_top - 1}" in violation[1]
    assert "maxGpus" in violation[1]


def test_a_fixed_count_is_not_judged():
    assert (
        gpu_budget.gpu_budget_violations(resources(run_program("gcp-h100", {"vllm:replicas": "20"})), 8) == []
    )


def test_the_default_budget_is_eight_eight_gpu_machines():
    assert gpu_budget.DEFAULT_MAX_GPUS == 64


def test_links_by_property_dependency_when_the_preview_knows_no_reference():
    template = Resource(
        "gcp:compute/instanceTemplate:InstanceTemplate", "urn::t", {"machineType": "g2-standard-48"}
    )
    group = Resource(
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
        "urn::g",
        {"versions": [{"instanceTemplate": "<unknown>"}]},
        {"versions": ("urn::t",)},
    )
    scaler = Resource(
        "gcp:compute/regionAutoscaler:RegionAutoscaler",
        "urn::s",
        {"target": "<unknown>", "autoscalingPolicy": {"maxReplicas": 3.0}},
        {"target": ("urn::g",)},
    )
    (violation,) = gpu_budget.gpu_budget_violations([template, group, scaler], 11)
    assert violation[0] == "urn::s" and "3 replicas x 4 GPUs = 12 GPUs" in violation[1]


@pytest.mark.parametrize(
    ("machine", "gpus"),
    [
        ("a3-highgpu-8g", 8),
        ("a2-ultragpu-4g", 4),
        ("a3-megagpu-8g", 8),
        ("g2-standard-24", 2),
        ("n1-standard-8", None),
    ],
)
def test_gcp_gpus_per_machine(machine: str, gpus: int | None):
    assert gcp_policy.template_gpus({"machineType": machine}) == gpus


def test_gcp_guest_accelerators_count():
    assert (
        gcp_policy.template_gpus({"machineType": "n1-standard-16", "guestAccelerators": [{"count": 4.0}]})
        == 4
    )


@pytest.mark.parametrize(
    ("instance_type", "gpus"),
    [("p5.48xlarge", 8), ("g6.xlarge", 1), ("g6e.12xlarge", 4), ("g4dn.metal", 8), ("m7i.large", None)],
)
def test_aws_gpus_per_instance_type(instance_type: str, gpus: int | None):
    assert aws_policy.instance_gpus(instance_type) == gpus


@pytest.mark.parametrize(
    ("stack", "config", "gpus_at_the_top"),
    [
        ("gcp-h100", {}, 64),  # two revisions of 4 x a3-highgpu-8g
        ("aws-h100", {}, 80),  # two groups of max size 5 (the rollout surge) x p5.48xlarge
        ("k8s-h100", {**K8S, **ROUTER}, 64),  # two Deployments of 4 pods x 8, a ScaledObject each
    ],
)
def test_a_canary_counts_against_the_budget_beside_the_stable_revision(
    stack: str, config: dict, gpus_at_the_top: int
):
    canary = {"vllm:servedModelName": "chat", "vllm:canary": {"image": "vllm/vllm-openai:v0.32.0"}}
    seen = resources(run_program(stack, config={**POLICY, "vllm:maxReplicas": "4", **config, **canary}))
    assert gpu_budget.gpu_budget_violations(seen, gpus_at_the_top) == []
    (violation,) = gpu_budget.gpu_budget_violations(seen, gpus_at_the_top - 1)
    assert f"= {gpus_at_the_top} GPUs" in violation[1]
