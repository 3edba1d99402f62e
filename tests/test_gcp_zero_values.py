"""Zero values terraform-provider-google may drop: every GCP resource the presets and variants render,
walked for each field we set to 0, false or "".

The provider's generated expanders skip a field whose value is empty (``tpgresource.IsEmptyValue``: 0,
false, "", an empty map), so such a value never reaches the API: ``scaleInControl.maxScaledInReplicas
.percent: 0`` did exactly that (resource_compute_region_autoscaler.go; GoogleCloudPlatform/magic-modules
#11083 is the same mechanism). A zero we set is therefore either one the provider is known to send, or one
whose loss changes nothing (the API's default is the same); each is listed below with where that is read
(hashicorp/terraform-provider-google, google/services/...). A zero not listed fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Run, run_program
from tests.test_gcp_variants import BASE, VARIANTS

SECRETS = {"vllm:hfToken": "hf_testtoken123", "vllm:apiKey": "sk-test-key-4567890"}
#: The presets, issue 12's variants, and the features that render resources of their own.
STACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "preset gcp-h100": ("gcp-h100", {}),
    "preset gcp-h100-multinode": ("gcp-h100-multinode", {}),
    **{key: (stack, {**BASE, **config}) for key, (stack, config) in VARIANTS.items()},
    "autoscaled spot over two regions with an on-demand base": (
        "scaled",
        {
            **BASE,
            "vllm:gpu": "L4:1",
            "vllm:spot": True,
            "vllm:onDemandBaseReplicas": 1,
            "vllm:regions": ["us-central1", "us-east4"],
            "vllm:minReplicas": 3,
            "vllm:maxReplicas": 6,
            "vllm:targetQpsPerReplica": 2,
        },
    ),
    "a reservation": (
        "reserved",
        {"vllm:preset": "gcp-h100", "gcp:zone": "us-central1-a", "vllm:reservation": "h100s"},
    ),
    "HTTPS, a weight bucket, allowed CIDRs": (
        "https",
        {
            **BASE,
            "vllm:gpu": "L4:1",
            "vllm:domain": "llm.example.com",
            "vllm:dnsZone": "example-com",
            "vllm:weightCache": "bucket",
            "vllm:allowedCidrs": ["203.0.113.0/24"],
        },
    ),
}

#: (resource type, field path) -> why the zero is fine: the provider sends it, or the API's default is it.
ZEROS_KNOWN: dict[tuple[str, str], str] = {
    ("gcp:storage/bucket:Bucket", "softDeletePolicy.retentionDurationSeconds"): (
        "sent: expandBucketSoftDeletePolicy force-sends RetentionDurationSeconds "
        "(storage/resource_storage_bucket.go)"
    ),
    ("gcp:projects/service:Service", "disableOnDestroy"): (
        "a provider-side flag, never an API field: the delete reads it with d.Get "
        "(resourcemanager/resource_google_project_service.go)"
    ),
    ("gcp:projects/service:Service", "disableDependentServices"): (
        "a provider-side flag read with d.Get on delete (resourcemanager/resource_google_project_service.go)"
    ),
    ("gcp:compute/network:Network", "autoCreateSubnetworks"): (
        "sent: the create sends it when set (d.GetOkExists), false included "
        "(compute/resource_compute_network.go)"
    ),
    ("gcp:compute/routerNat:RouterNat", "enableEndpointIndependentMapping"): (
        "sent: set explicitly, false included (d.GetOkExists; compute/resource_compute_router_nat.go)"
    ),
    ("gcp:compute/instanceTemplate:InstanceTemplate", "shieldedInstanceConfig.enableSecureBoot"): (
        "sent: force-sent with the other shielded VM flags (compute/resource_compute_instance_template.go)"
    ),
    ("gcp:compute/instanceTemplate:InstanceTemplate", "scheduling.automaticRestart"): (
        "sent: expandScheduling copies it whenever set, into the API's *bool "
        "(compute/compute_instance_helpers.go)"
    ),
    (
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
        "updatePolicy.maxUnavailableFixed",
    ): (
        "sent: expandRegionUpdatePolicy always sends the fixed value when no percent is set "
        "(compute/resource_compute_region_instance_group_manager.go)"
    ),
    ("gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager", "updatePolicy.maxSurgeFixed"): (
        "sent: expandRegionUpdatePolicy always sends the fixed value (a reservation's roll without surge)"
    ),
    ("gcp:compute/instanceGroupManager:InstanceGroupManager", "updatePolicy.maxSurgeFixed"): (
        "sent: expandUpdatePolicy always sends the fixed value "
        "(compute/resource_compute_instance_group_manager.go)"
    ),
    ("gcp:compute/uRLMap:URLMap", "defaultUrlRedirect.stripQuery"): (
        "dropped as empty (compute/resource_compute_url_map.go), and the API's default is false too: the "
        "redirect keeps the query either way"
    ),
}


def zero_fields(value: Any, path: str = "") -> Iterator[str]:
    """Paths of the fields set to 0, false or "" (list items as ``[]``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from zero_fields(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from zero_fields(item, f"{path}[]")
    elif value is not None and value in (0, False, ""):
        yield path


def zeros(run: Run) -> set[tuple[str, str]]:
    return {
        (resource.type, path)
        for resource in run.resources
        if resource.custom and resource.type.startswith("gcp:")
        for path in zero_fields(resource.inputs)
    }


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {key: run_program(stack, config, secrets=SECRETS) for key, (stack, config) in STACKS.items()}


@pytest.mark.parametrize("key", STACKS)
def test_every_zero_we_set_is_one_the_provider_sends_or_the_apis_default(runs, key):
    unexplained = sorted(zeros(runs[key]) - ZEROS_KNOWN.keys())
    assert not unexplained, f"zero values terraform-provider-google may drop (IsEmptyValue): {unexplained}"


def test_every_listed_zero_is_still_rendered(runs):
    rendered = set().union(*(zeros(run) for run in runs.values()))
    assert not ZEROS_KNOWN.keys() - rendered


def test_the_walk_finds_a_nested_zero():
    policy = {"scaleInControl": {"maxScaledInReplicas": {"percent": 0}, "timeWindowSec": 1200}}
    assert list(zero_fields({"autoscalingPolicy": policy})) == [
        "autoscalingPolicy.scaleInControl.maxScaledInReplicas.percent"
    ]
