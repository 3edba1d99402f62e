"""Issue 12's GCP rules on generated stacks beyond the presets: other regions and zones, multi-node groups,
long stack names. Each variant runs the real program once; every rule is checked on every variant."""

from __future__ import annotations

import pytest

from components import launch
from components.gcp.apis import REQUIRED_APIS
from components.gcp.machine import (
    IMAGE_METADATA_KEY,
    MAX_INITIAL_DELAY_SECONDS,
    MAX_MIN_READY_SECONDS,
    SECRET_VERSIONS_METADATA_KEY,
    roll_timings,
)
from components.gcp.network import GOOGLE_LB_RANGES, HEALTH_AGENT_PORT
from components.spec import build_spec
from tests.harness import Run, run_program

SECRETS = {"vllm:hfToken": "hf_testtoken123", "vllm:apiKey": "sk-test-key-4567890"}
LONG = "a-generated-stack-name-well-over-the-forty-characters-a-base-name-keeps"
BASE = {"vllm:cloud": "gcp", "vllm:model": "Qwen/Qwen3-8B"}
VARIANTS = {
    "multi-node x2 in europe-west4, long name": (
        LONG,
        {
            "vllm:gpu": "H100:8",
            "vllm:nodes": 2,
            "vllm:replicas": 2,
            "gcp:region": "europe-west4",
            "vllm:modelSizeGb": 690,
            "vllm:diskSizeGb": 1000,
        },
    ),
    "L4 x4 in asia-southeast1": (
        "l4-asia",
        {"vllm:gpu": "L4:1", "vllm:replicas": 4, "gcp:region": "asia-southeast1"},
    ),
    "A100 x2 pinned to us-east4-c": (
        "a100-east",
        {"vllm:gpu": "A100-80GB:8", "vllm:replicas": 2, "gcp:region": "us-east4", "gcp:zone": "us-east4-c"},
    ),
}
GROUP_TYPES = (
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
    "gcp:compute/instanceGroupManager:InstanceGroupManager",
)
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {
        key: run_program(stack, {**BASE, **config}, secrets=SECRETS)
        for key, (stack, config) in VARIANTS.items()
    }


def launch_of(key: str) -> launch.LaunchSpec:
    stack, config = VARIANTS[key]
    return launch.launch_spec(build_spec(stack, {**BASE, **config}), has_hf_token=True)


def groups(run: Run) -> list:
    return [r for r in run.resources if r.type in GROUP_TYPES]


@pytest.mark.parametrize("key", VARIANTS)
def test_every_group_autoheals_on_the_agent_within_gcps_delay_cap(runs, key):
    checks = {f"{c.name}-id": c for c in runs[key].of_type("gcp:compute/healthCheck:HealthCheck")}
    for group in groups(runs[key]):
        policy = group.inputs["autoHealingPolicies"]
        assert 0 < policy["initialDelaySec"] <= MAX_INITIAL_DELAY_SECONDS
        assert checks[policy["healthCheck"]].inputs["httpHealthCheck"]["port"] == HEALTH_AGENT_PORT


@pytest.mark.parametrize("key", VARIANTS)
def test_every_group_waits_for_its_roll_and_a_roll_waits_for_the_load_budget(runs, key):
    timings = roll_timings(launch_of(key))
    assert timings.roll_wait_seconds >= launch_of(key).probes.expected_startup_seconds
    for group in groups(runs[key]):
        assert group.inputs["waitForInstances"] is True
        assert group.inputs["waitForInstancesStatus"] == "UPDATED"
        min_ready = group.inputs["updatePolicy"].get("minReadySec")
        assert min_ready is None or min_ready == timings.min_ready_seconds <= MAX_MIN_READY_SECONDS


@pytest.mark.parametrize("key", VARIANTS)
def test_every_template_names_its_secret_versions_and_its_mirrored_image(runs, key):
    for template in runs[key].of_type(TEMPLATE):
        metadata = template.inputs["metadata"]
        assert len(metadata[SECRET_VERSIONS_METADATA_KEY].split()) == 2
        assert metadata[IMAGE_METADATA_KEY].startswith(
            f"{build_spec(VARIANTS[key][0], {**BASE, **VARIANTS[key][1]}).region}-docker.pkg.dev/"
        )


@pytest.mark.parametrize("key", VARIANTS)
def test_every_api_is_enabled(runs, key):
    assert {s.inputs["service"] for s in runs[key].of_type("gcp:projects/service:Service")} == set(
        REQUIRED_APIS
    )


@pytest.mark.parametrize("key", VARIANTS)
def test_the_agent_port_is_open_to_googles_checkers_only(runs, key):
    (rule,) = [
        r
        for r in runs[key].of_type("gcp:compute/firewall:Firewall")
        if str(HEALTH_AGENT_PORT) in str(r.inputs)
    ]
    assert sorted(rule.inputs["sourceRanges"]) == sorted(GOOGLE_LB_RANGES)
    for template in runs[key].of_type(TEMPLATE):
        assert set(rule.inputs["targetTags"]) <= set(template.inputs["tags"])
