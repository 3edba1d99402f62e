"""GCP's quota preflight: `up` reads the project's GPU quotas (Cloud Quotas API) before any VM and refuses
in one line when they cannot hold the stack at its peak; `tools.plan` says offline which it would check.

A new project's GPU quotas are 0 (platform-rules.md), and a group short of quota retries until `up` times
out (hours for a large model): the check turns that into one line at the start.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.gcp.quota import QuotaError, gpu_quota_needs
from components.spec import build_spec
from tests.harness import run_program
from tools import mockrun
from tools import plan as plan_tool

SECRETS = {"vllm:hfToken": "hf_testtoken123"}
QUOTA_INFOS = "gcp:cloudquota/getSQuotaInfos:getSQuotaInfos"
MODEL = "Qwen/Qwen3-8B"
H100_ZONES_US_CENTRAL1 = 3  # the catalog's a3-highgpu zones there: one surge VM each


def needs(stack: str, config: dict[str, Any]) -> dict[tuple[str, str | None], int]:
    return {(need.metric, need.region): need.need for need in gpu_quota_needs(build_spec(stack, config))}


def test_a_fixed_stack_needs_its_replicas_and_a_rollouts_surge_of_its_gpu_model():
    # gcp-h100: 2 x a3-highgpu-8g in us-central1; a roll surges one VM per zone.
    vms = 2 + H100_ZONES_US_CENTRAL1
    assert needs("gcp-h100", {}) == {
        ("NVIDIA_H100_GPUS", "us-central1"): vms * 8,
        ("GPUS_ALL_REGIONS", None): vms * 8,
    }


def test_an_autoscaled_stack_needs_its_max_replicas():
    config = {"vllm:maxReplicas": "4", "vllm:minReplicas": "2", "vllm:targetQpsPerReplica": "2"}
    assert needs("gcp-h100", config)[("NVIDIA_H100_GPUS", "us-central1")] == (4 + H100_ZONES_US_CENTRAL1) * 8


def test_spot_and_on_demand_draw_on_their_own_quotas_in_each_region():
    config = {
        "vllm:cloud": "gcp",
        "vllm:model": MODEL,
        "vllm:gpu": "L4:1",
        "vllm:replicas": 4,
        "vllm:spot": True,
        "vllm:onDemandBaseReplicas": 2,
        "vllm:regions": ["us-central1", "us-east4"],
    }
    found = needs("spread", config)
    assert set(found) == {
        ("NVIDIA_L4_GPUS", "us-central1"),
        ("PREEMPTIBLE_NVIDIA_L4_GPUS", "us-central1"),
        ("NVIDIA_L4_GPUS", "us-east4"),
        ("PREEMPTIBLE_NVIDIA_L4_GPUS", "us-east4"),
        ("GPUS_ALL_REGIONS", None),
    }
    assert found[("GPUS_ALL_REGIONS", None)] == sum(v for k, v in found.items() if k[1] is not None)


def test_a_group_that_consumes_a_reservation_needs_no_surge():
    config = {"gcp:zone": "us-central1-a", "vllm:reservation": "h100s"}
    assert needs("gcp-h100", config)[("NVIDIA_H100_GPUS", "us-central1")] == 2 * 8


def test_ray_groups_need_every_node():
    assert needs("gcp-h100-multinode", {})[("GPUS_ALL_REGIONS", None)] == 2 * 8


def family_quota(value: int, region: str = "us-central1", family: str = "NVIDIA_H100") -> dict:
    """The Cloud Quotas answer for a project whose H100 quota in ``region`` is ``value``: one dimensions
    info for that region and family, and the default of every other."""
    return {
        "quotaInfos": [
            {
                "quotaId": "GPUS-PER-GPU-FAMILY-per-project-region",
                "dimensionsInfos": [
                    {
                        "applicableLocations": [region],
                        "details": [{"value": str(value)}],
                        "dimensions": {"region": region, "gpu_family": family},
                    },
                    {"applicableLocations": [], "details": [{"value": "0"}], "dimensions": {}},
                ],
            }
        ]
    }


def test_up_refuses_a_project_whose_gpu_quota_is_short_in_one_line(monkeypatch):
    monkeypatch.setitem(mockrun.CALLS, QUOTA_INFOS, lambda args: family_quota(8))
    with pytest.raises(QuotaError) as raised:
        run_program("gcp-h100", secrets=SECRETS)
    message = str(raised.value)
    assert "\n" not in message
    for part in (
        "NVIDIA_H100_GPUS",
        "us-central1",
        "is 8",
        "needs 40",
        "gcloud beta quotas preferences create",
    ):
        assert part in message
    assert "--dimensions=region=us-central1,gpu_family=NVIDIA_H100" in message
    declared = {resource.type for resource in raised.value.declared_resources}  # pyright: ignore[reportAttributeAccessIssue]
    assert not {t for t in declared if "instanceGroupManager" in t or "instanceTemplate" in t}


def test_up_goes_on_when_the_quota_holds_the_peak(monkeypatch):
    monkeypatch.setitem(mockrun.CALLS, QUOTA_INFOS, lambda args: family_quota(40))
    assert run_program("gcp-h100", secrets=SECRETS).of_type("pulumi:providers:gcp")


def test_a_quota_the_project_does_not_list_is_not_guessed(monkeypatch):
    other_model = {
        "quotaId": "NVIDIA-L4-GPUS-per-project-region",
        "dimensionsInfos": [{"applicableLocations": [], "details": [{"value": "0"}], "dimensions": {}}],
    }
    monkeypatch.setitem(mockrun.CALLS, QUOTA_INFOS, lambda args: {"quotaInfos": [other_model]})
    assert run_program("gcp-h100", secrets=SECRETS).of_type("pulumi:providers:gcp")


def test_the_quota_read_waits_for_the_apis_and_names_the_project():
    run = run_program("gcp-h100", secrets=SECRETS)
    (read,) = [invoke for invoke in run.invokes if invoke.token == QUOTA_INFOS]
    assert read.args == {"parent": "projects/test-project", "service": "compute.googleapis.com"}


def test_the_plan_says_which_quotas_up_would_check():
    data = plan_tool.plan("gcp-h100", secrets=SECRETS)
    assert data["quotas"] == [
        "NVIDIA_H100_GPUS in us-central1: >= 40 (5 VMs x 8 GPUs: 2 + 3 rollout surge)",
        "GPUS_ALL_REGIONS in all regions: >= 40 (5 VMs x 8 GPUs, every group at its peak)",
    ]
    assert "Quotas up checks" in plan_tool.render_text(data)
